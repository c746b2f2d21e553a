"""gafu's LoKr module against LyCORIS's `LokrModule` on the same weights, at SDXL's layer shapes."""

from __future__ import annotations

import pytest
import torch
from lycoris.modules.lokr import LokrModule
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.checkpoint import checkpoint

from gafu import recipe
from gafu.network.fast_lokr import SMALL_LAYER_WEIGHTS, FastLokrModule, lokr_module_class

# Relative (Frobenius) error allowed between gafu's and LyCORIS's outputs and gradients. Both
# round differently; measured differences are ≤ 2e-6 in fp32 and ≤ 5e-3 in bf16, the size of
# LyCORIS's own bf16 error against a float64 run.
TOLERANCE = {"fp32": 1e-5, "bf16": 2e-2}

# Every SDXL U-Net layer class (diffusers' SDXL config), plus CLIP's MLP: (in, out, kernel, stride).
SDXL_LAYERS = {
    "attn q/k/v/out 640": (640, 640, 0, 1),
    "attn q/k/v/out 1280": (1280, 1280, 0, 1),
    "cross-attn k/v 2048→640": (2048, 640, 0, 1),
    "cross-attn k/v 2048→1280": (2048, 1280, 0, 1),
    "ff GEGLU 640→5120": (640, 5120, 0, 1),
    "ff out 2560→640": (2560, 640, 0, 1),
    "ff GEGLU 1280→10240": (1280, 10240, 0, 1),
    "ff out 5120→1280": (5120, 1280, 0, 1),
    "text encoder mlp 768→3072": (768, 3072, 0, 1),
    "conv3x3 320": (320, 320, 3, 1),
    "conv3x3 640": (640, 640, 3, 1),
    "conv3x3 1280": (1280, 1280, 3, 1),
    "conv3x3 320→640": (320, 640, 3, 1),
    "conv3x3 downsample 640": (640, 640, 3, 2),
    "conv1x1 skip 640→320": (640, 320, 1, 1),
    "conv1x1 skip 2560→1280": (2560, 1280, 1, 1),
}
BIGGEST = {"ff GEGLU 1280→10240", "ff out 5120→1280", "conv3x3 1280"}


def base_layer(in_ch: int, out_ch: int, kernel: int, stride: int = 1, seed: int = 0) -> nn.Module:
    """A frozen linear layer (kernel 0) or convolution with its default initialisation."""
    torch.manual_seed(seed)
    if not kernel:
        layer = nn.Linear(in_ch, out_ch)
    else:
        layer = nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2)
    return layer.requires_grad_(False)


def small_input(base: nn.Module, seed: int = 1) -> torch.Tensor:
    """A few rows: 2 × 5 tokens, or 2 maps of 4 × 4."""
    generator = torch.Generator().manual_seed(seed)
    if isinstance(base, nn.Linear):
        return torch.randn(2, 5, base.in_features, generator=generator)
    return torch.randn(2, base.in_channels, 4, 4, generator=generator)


def lokr_pair(base: nn.Module, factor: int = recipe.FACTOR, **options) -> tuple[LokrModule, FastLokrModule]:
    """LyCORIS's module and gafu's on `base`, the recipe's dims, the same random non-zero weights."""
    dim = recipe.CONV_DIM if isinstance(base, nn.Conv2d) else recipe.LINEAR_DIM
    modules = []
    for kind in (LokrModule, FastLokrModule):
        torch.manual_seed(0)
        settings = {"lora_dim": dim, "alpha": dim, "factor": factor, **options}
        modules.append(kind("lora_unet_test", base, **settings))
    reference, fast = modules
    torch.manual_seed(2)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_()
        # ΔW as large as W, so both halves of the output weigh in the comparison
        delta = reference.get_weight(reference.shape)
        first = reference.lokr_w1 if reference.use_w1 else reference.lokr_w1_a
        first.mul_(base.weight.std() / delta.std())
        # copied by name, not through the state dict, which folds a trained scalar into lokr_w1
        fast_tensors = dict(fast.named_parameters()) | dict(fast.named_buffers())
        for name, tensor in [*reference.named_parameters(), *reference.named_buffers()]:
            fast_tensors[name].copy_(tensor)
    return reference, fast


