"""What a LoKr network adapts and how large its file is, computed from the architecture alone.

`gafu plan` prints this; it is built by the same code that builds the trained network, on the
meta device (no weights needed).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Literal

Component = Literal["unet", "te1", "te2"]
ModuleKind = Literal["linear", "conv1x1", "conv3x3"]


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
