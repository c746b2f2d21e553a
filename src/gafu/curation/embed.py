"""An optional image model as one more style cue (RECIPE D1): a CLIP vision encoder, loaded with transformers.

`[check] style_model` names it: a folder holding a CLIP model as transformers saves one
(`config.json`, the weights, `preprocessor_config.json`; a whole CLIP model or its vision part),
or a hub repo id (e.g. `openai/clip-vit-large-patch14`) that huggingface_hub has in its cache or
may download. Each picture becomes its pooled image embedding, scaled to length 1; pictures of
another period or technique sit apart from the rest in that space. The check works without it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gafu.errors import GafuError

BATCH = 8  # pictures per forward pass


@dataclass
class Embedder:
    """A loaded CLIP vision encoder with its picture preprocessing."""

    reference: str
    identity: str  # changes when the weights do (cached embeddings are keyed by it)
    model: Any  # transformers.CLIPVisionModel
    processor: Any  # transformers.CLIPImageProcessor


def load_embedder(reference: str, *, base: Path | None = None) -> Embedder:
    """Load the CLIP vision encoder `reference` names (a folder, relative to `base`, or a hub repo id)."""
    from transformers import CLIPImageProcessor, CLIPVisionModel
    from transformers.utils import cached_file

    local = Path(reference).expanduser()
    if not local.is_absolute() and base is not None and (base / local).exists():
        local = base / local
    source = str(local) if local.exists() else reference
    try:
        processor = CLIPImageProcessor.from_pretrained(source)
        model = CLIPVisionModel.from_pretrained(source).float()
        config_file = Path(cached_file(source, "config.json"))
    except (OSError, ValueError) as exc:
        raise GafuError(
            f"cannot load the style model {reference!r} for the D1 check ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]})",
            hint="set [check] style_model to a CLIP model folder (config.json, weights, "
            'preprocessor_config.json) or a cached hub repo id, or to "" to check without it',
        ) from exc
    model.eval()
    return Embedder(reference, _identity(config_file, model), model, processor)


def embed_pictures(embedder: Embedder, pictures: list[Image.Image]) -> np.ndarray:
    """Unit-length image embeddings `(N, D)` of RGB pictures."""
    import torch

    rows = []
    with torch.inference_mode():
        for start in range(0, len(pictures), BATCH):
            batch = [p.convert("RGB") for p in pictures[start : start + BATCH]]
            inputs = embedder.processor(images=batch, return_tensors="pt")
            pooled = embedder.model(pixel_values=inputs["pixel_values"].float()).pooler_output  # (B, D)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def _identity(config_file: Path, model: Any) -> str:
    """The model's config and a fingerprint of its weights: what the embeddings depend on."""
    import torch

    digest = hashlib.sha256(config_file.read_bytes())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items())[:8]:
            digest.update(name.encode("utf-8"))
            digest.update(tensor.float().flatten()[:64].numpy().tobytes())
    return digest.hexdigest()[:16]
