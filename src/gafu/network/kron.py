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
  as the layer; on CPU it is written into one reused buffer).
- **factored** (few rows: text encoders, cross-attention keys and values on 77 tokens) — the
  frozen product plus w2 inside the groups and w1 across them, added to it in place; backward
  accumulates ΔW's share into the frozen input gradient the same way. No weight-sized tensor at
  all, three products 1/a of the layer's size.

`x` is (…, c·d) for a linear layer and (batch, c·d, H, W) for a 2-D convolution; `conv` is the
frozen convolution's (stride, padding, dilation), None for a linear layer.
"""

from __future__ import annotations

import math
import threading
from typing import Literal

import torch
import torch.nn.functional as F

ConvGeometry = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]  # stride, padding, dilation
KronPath = Literal["auto", "merged", "factored"]

# The merged path costs two passes over a weight-sized tensor; the factored one a third small
# product and a few passes over the activations per row. For a linear layer the merged path is
# the faster one on CPU from about this many rows (tokens) per input feature; for a convolution
# from the fewest measured (0.05 per feature: w2's small convolutions run slowly), so
# convolutions always take it (bench/lokr_layer.py --crossover). Both paths give the same
# result; this only picks the cheaper.
MERGED_MIN_ROWS_PER_FEATURE = 0.5


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
        return _FactoredKron.apply(x, weight, None if bias is None else bias.to(dtype), w1, w2, conv)


def uses_merged_path(rows: int, weight: torch.Tensor) -> bool:
    """Whether `rows` rows (tokens, output pixels) make the merged path the cheaper one."""
    is_conv = weight.dim() > 2
    return is_conv or rows >= MERGED_MIN_ROWS_PER_FEATURE * weight.shape[1]


def merged_weight(
    weight: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """W + w1 ⊗ w2, in one pass, shaped like `weight` (into `out` if given, cast on store)."""
    a, c = w1.shape
    b, d, *window = w2.shape
    ones = [1] * len(window)
    split = (a, b, c, d, *window)  # [i, j, k, l] = W[i·b + j, k·d + l] + w1[i, k]·w2[j, l]
    if out is not None:
        out = out.view(split)
    merged = torch.addcmul(
        weight.view(split), w1.view(a, 1, c, 1, *ones), w2.view(1, b, 1, d, *window), out=out
    )
    return merged.view(weight.shape)


def _merged_for_product(weight, w1, w2, dtype: torch.dtype) -> torch.Tensor:
    """W + w1 ⊗ w2 in `dtype`, formed at the weight's precision, for one product only."""
    # autograd records no op with out=: grad mode is on only in a backward with create_graph
    if weight.device.type != "cpu" or torch.compiler.is_compiling() or torch.is_grad_enabled():
        return merged_weight(weight, w1, w2).to(dtype)
    return merged_weight(weight, w1, w2, out=_product_scratch(weight.shape, dtype))


# On CPU a fresh tensor over ~32 MB is mapped from the OS and pays a page fault per page on first
# touch: for the 10240×1280 feed-forward weight that is 5× the cost of forming W + ΔW itself.
# W + ΔW lives for one product, so one buffer per thread and dtype, as large as the largest
# layer's weight (52 MB for SDXL in fp32), serves every layer. CUDA's allocator reuses memory.
_scratch = threading.local()