def forward_backward(
    module, x: torch.Tensor, *, autocast: bool = False, params_of: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Output, input gradient and every trainable parameter's gradient, as float64.

    `params_of` names the module whose parameters are meant where `module` is a wrapper.
    """
    x = x.detach().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = module(x)
    grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).to(y.dtype)
    owner = module if params_of is None else params_of
    params = {name: p for name, p in owner.named_parameters() if p.requires_grad}
    for parameter in params.values():
        parameter.grad = None
    y.backward(grad_out)  # not autograd.grad, which reentrant checkpointing refuses
    results = {"output": y, "input": x.grad, **{name: p.grad for name, p in params.items()}}
    return {name: tensor.double() for name, tensor in results.items()}


def assert_agree(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], tolerance: float) -> None:
    """Same tensors, each within `tolerance` relative error (zero where the expected one is zero)."""
    assert got.keys() == expected.keys()
    for name, want in expected.items():
        error = ((got[name] - want).norm() / want.norm().clamp_min(1e-30)).item()
        assert error <= tolerance, f"{name}: relative error {error:.2e} > {tolerance:.0e}"


# --- the equality the issue asks for ---------------------------------------------------------
LAYER_PARAMS = [
    pytest.param(name, marks=[pytest.mark.slow] if name in BIGGEST else [], id=name) for name in SDXL_LAYERS
]


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("factor", [8, 4])
@pytest.mark.parametrize("layer", LAYER_PARAMS)
def test_agrees_with_lycoris_at_every_sdxl_layer_shape(layer, factor, dtype):
    """Outputs and the gradients of the input and every LoKr parameter match LyCORIS's, both paths."""
    base = base_layer(*SDXL_LAYERS[layer])
    reference, fast = lokr_pair(base, factor)
    x = small_input(base)
    autocast = dtype == "bf16"
    expected = forward_backward(reference, x, autocast=autocast)
    assert fast._factored_path_covers()
    for path in ("merged", "factored"):
        fast.kron_path = path
        assert_agree(forward_backward(fast, x, autocast=autocast), expected, TOLERANCE[dtype])


@pytest.mark.parametrize("layer", ["attn q/k/v/out 640", "conv3x3 320"])
def test_agrees_with_lycoris_with_bf16_weights(layer):
    """Base layer, LoKr and input all in bf16 (no autocast), as a full-bf16 trainer holds them."""
    base = base_layer(*SDXL_LAYERS[layer])
    reference, fast = lokr_pair(base)
    for module in (base, reference, fast):
        module.to(torch.bfloat16)
    x = small_input(base).to(torch.bfloat16)
    expected = forward_backward(reference, x)
    for path in ("merged", "factored"):
        fast.kron_path = path
        assert_agree(forward_backward(fast, x), expected, TOLERANCE["bf16"])


@pytest.mark.parametrize(
    "options",
    [
        {"decompose_both": True, "factor": -1},  # w1 = w1_a @ w1_b
        {"use_tucker": True, "factor": 4},  # w2 rebuilt from lokr_t2
        {"use_scalar": True},  # a trained scalar on w1
        {"rs_lora": True, "factor": 4},  # scale alpha / sqrt(dim)
    ],
    ids=["decompose both", "tucker", "scalar", "rs-lora"],
)
@pytest.mark.parametrize("kernel", [0, 3], ids=["linear", "conv3x3"])
def test_agrees_with_lycoris_for_other_lokr_options(kernel, options):
    """LyCORIS's other parameter layouts (factored w1, Tucker w2, a scalar) go the fast way too."""
    base = base_layer(640, 640, kernel)
    reference, fast = lokr_pair(base, **options)
    assert fast._factored_path_covers()
    x = small_input(base)
    expected = forward_backward(reference, x)
    for path in ("merged", "factored"):
        fast.kron_path = path
        assert_agree(forward_backward(fast, x), expected, TOLERANCE["fp32"])


@pytest.mark.parametrize("multiplier", [0.0, 0.5, 1.5, -1.0])
def test_multiplier_and_alpha_scale_as_in_lycoris(multiplier):
    """multiplier · alpha / dim: in low-rank mode (alpha ≠ dim here) and at several weights."""
    base = base_layer(640, 5120, 0)  # w2 low-rank at factor 8: LyCORIS keeps alpha
    reference, fast = lokr_pair(base, alpha=32)
    assert fast.scale == reference.scale == 32 / recipe.LINEAR_DIM
    reference.multiplier = fast.multiplier = multiplier
    x = small_input(base)
    assert_agree(forward_backward(fast, x), forward_backward(reference, x), TOLERANCE["fp32"])
    if multiplier == 0.0:
        torch.testing.assert_close(fast(x), base(x))


# --- same parameters, same initialisation, same file ------------------------------------------
@pytest.mark.parametrize(
    ("kernel", "options"),
    [
        (0, {}),  # full w2
        (0, {"factor": 4}),
        (3, {"factor": 4}),  # low-rank conv w2
        (3, {"use_tucker": True, "factor": 4}),
        (0, {"decompose_both": True, "factor": -1}),
        (0, {"use_scalar": True}),
    ],
)
def test_state_dict_is_lycoris_own(kernel, options):
    """Built with the same seed, gafu's module saves exactly LyCORIS's keys, shapes and values."""
    base = base_layer(640, 1280, kernel)
    dim = recipe.CONV_DIM if kernel else recipe.LINEAR_DIM
    state_dicts = []
    for kind in (LokrModule, FastLokrModule):
        torch.manual_seed(5)
        state_dicts.append(kind("lora_unet_test", base, 1.0, dim, dim, **options).state_dict())
    lycoris_state, gafu_state = state_dicts
    assert list(gafu_state) == list(lycoris_state)
    for key, value in lycoris_state.items():
        assert gafu_state[key].dtype == value.dtype
        assert torch.equal(gafu_state[key], value), key


def test_saved_file_loads_into_lycoris_module(tmp_path):
    """A .safetensors file of gafu's module loads into LyCORIS's and gives the same output."""
    base = base_layer(640, 640, 3)
    reference, fast = lokr_pair(base, factor=4)
    path = tmp_path / "lokr.safetensors"
    save_file({k: v.contiguous() for k, v in fast.state_dict().items()}, str(path))
    torch.manual_seed(9)
    loaded = LokrModule("lora_unet_test", base, 1.0, recipe.CONV_DIM, recipe.CONV_DIM, factor=4)
    loaded.load_state_dict(load_file(str(path)))
    x = small_input(base)
    torch.testing.assert_close(loaded(x), reference(x))


# --- training machinery ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["merged", "factored"])
@pytest.mark.parametrize("reentrant", [False, True], ids=["non-reentrant", "reentrant"])
@pytest.mark.parametrize("kernel", [0, 3], ids=["linear", "conv3x3"])
def test_gradient_checkpointing_gives_the_same_gradients(kernel, reentrant, path):
    """Recomputing the forward under torch.utils.checkpoint changes no gradient."""
    base = base_layer(640, 640, kernel)
    _, fast = lokr_pair(base)
    fast.kron_path = path
    x = small_input(base)
    expected = forward_backward(fast, x)
    got = forward_backward(lambda t: checkpoint(fast, t, use_reentrant=reentrant), x, params_of=fast)
    assert_agree(got, expected, 1e-12)


def test_fp16_autocast_stays_close_to_fp32():
    """fp16 autocast (for GPUs without bf16) runs the fast path and stays near the fp32 result."""
    base = base_layer(640, 640, 0)
    _, fast = lokr_pair(base)
    x = small_input(base)
    with torch.autocast("cpu", dtype=torch.float16):
        half = fast(x)
    assert half.dtype == torch.float16
    full = fast(x)
    assert ((half.float() - full).norm() / full.norm()).item() < 2e-3


@pytest.mark.parametrize("path", ["merged", "factored"])
@pytest.mark.parametrize("kernel", [0, 3], ids=["linear", "conv3x3"])
def test_torch_compile_traces_the_layer_without_graph_breaks(kernel, path):
    """Dynamo captures forward and backward whole (fullgraph) and the result equals eager's."""
    base = base_layer(320, 320, kernel)
    _, fast = lokr_pair(base)
    fast.kron_path = path
    x = small_input(base)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fast)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(fast, backend="aot_eager", fullgraph=True)
    assert_agree(forward_backward(compiled, x, params_of=fast), forward_backward(fast, x), 1e-6)


