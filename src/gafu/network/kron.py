"""The Kronecker math of a LoKr layer, without the weight-sized products of LyCORIS's default path.

A LoKr layer adds ΔW = w1 ⊗ w2 to a frozen weight W: W has out = a·b rows and in = c·d columns
(times a kernel window for a convolution), w1 is (a, c), w2 is (b, d, *window), and
ΔW[i·b + j, k·d + l] = w1[i, k]·w2[j, l]. Viewing x's features as (c, d) — c groups of d — makes
(w1 ⊗ w2)·x "w2 inside each group, w1 across the groups".

LyCORIS's default path builds ΔW and runs a second full-size product with it; in backward a
third (ΔW's share of the input gradient) and a fourth (the full gradient of ΔW). Here:

- **merged** (many rows: the U-Net at training resolution) — the forward and the input gradient
  are one product each with W + ΔW, exactly the frozen layer's two; the gradients of w1 and w2
  come from two products 1/a of the layer's size, never from the full gradient of ΔW. W + ΔW is
  formed in one pass over the weight, in forward and again in backward (not kept: it is as large
  as the layer).
- **factored** (few rows: text encoders, cross-attention keys and values on 77 tokens) — the
  frozen product plus w2 inside the groups and w1 across them; no weight-sized tensor at all,
  three products 1/a of the layer's size.

`x` is (…, c·d) for a linear layer and (batch, c·d, H, W) for a 2-D convolution; `conv` is the
frozen convolution's (stride, padding, dilation), None for a linear layer.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

ConvGeometry = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # stride, padding, dilation
KronPath = Literal["auto", "merged", "factored"]

# The merged path costs two passes over a weight-sized tensor; the factored one a product and a
# few passes over the activations per row. From about this many rows (tokens, output pixels) per
# input feature of the layer the merged path is the faster one on CPU (bench/lokr_layer.py
# --crossover). Both paths give the same result; this only picks the cheaper.
MERGED_MIN_ROWS_PER_FEATURE = 0.3


def kron_layer(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    w1: torch.Tensor,
    w2: torch.Tensor,
    conv: ConvGeometry | None = None,
    path: KronPath = "auto",
) -> torch.Tensor:
    """The frozen layer with w1 ⊗ w2 added to its weight: op(x, W + w1 ⊗ w2) + bias.

    Computes in autocast's dtype where autocast is on, else in x's; w1 carries any scale.
    `path` "auto" picks the cheaper of "merged" and "factored" for x's number of rows.
    """
    device = x.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
    x = x.to(dtype)
    if path == "auto":
        path = "merged" if uses_merged_path(_rows(x, weight, conv), weight) else "factored"
    with torch.autocast(device, enabled=False):
        if path == "merged":
            # W + ΔW is formed at the weight's precision and cast after, as LyCORIS forms it.
            return _MergedKron.apply(x, weight, bias, w1.to(weight), w2.to(weight), conv)
        weight, w1, w2 = weight.to(dtype), w1.to(x), w2.to(x)
        return _factored_layer(x, weight, None if bias is None else bias.to(dtype), w1, w2, conv)


def uses_merged_path(rows: int, weight: torch.Tensor) -> bool:
    """Whether `rows` rows (tokens, output pixels) make the merged path the cheaper one."""
    return rows >= MERGED_MIN_ROWS_PER_FEATURE * math.prod(weight.shape[1:])


def merged_weight(weight: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """W + w1 ⊗ w2, in one pass, shaped like `weight`."""
    a, c = w1.shape
    b, d, *window = w2.shape
    ones = [1] * len(window)
    # (a, b, c, d, *window): [i, j, k, l] = W[i·b + j, k·d + l] + w1[i, k]·w2[j, l]
    return torch.addcmul(
        weight.view(a, b, c, d, *window), w1.view(a, 1, c, 1, *ones), w2.view(1, b, 1, d, *window)
    ).view(weight.shape)


def mix_groups(w: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """w across the groups: (p, q) and (batch, q, m) → (batch, p, m)."""
    # bmm on an expanded w; torch.matmul would first copy `groups` into a transposed layout.
    return torch.bmm(w.expand(groups.shape[0], *w.shape), groups)


def _factored_layer(x, weight, bias, w1, w2, conv: ConvGeometry | None) -> torch.Tensor:
    """op(x, W) + bias + (w1 ⊗ w2)·x with no weight-sized tensor (plain autograd)."""
    a, c = w1.shape
    base = _op(x, weight, bias, conv)
    inner = _w2_op(_maps(x, c, conv), w2, conv)  # w2 inside each group: (…·c, b, …)
    batch = _batch(x, conv)
    inner = _grouped(inner, c, batch)  # (batch, c, b·…)
    # w1 across the groups, added to the frozen output by the same product
    out = torch.baddbmm(_grouped(base, a, batch), w1.expand(batch, a, c), inner)
    return out.view(base.shape)


class _MergedKron(torch.autograd.Function):
    """op(x, W + w1 ⊗ w2) + bias, whose backward never forms the full gradient of ΔW."""

    @staticmethod
    def forward(ctx, x, weight, bias, w1, w2, conv):
        """One product with the merged weight, as the frozen layer's own."""
        ctx.save_for_backward(x, weight, w1, w2)
        ctx.conv = conv
        merged = merged_weight(weight, w1, w2).to(x.dtype)
        return _op(x, merged, None if bias is None else bias.to(x.dtype), conv)

    @staticmethod
    def backward(ctx, grad):
        """Input gradient through W + ΔW; w1's and w2's from two products 1/a of the layer's size."""
        x, weight, w1, w2 = ctx.saved_tensors
        conv = ctx.conv
        need_x, need_weight, need_bias, need_w1, need_w2 = ctx.needs_input_grad[:5]
        grad_x = grad_weight = grad_bias = grad_w1 = grad_w2 = None
        if need_x:
            grad_x = _op_input_grad(grad, x.shape, merged_weight(weight, w1, w2).to(grad.dtype), conv)
        if need_weight:  # only where the frozen layer is not frozen after all
            grad_weight = _op_weight_grad(grad, x, weight.shape, conv).to(weight.dtype)
        if need_bias:
            channel_axis = grad.dim() - 1 if conv is None else 1
            grad_bias = grad.sum([axis for axis in range(grad.dim()) if axis != channel_axis])
        if need_w1 or need_w2:
            grad_w1, grad_w2 = factor_grads(grad, x, w1.to(x.dtype), w2.to(x.dtype), conv)
            grad_w1, grad_w2 = grad_w1.to(w1.dtype), grad_w2.to(w2.dtype)
        return grad_x, grad_weight, grad_bias, grad_w1, grad_w2, None


