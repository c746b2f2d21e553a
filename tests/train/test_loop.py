"""The loss of an optimizer step across micro-batches, as kohya's sd-scripts (48d368f) makes it."""

import torch
from accelerate import Accelerator

from gafu.plan import resolve_plan
from gafu.train.data import epoch_batches, load_pictures
from gafu.train.latents import cached_latents
from gafu.train.loop import TrainingRun, _generator, accumulate_gradients, micro_batch_losses
from gafu.train.noise import loss_snr_table, noise_scheduler
from gafu.train.setup import attach_network, load_models


def _gradients(network) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in network.parameters() if p.grad is not None])


def test_a_steps_gradient_is_the_sum_of_micro_batch_means_over_the_accumulation(train_project):
    """sd-scripts: `process_batch` returns `loss.mean()` over its micro-batch (train_network.py
    line 480) and accelerate's `backward` divides it by `gradient_accumulation_steps` (the
    Accelerator is built with it, train_util.py line 5495): a step's gradient is Σ_m mean_m / A."""
    project = train_project(3, 0, batch_size=4)  # 6 target samples in one bucket: batches of 4 and 2
    plan = resolve_plan(project)
    assert plan.batch.gradient_accumulation == 2 and plan.batch.steps_per_epoch == 1
    pictures = load_pictures(project, plan)
    device = torch.device("cpu")
    base = load_models(project, plan, device)
    latents, _ = cached_latents(pictures, base.vae, project.latent_cache_dir, device=device)
    network = attach_network(base, plan, device)
    run = TrainingRun(
        plan=plan,
        accelerator=Accelerator(cpu=True),
        base=base,
        network=network,
        optimizer=None,
        lr_scheduler=None,
        noise_scheduler=noise_scheduler(base.scheduler_config, plan.loss),
        loss_snr=loss_snr_table(base.scheduler_config),
        pictures=pictures,
        latents=latents,
        hooks=None,
    )
    batches = epoch_batches(plan, pictures, 1)
    assert sorted(len(b) for b in batches) == [2, 4]
    loss_sum, nonfinite = accumulate_gradients(run, batches, step=0)
    gafu = _gradients(network)
    network.zero_grad(set_to_none=True)

    def losses(index):  # the same noise and timesteps as the step above
        return micro_batch_losses(run, batches[index], _generator(plan.run.seed, 0, index, device))

    kohya = sum(losses(m).mean() / 2 for m in range(2))
    kohya.backward()
    expected = _gradients(network)
    network.zero_grad(set_to_none=True)
    per_sample = torch.cat([losses(m) for m in range(2)]).mean()  # gafu's earlier averaging
    per_sample.backward()
    assert not nonfinite and abs(loss_sum - 2 * kohya.item()) < 1e-6 * max(1.0, abs(loss_sum))
    assert torch.allclose(gafu, expected, rtol=1e-5, atol=1e-10)
    assert not torch.allclose(gafu, _gradients(network), rtol=1e-3)  # micro-batches of 4 and 2 differ
