"""gafu's LoKr module: LyCORIS's `LokrModule` with a forward and backward that skip the weight-sized
products (see `gafu.network.kron`).

It is a subclass and changes nothing else: the constructor, parameters, initialisation and state
dict are LyCORIS's own, so a file saved from it loads wherever LyCORIS LoKr files load. What it
does not cover (DoRA, rank or module dropout while training, LyCORIS's bypass mode, grouped or
non-zero-padded convolutions, 1-D/3-D convolutions, a base layer wrapped by another adapter) goes
through LyCORIS's forward unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
from lycoris.functional.general import rebuild_tucker
from lycoris.modules.lokr import LokrModule
from torch import nn

from gafu.network.kron import ConvGeometry, KronPath, kron_layer

LokrKernel = Literal["auto", "gafu", "lycoris"]

# Device types where "auto" picks gafu's path. CPU: measured (docs/benchmarks.md, LoKr layer).
# CUDA: by operation count (gafu's layer runs the frozen layer's two products plus two 1/a-size
# ones; LyCORIS's default five full-size ones) until bench/lokr_layer.py has run on a GPU.
FASTER_ON = frozenset({"cpu", "cuda"})

# Below this many weights (a 128×128 linear layer) the per-call cost of gafu's few small extra
# operations outweighs the products they save: with the path left to "auto", such layers take
# LyCORIS's forward. SDXL's smallest LoKr layer has 320×320; the tiny test model's are below it
# (bench/lokr_layer.py --small).
SMALL_LAYER_WEIGHTS = 128 * 128


def lokr_module_class(kernel: LokrKernel, device: torch.device | str) -> type[LokrModule]:
    """The LoKr module class to build the network with, for `[train] lokr_kernel` on `device`."""
    if kernel == "lycoris":
        return LokrModule
    if kernel == "gafu" or (kernel == "auto" and torch.device(device).type in FASTER_ON):
        return FastLokrModule
    if kernel == "auto":
        return LokrModule
    raise ValueError(f"unknown LoKr kernel {kernel!r}: expected 'auto', 'gafu' or 'lycoris'")


class FastLokrModule(LokrModule):
    """LyCORIS's LoKr module whose forward adds w1 ⊗ w2 without weight-sized products."""

    kron_path: KronPath = "auto"  # "merged" or "factored" forces one (tests, benchmarks)

    def __init__(self, lora_name, org_module: nn.Module, *args, **kwargs):
        super().__init__(lora_name, org_module, *args, **kwargs)
        self._conv_geometry = _conv_geometry(org_module)
        self._base_is_plain = _base_is_plain(org_module, self.org_forward)

    def apply_to(self, **kwargs):
        """LyCORIS's `apply_to`; then note whether the layer below is the plain base layer."""
        super().apply_to(**kwargs)
        self._base_is_plain = _base_is_plain(self.org_module[0], self.org_forward)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """The base layer plus multiplier · scale · (w1 ⊗ w2), as LyCORIS's forward computes it."""
        if args or kwargs or not self._factored_path_covers() or self._lycoris_is_cheaper():
            return super().forward(x, *args, **kwargs)
        base = self.org_module[0]
        # LyCORIS: ΔW = kron(w1, w2) · scale · scalar, added times the multiplier. All of it
        # scales the small w1.
        w1 = self._full_w1() * (self.scale * self.multiplier) * self.scalar
        conv = self._conv_geometry
        return kron_layer(x, base.weight, base.bias, w1, self._full_w2(), conv, self.kron_path)

    def _factored_path_covers(self) -> bool:
        """Whether this call can skip LyCORIS's forward (otherwise LyCORIS's is used)."""
        dropping = self.training and (self.rank_dropout or self.module_dropout)
        return self._base_is_plain and not (self.wd or self.bypass_mode or dropping)

    def _lycoris_is_cheaper(self) -> bool:
        """A layer too small for gafu's extra operations to pay off, with the path left to "auto"."""
        return self.kron_path == "auto" and self.org_module[0].weight.numel() < SMALL_LAYER_WEIGHTS

    def _full_w1(self) -> torch.Tensor:
        """w1 (a, c), rebuilt from its factors where LyCORIS stores it split."""
        return self.lokr_w1 if self.use_w1 else self.lokr_w1_a @ self.lokr_w1_b

    def _full_w2(self) -> torch.Tensor:
        """w2 (b, d, *window), rebuilt from its factors where LyCORIS stores it split."""
        if self.use_w2:
            return self.lokr_w2
        if self.tucker:
            return rebuild_tucker(self.lokr_t2, self.lokr_w2_a, self.lokr_w2_b)
        # w2_b is (rank, d·window) for a convolution
        return (self.lokr_w2_a @ self.lokr_w2_b).view(self.lokr_w2_a.shape[0], -1, *self.shape[2:])


def _conv_geometry(module: nn.Module) -> ConvGeometry | None:
    """(stride, padding, dilation) of a 2-D convolution; None for anything else."""
    if not isinstance(module, nn.Conv2d):
        return None
    return tuple(module.stride), tuple(module.padding), tuple(module.dilation)


def _base_is_plain(module: nn.Module, layer_forward) -> bool:
    """A linear layer or an ungrouped zero-padded 2-D convolution, called through its own forward."""
    if isinstance(module, nn.Conv2d):
        kind = nn.Conv2d
        plain_conv = (
            module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)
        )
        if not plain_conv:
            return False
    elif isinstance(module, nn.Linear):
        kind = nn.Linear
    else:
        return False
    own_forward = getattr(layer_forward, "__func__", None) is kind.forward
    return own_forward and type(module).forward is kind.forward and layer_forward.__self__ is module