def _product_scratch(shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor of `shape` for one product, reused by every later call on this thread."""
    buffers: dict[torch.dtype, torch.Tensor] = _scratch.__dict__.setdefault("buffers", {})
    numel = math.prod(shape)
    if dtype not in buffers or buffers[dtype].numel() < numel:
        buffers[dtype] = torch.empty(numel, dtype=dtype)
    return buffers[dtype][:numel].view(shape)


def mix_groups(w: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """w across the groups: (p, q) and (batch, q, m) → (batch, p, m)."""
    # bmm on an expanded w; torch.matmul would first copy `groups` into a transposed layout.
    return torch.bmm(w.expand(groups.shape[0], *w.shape), groups)


class _MergedKron(torch.autograd.Function):
    """op(x, W + w1 ⊗ w2) + bias, whose backward never forms the full gradient of ΔW."""

    @staticmethod
    def forward(ctx, x, weight, bias, w1, w2, conv):
        """One product with the merged weight, as the frozen layer's own."""
        ctx.save_for_backward(x, weight, w1, w2)
        ctx.conv = conv
        merged = _merged_for_product(weight, w1, w2, x.dtype)
        return _op(x, merged, None if bias is None else bias.to(x.dtype), conv)

    @staticmethod
    def backward(ctx, grad):
        """Input gradient through W + ΔW; w1's and w2's from two products 1/a of the layer's size."""
        x, weight, w1, w2 = ctx.saved_tensors
        conv = ctx.conv
        need_x, need_weight, need_bias, need_w1, need_w2 = ctx.needs_input_grad[:5]
        grad_x = grad_weight = grad_bias = grad_w1 = grad_w2 = None
        if need_x:
            grad_x = _op_input_grad(grad, x.shape, _merged_for_product(weight, w1, w2, grad.dtype), conv)
        if need_weight:  # only where the frozen layer is not frozen after all
            grad_weight = _op_weight_grad(grad, x, weight.shape, conv).to(weight.dtype)
        if need_bias:
            grad_bias = _bias_grad(grad, conv)
        if need_w1 or need_w2:
            grad_w1, grad_w2 = factor_grads(grad, x, w1.to(x.dtype), w2.to(x.dtype), conv)
            grad_w1, grad_w2 = grad_w1.to(w1.dtype), grad_w2.to(w2.dtype)
        return grad_x, grad_weight, grad_bias, grad_w1, grad_w2, None


class _FactoredKron(torch.autograd.Function):
    """op(x, W) + bias + (w1 ⊗ w2)·x with no weight-sized tensor, forward or backward.

    All tensors in one dtype. Forward: the frozen product, then w2 inside x's groups ("inner",
    kept for w1's gradient) and w1 across them, added to it in place. Backward: the frozen input
    gradient, then (w1 ⊗ w2)ᵀ·grad accumulated into it — w1ᵀ across grad's groups, w2ᵀ inside.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, w1, w2, conv):
        """Beside the frozen product, one product 1/a of the layer's size."""
        a, c = w1.shape
        batch = _batch(x, conv)
        out = _op(x, weight, bias, conv).contiguous()  # contiguous: added to in place below
        inner = _grouped(_w2_op(_maps(x, c, conv), w2, conv), c, batch)  # (batch, c, b·…)
        _grouped(out, a, batch).baddbmm_(w1.expand(batch, a, c), inner)
        ctx.save_for_backward(x, weight, w1, w2, inner)
        ctx.conv = conv
        return out

    @staticmethod
    def backward(ctx, grad):
        """Beside the frozen input gradient, two products 1/a of the layer's size."""
        x, weight, w1, w2, inner = ctx.saved_tensors
        conv = ctx.conv
        need_x, need_weight, need_bias, need_w1, need_w2 = ctx.needs_input_grad[:5]
        grad_x = grad_weight = grad_bias = grad_w1 = grad_w2 = None
        a, c = w1.shape
        batch = _batch(x, conv)
        grad_groups = _grouped(grad, a, batch)
        grad_inner = mix_groups(w1.t(), grad_groups)  # (batch, c, b·…): w1ᵀ across grad's groups
        grad_inner_maps = grad_inner.view(batch * c, *_maps(grad, a, conv).shape[1:])
        if need_x:
            grad_x = _op_input_grad(grad, x.shape, weight, conv).contiguous()
            _add_w2_input_grad(_maps(grad_x, c, conv), grad_inner_maps, w2, conv)
        if need_weight:
            grad_weight = _op_weight_grad(grad, x, weight.shape, conv)
        if need_bias:
            grad_bias = _bias_grad(grad, conv)
        if need_w1:
            grad_w1 = torch.bmm(grad_groups, inner.transpose(1, 2)).sum(0)
        if need_w2:
            grad_w2 = _w2_weight_grad(grad_inner_maps, _maps(x, c, conv), w2.shape, conv)
        return grad_x, grad_weight, grad_bias, grad_w1, grad_w2, None


def _bias_grad(grad: torch.Tensor, conv: ConvGeometry | None) -> torch.Tensor:
    channel_axis = grad.dim() - 1 if conv is None else 1
    return grad.sum([axis for axis in range(grad.dim()) if axis != channel_axis])


def factor_grads(
    grad: torch.Tensor, x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, conv: ConvGeometry | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """∂L/∂w1 and ∂L/∂w2 of op(x, W + w1 ⊗ w2), from the output gradient and the input.

    Each needs w1 across the groups of one side and w2 inside the groups of the other; the side
    that carries the mixed tensor is the smaller one (input: a·d·H·W, output: c·b·H'·W' per item).
    """
    a, c = w1.shape
    batch = _batch(x, conv)
    if a * _grouped(x, c, batch).shape[2] <= c * _grouped(grad, a, batch).shape[2]:
        return _factor_grads_mixing_input(grad, x, w1, w2, conv)
    return _factor_grads_mixing_output(grad, x, w1, w2, conv)


def _factor_grads_mixing_input(grad, x, w1, w2, conv: ConvGeometry | None):
    """factor_grads with x mixed into the output's groups."""
    a, c = w1.shape
    batch = _batch(x, conv)
    x_groups = _grouped(x, c, batch)
    mixed = mix_groups(w1, x_groups)  # (batch, a, d·…)
    mixed_maps = mixed.view(batch * a, *_maps(x, c, conv).shape[1:])
    grad_w2 = _w2_weight_grad(_maps(grad, a, conv), mixed_maps, w2.shape, conv)
    spread = _w2_input_grad(_maps(grad, a, conv), mixed_maps.shape, w2, conv)  # w2ᵀ inside grad's groups
    grad_w1 = torch.bmm(_grouped(spread, a, batch), x_groups.transpose(1, 2)).sum(0)
    return grad_w1, grad_w2


def _factor_grads_mixing_output(grad, x, w1, w2, conv: ConvGeometry | None):
    """factor_grads with grad mixed into the input's groups."""
    a, c = w1.shape
    batch = _batch(x, conv)
    grad_groups = _grouped(grad, a, batch)
    mixed = mix_groups(w1.t(), grad_groups)  # (batch, c, b·…)
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


def _add_w2_input_grad(into_maps: torch.Tensor, grad_maps: torch.Tensor, w2: torch.Tensor, conv):
    """into_maps += w2ᵀ inside the groups of grad_maps, in place (by the product itself where it can)."""
    if conv is None:
        into_maps.addmm_(grad_maps, w2)
    elif _pointwise(w2.shape, conv):
        into_maps.view(into_maps.shape[0], into_maps.shape[1], -1).baddbmm_(
            w2.flatten(1).t().expand(grad_maps.shape[0], -1, -1), grad_maps.flatten(2)
        )
    else:
        into_maps.add_(_op_input_grad(grad_maps, into_maps.shape, w2, conv))


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
        grad, x = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
        # the wider side as the product's rows: up to 1.2× faster at w2's shapes on CPU
        return grad.t() @ x if grad.shape[1] >= x.shape[1] else (x.t() @ grad).t()
    shaped_like_weight = grad.new_empty(1).expand(weight_shape)  # only its shape is read
    return _conv_backward(grad, x, shaped_like_weight, conv, want_input=False)


def _conv_backward(grad, x, weight, conv: ConvGeometry, *, want_input: bool) -> torch.Tensor:
    stride, padding, dilation = conv
    grads = torch.ops.aten.convolution_backward(
        grad, x, weight, None, stride, padding, dilation, False, [0] * len(stride), 1,
        [want_input, not want_input, False],
    )  # fmt: skip
    return grads[0] if want_input else grads[1]