def factor_grads(
    grad: torch.Tensor, x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, conv: ConvGeometry | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """∂L/∂w1 and ∂L/∂w2 of op(x, W + w1 ⊗ w2), from the output gradient and the input.

    Each needs w1 across the groups of one side and w2 inside the groups of the other; the side
    that carries the mixed tensor is the smaller one (input: a·d·H·W, output: c·b·H'·W' per item).
    """
    a, c = w1.shape
    batch = _batch(x, conv)
    x_groups, grad_groups = _grouped(x, c, batch), _grouped(grad, a, batch)
    if a * x_groups.shape[2] <= c * grad_groups.shape[2]:
        mixed = mix_groups(w1, x_groups)  # (batch, a, d·…): x mixed into the output's groups
        mixed_maps = mixed.view(batch * a, *_maps(x, c, conv).shape[1:])
        grad_w2 = _w2_weight_grad(_maps(grad, a, conv), mixed_maps, w2.shape, conv)
        spread = _w2_input_grad(_maps(grad, a, conv), mixed_maps.shape, w2, conv)  # w2ᵀ inside groups
        grad_w1 = torch.bmm(_grouped(spread, a, batch), x_groups.transpose(1, 2)).sum(0)
    else:
        mixed = mix_groups(w1.t(), grad_groups)  # (batch, c, b·…): grad mixed into the input's groups
        mixed_maps = mixed.view(batch * c, *_maps(grad, a, conv).shape[1:])
        grad_w2 = _w2_weight_grad(mixed_maps, _maps(x, c, conv), w2.shape, conv)
        applied = _w2_op(_maps(x, c, conv), w2, conv)  # w2 inside the input's groups
        grad_w1 = torch.bmm(grad_groups, _grouped(applied, c, batch).transpose(1, 2)).sum(0)
    return grad_w1, grad_w2


# --- views: "maps" put each group in the batch, "grouped" makes the groups a matrix axis ------
def _maps(t: torch.Tensor, groups: int, conv: ConvGeometry | None) -> torch.Tensor:
    """(…, groups·ch) → (rows·groups, ch); (batch, groups·ch, H, W) → (batch·groups, ch, H, W)."""
    if conv is None:
        return t.reshape(-1, t.shape[-1] // groups)
    return t.reshape(t.shape[0] * groups, t.shape[1] // groups, *t.shape[2:])


def _grouped(t: torch.Tensor, groups: int, batch: int) -> torch.Tensor:
    """(batch, groups, ch·…) with batch the rows (linear) or the images (convolution)."""
    return t.reshape(batch, groups, -1)


def _batch(x: torch.Tensor, conv: ConvGeometry | None) -> int:
    return x.numel() // x.shape[-1] if conv is None else x.shape[0]


def _rows(x: torch.Tensor, weight: torch.Tensor, conv: ConvGeometry | None) -> int:
    """Rows of the layer's product: tokens, or output pixels of all images."""
    if conv is None:
        return x.numel() // x.shape[-1]
    stride, padding, dilation = conv
    rows = x.shape[0]
    for size, k, s, p, dil in zip(x.shape[2:], weight.shape[2:], stride, padding, dilation, strict=True):
        rows *= (size + 2 * p - dil * (k - 1) - 1) // s + 1
    return rows


# --- w2's operation inside the groups: the layer's own, but pointwise ones as batched products --
# A 1×1 convolution over a few dozen channels runs 2-3× slower through oneDNN than as a batched
# product; the frozen layer's own operation (hundreds of channels) keeps its convolution.
def _w2_op(x_maps: torch.Tensor, w2: torch.Tensor, conv: ConvGeometry | None) -> torch.Tensor:
    if not _pointwise(w2.shape, conv):
        return _op(x_maps, w2, None, conv)
    return mix_groups(w2.flatten(1), x_maps.flatten(2)).view(x_maps.shape[0], -1, *x_maps.shape[2:])


def _w2_input_grad(grad_maps: torch.Tensor, x_shape, w2: torch.Tensor, conv: ConvGeometry | None):
    if not _pointwise(w2.shape, conv):
        return _op_input_grad(grad_maps, x_shape, w2, conv)
    return mix_groups(w2.flatten(1).t(), grad_maps.flatten(2)).view(x_shape)


def _w2_weight_grad(grad_maps: torch.Tensor, x_maps: torch.Tensor, w2_shape, conv: ConvGeometry | None):
    if not _pointwise(w2_shape, conv):
        return _op_weight_grad(grad_maps, x_maps, w2_shape, conv)
    return torch.bmm(grad_maps.flatten(2), x_maps.flatten(2).transpose(1, 2)).sum(0).view(w2_shape)


def _pointwise(weight_shape, conv: ConvGeometry | None) -> bool:
    """A 1×1 convolution with stride 1 and no padding: a product over channels at each pixel."""
    if conv is None:
        return False
    stride, padding, _ = conv
    return all(k == 1 for k in weight_shape[2:]) and set(stride) == {1} and set(padding) == {0}


# --- the one operation of the layer (linear or 2-D convolution) and its two gradients ---------
def _op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv: ConvGeometry | None):
    if conv is None:
        return F.linear(x, weight, bias)
    return F.conv2d(x, weight, bias, *conv)


def _op_input_grad(grad: torch.Tensor, x_shape, weight: torch.Tensor, conv: ConvGeometry | None):
    if conv is None:
        return grad @ weight
    shaped_like_x = grad.new_empty(1).expand(x_shape)  # only its shape is read
    return _conv_backward(grad, shaped_like_x, weight, conv, want_input=True)


def _op_weight_grad(grad: torch.Tensor, x: torch.Tensor, weight_shape, conv: ConvGeometry | None):
    if conv is None:
        return grad.reshape(-1, grad.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
    shaped_like_weight = grad.new_empty(1).expand(weight_shape)  # only its shape is read
    return _conv_backward(grad, x, shaped_like_weight, conv, want_input=False)


def _conv_backward(grad, x, weight, conv: ConvGeometry, *, want_input: bool) -> torch.Tensor:
    stride, padding, dilation = conv
    grads = torch.ops.aten.convolution_backward(
        grad, x, weight, None, stride, padding, dilation, False, [0] * len(stride), 1,
        [want_input, not want_input, False],
    )  # fmt: skip
    return grads[0] if want_input else grads[1]
