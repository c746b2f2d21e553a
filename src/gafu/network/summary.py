"""What a LoKr network adapts and how large its file is, computed from the architecture alone.

`gafu plan` prints this; it is built by the same code that builds the trained network, on the
meta device (no weights needed).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gafu.models.load import meta_model
from gafu.network.lokr import LokrNetwork, build_network
from gafu.network.settings import LokrSettings
from gafu.network.targets import Component, ModuleKind


@dataclass(frozen=True)
class AdaptedModule:
    """One base-model layer with a LoKr module on it."""

    name: str  # kohya/LyCORIS name, e.g. lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q
    component: Component
    block: str  # e.g. "input_blocks.4", "middle_block", "output_blocks.2", "te1", "te2"
    kind: ModuleKind
    weight_shape: tuple[int, ...]  # the base layer's weight shape
    full_matrix: bool  # LyCORIS stores w2 whole (no low-rank split) for this layer
    parameters: int  # trainable LoKr parameters of this module


@dataclass
class NetworkSummary:
    """All adapted modules, with totals."""

    modules: list[AdaptedModule] = field(default_factory=list)

    @property
    def trainable_parameters(self) -> int:
        """Sum of the modules' parameters."""
        return sum(m.parameters for m in self.modules)

    def file_bytes(self, dtype: str) -> int:
        """Approximate .safetensors size when saved in `dtype` (fp16, bf16 or fp32)."""
        per_value = {"fp16": 2, "bf16": 2, "fp32": 4}[dtype]
        alphas = len(self.modules) * per_value  # one alpha scalar per module
        return self.trainable_parameters * per_value + alphas

    def by_block(self) -> OrderedDict[str, tuple[int, int]]:
        """`block → (modules, parameters)`, in model order."""
        blocks: OrderedDict[str, tuple[int, int]] = OrderedDict()
        for m in self.modules:
            count, params = blocks.get(m.block, (0, 0))
            blocks[m.block] = (count + 1, params + m.parameters)
        return blocks

    def to_dict(self) -> dict:
        """Plain data for the plan JSON."""
        return {
            "modules": [asdict(m) for m in self.modules],
            "trainable_parameters": self.trainable_parameters,
            "file_mb": {d: round(self.file_bytes(d) / 1e6, 1) for d in ("fp16", "bf16", "fp32")},
        }


def describe_network(
    settings: LokrSettings | None = None,
    *,
    config_dir: Path | None = None,
    module_class: type | None = None,
) -> NetworkSummary:
    """Every module a LoKr with `settings` adapts, with sizes, for an architecture (no weights needed).

    `config_dir`: a diffusers-format config or model folder (default: SDXL base, shipped with
    gafu). The network is built by the same code that builds the trained one (`build_network`),
    on the meta device, so this takes seconds on a CPU even for full SDXL.
    """
    from accelerate import init_empty_weights

    unet, te1, te2 = meta_model(config_dir)
    with init_empty_weights():  # parameters land on the meta device: shapes, no memory
        network = build_network(unet, (te1, te2), settings or LokrSettings(), module_class=module_class)
    return summarize_network(network)


def summarize_network(network: LokrNetwork) -> NetworkSummary:
    """The summary of a built `LokrNetwork`."""
    modules = []
    for module in network.lokr_modules():
        target = network.target(module.lora_name)
        modules.append(
            AdaptedModule(
                name=target.name,
                component=target.component,
                block=target.block,
                kind=target.kind,
                weight_shape=tuple(target.module.weight.shape),
                full_matrix=bool(getattr(module, "use_w2", False)),
                parameters=sum(p.numel() for p in module.parameters()),
            )
        )
    return NetworkSummary(modules)
