"""SDXL's conditioning: both text encoders, the pooled embedding and the size/crop time ids.

As SDXL was trained (and sd-scripts trains it): each encoder's penultimate hidden states,
concatenated along the width (768 + 1280 = 2048 for SDXL); the second encoder's projected pooled
output; and six numbers per picture — original size (h, w), crop top-left (top, left), target
size (h, w).

Captions longer than one CLIP window (75 tokens between the start and end tokens) are cut there,
as sd-scripts does with its default `max_token_length`; the trainer says how many were cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TextConditioning:
    """What the U-Net is given for a batch of captions."""

    hidden_states: torch.Tensor  # (B, 77, width_1 + width_2)
    pooled: torch.Tensor  # (B, projection_dim)


def token_ids(tokenizer, captions: list[str]) -> torch.Tensor:
    """(B, 77) token ids, cut and padded to the tokenizer's window."""
    return tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def too_long(tokenizers, caption: str) -> bool:
    """True when `caption` does not fit in one CLIP window and loses its last tags."""
    return any(len(tokenizer(caption).input_ids) > tokenizer.model_max_length for tokenizer in tokenizers)


def encode_text(text_encoders, tokenizers, captions: list[str], device: torch.device) -> TextConditioning:
    """Both encoders' penultimate hidden states, concatenated, and the second's pooled output."""
    hidden, pooled = [], None
    for encoder, tokenizer in zip(text_encoders, tokenizers, strict=True):
        output = encoder(token_ids(tokenizer, captions).to(device), output_hidden_states=True)
        hidden.append(output.hidden_states[-2])
        pooled = output.text_embeds if hasattr(output, "text_embeds") else None
    if pooled is None:
        raise ValueError("the second text encoder has no projection (expected CLIPTextModelWithProjection)")
    return TextConditioning(hidden_states=torch.cat(hidden, dim=-1), pooled=pooled)


def time_ids(
    original_sizes: list[tuple[int, int]],
    crops_top_left: list[tuple[int, int]],
    target_size: tuple[int, int],
    device: torch.device,
) -> torch.Tensor:
    """(B, 6): original (h, w), crop (top, left), target (h, w) — SDXL's `add_time_ids`."""
    rows = [[*orig, *crop, *target_size] for orig, crop in zip(original_sizes, crops_top_left, strict=True)]
    return torch.tensor(rows, dtype=torch.float32, device=device)
