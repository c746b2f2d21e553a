"""Samples during training: the same grids, and everything left as it was found."""

from __future__ import annotations

import torch

from gafu.eval.figures import StyleFigures
from gafu.sample.grid import read_grid
from gafu.sample.training import render_training_samples


def test_training_samples_leave_model_network_and_rng_as_found(sample_project, tiny_lokr_files, tmp_path):
    from gafu.models.load import load_base_model
    from gafu.network.files import load_network
    from gafu.plan import resolve_plan

    plan = resolve_plan(sample_project, 12.0)
    base = load_base_model(sample_project.config.model.path, dtype=torch.float32)
    network = load_network(tiny_lokr_files[0], base.unet, base.text_encoders, multiplier=0.7)
    network.apply_to()
    # as during training: U-Net and network training, text encoders frozen in eval, VAE on its own
    base.unet.train()
    network.train()
    base.text_encoder.requires_grad_(False)
    base.text_encoder_2.requires_grad_(False)
    base.vae.requires_grad_(False)
    modes = {
        id(m): m.training
        for part in (base.unet, base.text_encoder, base.vae, network)
        for m in part.modules()
    }
    grad_flags = [p.requires_grad for p in network.parameters()] + [
        p.requires_grad for p in base.unet.parameters()
    ]
    torch.manual_seed(5)
    rng = torch.random.get_rng_state()

    out = tmp_path / "samples" / "e000010"
    figures = StyleFigures(fit=0.05, leakage=0.01, trigger_share=0.8, drift=0.002)
    grids = render_training_samples(
        base, network, plan, 10, out, figures=[("weight 1 (at its save)", figures)]
    )

    assert grids == [out / f"grid-p{i:02d}.png" for i in range(1, len(plan.sample.prompts) + 1)]
    assert read_grid(grids[0])["row_labels"] == [f"weight {w:g}" for w in plan.sample.weights]
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "<td>weight 1 (at its save)</td><td>+5.00 %</td><td>+1.00 %</td><td>80 %</td>" in index
    assert network.applied and network.multiplier == 0.7
    assert modes == {
        id(m): m.training
        for part in (base.unet, base.text_encoder, base.vae, network)
        for m in part.modules()
    }
    assert grad_flags == [p.requires_grad for p in network.parameters()] + [
        p.requires_grad for p in base.unet.parameters()
    ]
    assert all(p.grad is None for p in network.parameters())
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert {p.dtype for p in base.unet.parameters()} == {torch.float32}
