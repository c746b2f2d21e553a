"""The LoKr network: LyCORIS LoKr modules on the chosen layers, owned by one container.

The math is LyCORIS's (`lycoris.modules.lokr.LokrModule`); the container attaches the modules to
the base layers, sets their weight (multiplier), merges them into the base weights, and gives
their tensors under the kohya/LyCORIS names every UI reads (`<name>.lokr_w1`, `.lokr_w2` or
`.lokr_w2_a`/`.lokr_w2_b`, `.alpha`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from gafu.network.settings import LokrSettings
from gafu.network.targets import Target, dim_and_alpha, select_targets


def default_module_class() -> type:
    """LyCORIS's LoKr module (the default; a class with the same constructor and state can replace it)."""
    from lycoris.modules.lokr import LokrModule

    return LokrModule


def make_lokr_module(
    target: Target, settings: LokrSettings, *, module_class: type | None = None, multiplier: float = 1.0
) -> nn.Module:
    """One LoKr module on `target`, constructed as kohya's LyCORIS network constructs it."""
    cls = module_class or default_module_class()
    dim, alpha = dim_and_alpha(target, settings)
    # Positional order and keyword values as in `LycorisNetworkKohya.create_single_module` with
    # kohya's defaults: no dropout, no Tucker, no scalar, no DoRA, rebuild (not bypass) forward.
    return cls(
        target.name,
        target.module,
        multiplier,
        dim,
        alpha,
        0.0,  # dropout
        0.0,  # rank_dropout
        0.0,  # module_dropout
        False,  # use_tucker
        use_scalar=False,
        decompose_both=False,
        factor=settings.factor,
        weight_decompose=False,
        full_matrix=False,
        bypass_mode=False,
        rs_lora=False,
        unbalanced_factorization=False,
    )


class LokrNetwork(nn.Module):
    """LoKr modules keyed by their kohya/LyCORIS names; `state_dict()` is the saved file's content."""

    def __init__(self, modules: Iterable[nn.Module], targets: Iterable[Target], settings: LokrSettings):
        super().__init__()
        self.settings = settings
        self._targets = {t.name: t for t in targets}
        for module in modules:
            self.add_module(module.lora_name, module)
        self._applied = False
        self.file_metadata: dict[str, str] = {}  # the metadata of the file it was loaded from

    # --- what it holds --------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Module names, in building order (text encoders first, as LyCORIS orders them)."""
        return [name for name, _ in self.named_children()]

    def lokr_modules(self) -> Iterator[nn.Module]:
        """The LoKr modules."""
        return self.children()

    def target(self, name: str) -> Target:
        """The base layer a module is on."""
        return self._targets[name]

    def component_parameters(self, component: str) -> list[nn.Parameter]:
        """Trainable parameters of the modules on one part: `unet`, or `text_encoder` (both)."""
        wanted = ("unet",) if component == "unet" else ("te1", "te2")
        return [
            p
            for name, module in self.named_children()
            if self._targets[name].component in wanted
            for p in module.parameters()
        ]

    def parameter_groups(self, unet_lr: float, text_encoder_lr: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups: U-Net modules at one rate, text-encoder modules at another (P4)."""
        groups = [{"params": self.component_parameters("unet"), "lr": unet_lr, "name": "unet"}]
        text = self.component_parameters("text_encoder")
        if text:
            groups.append({"params": text, "lr": text_encoder_lr, "name": "text_encoder"})
        return [g for g in groups if g["params"]]

    # --- weight --------------------------------------------------------------------------------
    @property
    def multiplier(self) -> float:
        """The weight the modules apply at (1.0 = as trained)."""
        first = next(self.lokr_modules(), None)
        return float(first.multiplier) if first is not None else 1.0

    @multiplier.setter
    def multiplier(self, value: float) -> None:
        for module in self.lokr_modules():
            module.multiplier = float(value)

    # --- attach / detach / merge ---------------------------------------------------------------------
    @property
    def applied(self) -> bool:
        """Whether the modules are hooked into the base layers' forward."""
        return self._applied

    def apply_to(self) -> None:
        """Hook every module into its base layer's forward (the base weights stay as they are)."""
        if not self._applied:
            for module in self.lokr_modules():
                module.apply_to()
            self._applied = True

    def restore(self) -> None:
        """Unhook the modules: the base model behaves as without the network."""
        if self._applied:
            for module in reversed(list(self.lokr_modules())):
                module.restore()
                _drop_own_forward(module.org_module[0])
            self._applied = False

    @torch.no_grad()
    def merge_into_base(self, multiplier: float = 1.0) -> None:
        """Add `multiplier` × each module's weight change to its base layer's weight (and unhook).

        Uses the module's own ΔW (`get_weight`, the one its forward adds) rather than LyCORIS's
        `merge_to`, which in lycoris-lora 4.1.3 applies alpha/dim twice when a module is low-rank
        and alpha ≠ dim.
        """
        self.restore()
        for module in self.lokr_modules():
            weight = self._targets[module.lora_name].module.weight
            delta = module.get_weight(module.shape) * module.scalar * multiplier
            weight.add_(delta.to(device=weight.device, dtype=weight.dtype))

    def trainable_parameter_count(self) -> int:
        """Number of trainable values."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _drop_own_forward(layer: nn.Module) -> None:
    """Undo what LyCORIS's `restore` leaves: the layer's own forward as an instance attribute.

    Without this, every apply/restore leaves the layer a reference to itself, and the layer is
    not exactly as it was before the network came.
    """
    forward = layer.__dict__.get("forward")
    if (
        getattr(forward, "__self__", None) is layer
        and getattr(forward, "__func__", None) is type(layer).forward
    ):
        del layer.__dict__["forward"]


def build_network(
    unet: nn.Module,
    text_encoders: tuple[nn.Module, nn.Module] | None,
    settings: LokrSettings,
    *,
    module_class: type | None = None,
    multiplier: float = 1.0,
) -> LokrNetwork:
    """LoKr modules on the layers kohya + LyCORIS adapts with `settings` (not yet applied).

    `module_class` replaces `lycoris.modules.lokr.LokrModule` (same constructor and state).
    Modules are created on the default device in fp32; move the network where training runs.
    """
    targets = select_targets(unet, text_encoders, settings)
    with quiet_lycoris():
        modules = [
            make_lokr_module(t, settings, module_class=module_class, multiplier=multiplier) for t in targets
        ]
    return LokrNetwork(modules, targets, settings)


@contextlib.contextmanager
def quiet_lycoris() -> Iterator[None]:
    """Silence LyCORIS's "using full matrix mode" notices while modules are built.

    Full-matrix mode is what the recipe's dim/factor intend for most SDXL layers (P6), and
    LyCORIS prints the notice on stdout, where it would mix with gafu's JSON output.
    """
    lycoris_logger = logging.getLogger("LyCORIS")
    level = lycoris_logger.level
    lycoris_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lycoris_logger.setLevel(level)
