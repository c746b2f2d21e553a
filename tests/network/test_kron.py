"""The Kronecker math of gafu's LoKr layer against ΔW = torch.kron(w1, w2) built explicitly."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

from gafu.network import kron

STRIDE_1 = ((1, 1), (1, 1), (1, 1))
STRIDE_2 = ((2, 2), (1, 1), (1, 1))
POINTWISE = ((1, 1), (0, 0), (1, 1))


def explicit_layer(x, weight, bias, w1, w2, conv):
    """op(x, W + kron(w1, w2)) with ΔW built the way LyCORIS builds it."""
    window = [1] * (w2.dim() - 2)
    delta = torch.kron(w1.view(*w1.shape, *window), w2)
    if conv is None:
        return F.linear(x, weight + delta, bias)
    return F.conv2d(x, weight + delta, bias, *conv)


def layer_case(a, c, b, d, *, conv=None, kernel=1, spatial=(5, 4), bias=True, seed=0):
    """Random float64 (x, W, bias, w1, w2) for a layer out = a·b, in = c·d."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64, requires_grad=True)

    window = (kernel, kernel) if conv else ()
    x = rand(2, 3, c * d) if conv is None else rand(2, c * d, *spatial)
    return x, rand(a * b, c * d, *window), rand(a * b) if bias else None, rand(a, c), rand(b, d, *window)


def assert_agree_with_explicit(y, expected, inputs) -> None:
    """y and the gradients of every tensor in `inputs` equal those through the explicit layer (float64)."""
    grad_out = torch.randn_like(expected)
    grads = torch.autograd.grad(y, inputs, grad_out)
    expected_grads = torch.autograd.grad(expected, inputs, grad_out)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


CASES = {
    "linear": dict(a=4, c=3, b=5, d=6),
    "linear, wide output": dict(a=2, c=4, b=20, d=3),
    "linear, wide input, no bias": dict(a=2, c=4, b=3, d=20, bias=False),
    "conv3x3": dict(a=4, c=3, b=5, d=6, conv=STRIDE_1, kernel=3),
    "conv3x3 stride 2": dict(a=4, c=3, b=5, d=6, conv=STRIDE_2, kernel=3, spatial=(9, 8)),
    "conv3x3 stride 2, wide input": dict(a=2, c=4, b=3, d=20, conv=STRIDE_2, kernel=3, bias=False),
    "conv1x1": dict(a=4, c=3, b=5, d=6, conv=POINTWISE, kernel=1),
    "conv1x1, wide output": dict(a=2, c=4, b=20, d=3, conv=POINTWISE, kernel=1),
}


@pytest.mark.parametrize("path", ["merged", "factored"])
@pytest.mark.parametrize("case", CASES)
def test_kron_layer_matches_the_explicit_kronecker_product(case, path):
    """Output and the gradients of x, W, bias, w1, w2 equal those through kron(w1, w2)."""
    settings = dict(CASES[case])
    conv = settings.get("conv")
    inputs = layer_case(**settings)
    trained = [t for t in inputs if t is not None]

    y = kron.kron_layer(*inputs, conv, path=path)
    assert_agree_with_explicit(y, explicit_layer(*inputs, conv), trained)


def test_merged_weight_is_w_plus_kron():
    """merged_weight lays w1 ⊗ w2 out exactly as torch.kron does, for a conv window too."""
    _, weight, _, w1, w2 = layer_case(3, 2, 4, 5, conv=STRIDE_1, kernel=3)
    expected = weight + torch.kron(w1.view(3, 2, 1, 1), w2)
    torch.testing.assert_close(kron.merged_weight(weight, w1, w2), expected, rtol=0, atol=1e-12)


def test_layers_of_different_sizes_in_a_chain_match_the_explicit_products():
    """Layers sharing the CPU buffer for W + ΔW, a large one then a small one, keep their results."""
    x, w_a, b_a, w1_a, w2_a = layer_case(4, 3, 6, 5, seed=1)  # 15 → 24 features
    _, w_b, b_b, w1_b, w2_b = layer_case(2, 4, 3, 6, seed=2)  # 24 → 6 features
    params = [x, w_a, b_a, w1_a, w2_a, w_b, b_b, w1_b, w2_b]
    hidden = kron.kron_layer(x, w_a, b_a, w1_a, w2_a, path="merged")
    y = kron.kron_layer(hidden, w_b, b_b, w1_b, w2_b, path="merged")
    expected = explicit_layer(explicit_layer(x, w_a, b_a, w1_a, w2_a, None), w_b, b_b, w1_b, w2_b, None)
    assert_agree_with_explicit(y, expected, params)


def test_cpu_buffer_for_w_plus_delta_is_reused_on_a_thread_and_not_shared_across_threads():
    """No fresh weight-sized tensor per call on CPU; another thread gets its own buffer."""
    _, big, _, w1, w2 = layer_case(4, 3, 6, 5)
    _, small, _, w1_small, w2_small = layer_case(2, 3, 2, 5)
    with torch.no_grad():
        first = kron._merged_for_product(big, w1, w2, torch.float64)
        torch.testing.assert_close(first, kron.merged_weight(big, w1, w2))
        pointer = first.data_ptr()
        second = kron._merged_for_product(small, w1_small, w2_small, torch.float64)
        torch.testing.assert_close(second, kron.merged_weight(small, w1_small, w2_small))
        assert second.data_ptr() == pointer
        other_thread: list[int] = []

        def merge_on_another_thread():
            with torch.no_grad():  # grad mode is per thread
                other_thread.append(kron._merged_for_product(big, w1, w2, torch.float64).data_ptr())

        worker = threading.Thread(target=merge_on_another_thread)
        worker.start()
        worker.join()
        assert other_thread and other_thread[0] != pointer


def test_merged_backward_skips_gradients_nobody_asked_for():
    """A frozen weight (the recipe's case) gets no gradient: its product is never computed."""
    x, weight, bias, w1, w2 = layer_case(4, 3, 5, 6)
    weight.requires_grad_(False)
    bias.requires_grad_(False)
    y = kron.kron_layer(x, weight, bias, w1, w2, path="merged")
    y.sum().backward()
    assert weight.grad is None and bias.grad is None
    assert x.grad is not None and w1.grad is not None and w2.grad is not None


def test_auto_path_follows_the_number_of_rows():
    """Few rows per input feature take a linear layer's factored path, many the merged one; a
    convolution always takes the merged one."""
    weight = torch.zeros(1280, 1280)
    threshold = kron.MERGED_MIN_ROWS_PER_FEATURE * 1280
    assert not kron.uses_merged_path(77, weight)
    assert kron.uses_merged_path(round(threshold) + 1, weight)
    assert not kron.uses_merged_path(round(threshold) - 1, weight)
    conv_weight = torch.zeros(640, 640, 3, 3)
    assert kron.uses_merged_path(16, conv_weight)


@pytest.mark.parametrize("path", ["merged", "factored"])
def test_autocast_computes_in_bf16_and_returns_gradients_in_the_parameters_dtype(path):
    """Under autocast the layer runs in bf16; every gradient comes back in its tensor's dtype."""
    x, weight, bias, w1, w2 = (t.detach().float().requires_grad_() for t in layer_case(4, 3, 5, 6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = kron.kron_layer(x, weight, bias, w1, w2, path=path)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    for tensor in (x, weight, bias, w1, w2):
        assert tensor.grad.dtype == torch.float32
        assert torch.isfinite(tensor.grad).all()