@pytest.mark.slow
def test_inductor_compiled_layer_matches_eager():
    """The default torch.compile backend (inductor, C++ on CPU) gives the eager result."""
    base = base_layer(320, 320, 0)
    _, fast = lokr_pair(base)
    fast.kron_path = "merged"
    x = small_input(base)
    torch._dynamo.reset()
    compiled = torch.compile(fast, fullgraph=True)
    assert_agree(forward_backward(compiled, x, params_of=fast), forward_backward(fast, x), 1e-5)


# --- where gafu's path steps aside ----------------------------------------------------------------
def test_apply_to_routes_the_base_layer_through_the_fast_path():
    """After apply_to the base layer's own call gives LyCORIS's result; restore undoes it."""
    base = base_layer(640, 640, 0)
    reference, fast = lokr_pair(base)
    x = small_input(base)
    plain = base(x)
    reference.apply_to()
    expected = base(x)
    reference.restore()
    fast.apply_to()
    assert fast._factored_path_covers()
    torch.testing.assert_close(base(x), expected)
    fast.restore()
    torch.testing.assert_close(base(x), plain)


@pytest.mark.parametrize(
    ("kernel", "options", "training"),
    [
        pytest.param(0, {"weight_decompose": True}, False, id="dora"),
        pytest.param(0, {"bypass_mode": True}, False, id="bypass mode"),
        pytest.param(0, {"rank_dropout": 0.5}, True, id="rank dropout while training"),
        pytest.param(3, {"module_dropout": 0.5}, True, id="module dropout while training"),
    ],
)
def test_what_it_does_not_cover_goes_through_lycoris(kernel, options, training):
    """DoRA, bypass mode and dropout while training run LyCORIS's own forward, bit for bit."""
    base = base_layer(640, 640, kernel)
    reference, fast = lokr_pair(base, **options)
    reference.train(training)
    fast.train(training)
    assert not fast._factored_path_covers()
    x = small_input(base)
    torch.manual_seed(7)
    expected = reference(x)
    torch.manual_seed(7)
    assert torch.equal(fast(x), expected)


