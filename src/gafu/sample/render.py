"""Render sample pictures: one diffusers SDXL pipeline over the loaded base model, built once.

The pipeline holds the base model's own modules (no copies). A LoKr changes what they compute
while it is applied; its weight is the network's multiplier, so moving along a row of weights
changes one number per module and reloads nothing. At weight 0 the network is unhooked, so that
row is exactly the base model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from gafu.sample.prompts import SamplePrompt
from gafu.sample.schedulers import NoiseSchedule, build_scheduler


class SampleRenderer:
    """Renders prompts on a base model (with whatever network is applied to it)."""

    def __init__(self, base, schedule: NoiseSchedule, *, sampler: str, guidance_rescale: float = 0.0):
        from diffusers import StableDiffusionXLPipeline

        self.base = base
        self.schedule = schedule
        self.guidance_rescale = guidance_rescale
        self._schedulers: dict[str, Any] = {}
        self.pipeline = StableDiffusionXLPipeline(
            vae=base.vae,
            text_encoder=base.text_encoder,
            text_encoder_2=base.text_encoder_2,
            tokenizer=base.tokenizer,
            tokenizer_2=base.tokenizer_2,
            unet=base.unet,
            scheduler=self.scheduler(sampler),  # each render sets its prompt's own
            add_watermarker=False,  # samples are for the user's eyes, not for publishing
        )
        self.pipeline.set_progress_bar_config(disable=True)

    def scheduler(self, name: str):
        """The named sampler for this model's noise schedule (built once per name)."""
        if name not in self._schedulers:
            self._schedulers[name] = build_scheduler(name, self.base.scheduler_config, self.schedule)
        return self._schedulers[name]

    @torch.no_grad()
    def render(self, prompt: SamplePrompt, text: str):
        """One picture (PIL) of `text` with `prompt`'s settings; the same inputs give the same pixels."""
        return self.render_batch([prompt], [text])[0]

    @torch.no_grad()
    def render_batch(self, prompts: list[SamplePrompt], texts: list[str]) -> list:
        """Pictures of `texts` in one pass, each from its prompt's seed; the other settings are the first's.

        Each picture starts from the noise `render` would start it from, so a batch draws what
        single renders draw (up to the arithmetic of a larger batch).
        """
        first = prompts[0]
        pipeline = self.pipeline
        pipeline.scheduler = self.scheduler(first.scheduler)
        # CPU generators: the starting noise (and an ancestral sampler's noise) is the same on every
        # device, so grids made on different machines start from the same picture.
        generators = [torch.Generator("cpu").manual_seed(prompt.seed) for prompt in prompts]
        with _autocast_if_mixed(self.base):
            latents = pipeline(
                prompt=list(texts),
                negative_prompt=[prompt.negative for prompt in prompts],
                width=first.width,
                height=first.height,
                num_inference_steps=first.steps,
                guidance_scale=first.cfg,
                guidance_rescale=self.guidance_rescale,
                generator=generators if len(generators) > 1 else generators[0],
                output_type="latent",
            ).images
        return self._decode(latents)

    def _decode(self, latents: torch.Tensor) -> list:
        """Latents → PIL pictures, in the VAE's own dtype (SDXL's VAE is kept in fp32)."""
        vae = self.base.vae
        config = vae.config
        latents = latents.to(vae.dtype)
        if (
            getattr(config, "latents_mean", None) is not None
            and getattr(config, "latents_std", None) is not None
        ):
            mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1).to(latents)
            std = torch.tensor(config.latents_std).view(1, -1, 1, 1).to(latents)
            latents = latents * std / config.scaling_factor + mean
        else:
            latents = latents / config.scaling_factor
        image = vae.decode(latents, return_dict=False)[0]
        return self.pipeline.image_processor.postprocess(image, output_type="pil")


@contextlib.contextmanager
def _autocast_if_mixed(base) -> Iterator[None]:
    """Autocast to the U-Net's dtype when the text encoders are in another one (as during training)."""
    unet_dtype = base.unet.dtype
    if base.text_encoder.dtype == unet_dtype and base.text_encoder_2.dtype == unet_dtype:
        yield
        return
    with torch.autocast(base.unet.device.type, dtype=unet_dtype):
        yield


@contextlib.contextmanager
def network_at(network, weight: float) -> Iterator[None]:
    """The network applied at `weight` (unhooked at 0, so the base model runs); its state restored after."""
    if network is None:
        yield
        return
    applied, multiplier = network.applied, network.multiplier
    try:
        if weight == 0:
            network.restore()
        else:
            network.multiplier = weight
            network.apply_to()
        yield
    finally:
        network.multiplier = multiplier
        if applied:
            network.apply_to()
        else:
            network.restore()