@pytest.mark.parametrize("kernel", [0, 3])
def test_layers_too_small_to_gain_go_through_lycoris_unless_a_path_is_forced(kernel):
    """Under SMALL_LAYER_WEIGHTS, "auto" runs LyCORIS's forward; a forced path still runs gafu's."""
    small = base_layer(32, 32, kernel)
    assert small.weight.numel() < SMALL_LAYER_WEIGHTS <= base_layer(128, 128, 0).weight.numel()
    reference, fast = lokr_pair(small, factor=4)
    x = small_input(small)
    assert fast._factored_path_covers() and fast._lycoris_is_cheaper()
    assert torch.equal(fast(x), reference(x))
    fast.kron_path = "merged"
    assert not fast._lycoris_is_cheaper()
    assert_agree(forward_backward(fast, x), forward_backward(reference, x), TOLERANCE["fp32"])
    assert not lokr_pair(base_layer(128, 128, 0))[1]._lycoris_is_cheaper()


@pytest.mark.parametrize(
    "make_base",
    [
        lambda: nn.Conv2d(640, 640, 3, padding=1, groups=2),
        lambda: nn.Conv2d(640, 640, 3, padding=1, padding_mode="reflect"),
        lambda: nn.Conv2d(640, 640, 3, padding="same"),
        lambda: nn.Conv1d(640, 640, 3, padding=1),
    ],
    ids=["grouped", "reflect padding", "padding 'same'", "conv1d"],
)
def test_unusual_convolutions_go_through_lycoris(make_base):
    """Convolutions outside SDXL's kind are LyCORIS's business, with LyCORIS's result."""
    torch.manual_seed(0)
    base = make_base().requires_grad_(False)
    reference, fast = lokr_pair(base, factor=4)
    assert not fast._factored_path_covers()
    x = torch.randn(2, 640, 6) if isinstance(base, nn.Conv1d) else torch.randn(2, 640, 6, 6)
    assert torch.equal(fast(x), reference(x))


def test_a_layer_wrapped_by_another_module_goes_through_lycoris():
    """Stacked on another LyCORIS module, gafu's calls the layer below instead of the weight."""
    base = base_layer(640, 640, 0)
    first_reference, first_fast = lokr_pair(base)
    second_reference, second_fast = lokr_pair(base, factor=4)
    x = small_input(base)
    first_reference.apply_to()
    second_reference.apply_to()
    expected = base(x)
    second_reference.restore()
    first_reference.restore()
    first_fast.apply_to()
    second_fast.apply_to()
    assert first_fast._factored_path_covers()
    assert not second_fast._factored_path_covers()
    torch.testing.assert_close(base(x), expected)


# --- which class the trainer gets ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("kernel", "device", "expected"),
    [
        ("lycoris", "cpu", LokrModule),
        ("gafu", "cpu", FastLokrModule),
        ("gafu", "meta", FastLokrModule),
        ("auto", "cpu", FastLokrModule),
        ("auto", torch.device("cuda", 1), FastLokrModule),
        ("auto", "meta", LokrModule),
    ],
)
def test_lokr_module_class_follows_the_setting(kernel, device, expected):
    """`[train] lokr_kernel`: "auto" takes gafu's where it was measured faster, else LyCORIS's."""
    assert lokr_module_class(kernel, device) is expected


def test_lokr_module_class_rejects_an_unknown_kernel():
    """A name outside the three is a programming error, said plainly."""
    with pytest.raises(ValueError, match="unknown LoKr kernel 'fast'"):
        lokr_module_class("fast", "cpu")
