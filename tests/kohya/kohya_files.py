"""Kohya datasets and configs as users have them, written into a test's folder.

Modelled on what kohya's tools write: sd-scripts' `--output_config` (a flat TOML of the options
given), the sectioned `--config_file` its docs show, its `--dataset_config` schema
(`library/config_util.py`), and the JSON kohya_ss saves (`kohya_gui/lora_gui.py`'s fields).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import write_picture

TRIGGER = "mzh_style"


def write_concept(folder: Path, count: int, *, seed: int, caption: str | None, suffix: str = ".txt") -> Path:
    """`count` pictures (+ captions `caption`, numbered) in a kohya concept folder."""
    for i in range(count):
        picture = write_picture(
            folder / f"{folder.name.split('_', 1)[-1][:3]}{i:02d}.png", (96, 64), seed=seed + i
        )
        if caption is not None:
            picture.with_suffix(suffix).write_text(caption.format(i=i), encoding="utf-8")
    return folder


def kohya_tree(root: Path, *, suffix: str = ".txt") -> dict[str, Path]:
    """`img/10_mzh_style`, `img/5_mzh_style sketches`, `reg/1_reg` with captions, as kohya_ss has them."""
    img, reg = root / "img", root / "reg"
    write_concept(
        img / "10_mzh_style", 3, seed=100, caption=f"{TRIGGER}, 1girl, smile, pose {{i}}", suffix=suffix
    )
    write_concept(
        img / "5_mzh_style sketches", 2, seed=200, caption=f"{TRIGGER}, sketch, 1girl", suffix=suffix
    )
    write_concept(reg / "1_reg", 4, seed=300, caption="1girl, smile, outdoors", suffix=suffix)
    return {"img": img, "reg": reg}


# sd-scripts `sdxl_train_network.py --output_config`: one flat table of the options that were given.
FLAT_CONFIG = """\
pretrained_model_name_or_path = "OnomaAIResearch/Illustrious-xl-early-release-v0"
dataset_config = "{dataset}"
output_dir = "{root}/output"
output_name = "mzh_style_lokr"
logging_dir = "{root}/logs"
log_with = "tensorboard"
save_model_as = "safetensors"
save_precision = "fp16"
save_every_n_epochs = 20
save_state = true
save_last_n_epochs_state = 3
max_train_epochs = 160
train_batch_size = 4
gradient_accumulation_steps = 12
mixed_precision = "bf16"
gradient_checkpointing = true
sdpa = true
seed = 1234
network_module = "lycoris.kohya"
network_dim = 64
network_alpha = 32.0
network_args = [ "algo=lokr", "conv_dim=32", "conv_alpha=16", "factor=4", "preset=full", "use_tucker=False",]
optimizer_type = "AdamW8bit"
learning_rate = 0.001
unet_lr = 0.001
text_encoder_lr = 0.0001
lr_scheduler = "cosine_with_restarts"
lr_scheduler_num_cycles = 4
max_grad_norm = 1.0
multires_noise_iterations = 8
multires_noise_discount = 0.25
min_snr_gamma = 5.0
cache_latents = true
cache_latents_to_disk = true
no_half_vae = true
max_data_loader_n_workers = 2
persistent_data_loader_workers = true
sample_every_n_epochs = 20
sample_sampler = "euler_a"
sample_prompts = "{root}/prompts.txt"
"""

# sd-scripts' `--dataset_config`: two target concepts and a regularization folder.
DATASET_TOML = """\
[general]
shuffle_caption = true
caption_extension = ".txt"
keep_tokens = 1

[[datasets]]
resolution = 1024
batch_size = 4
enable_bucket = true
min_bucket_reso = 512
max_bucket_reso = 2048
bucket_reso_steps = 64
bucket_no_upscale = true

  [[datasets.subsets]]
  image_dir = "{img}/10_mzh_style"
  num_repeats = 10

  [[datasets.subsets]]
  image_dir = "{img}/5_mzh_style sketches"
  num_repeats = 5

  [[datasets.subsets]]
  image_dir = "{reg}/1_reg"
  num_repeats = 1
  is_reg = true
  class_tokens = "1girl"
  keep_tokens = 0
"""

# The sectioned `--config_file` sd-scripts' docs show (tables are for reading only), for a
# NoobAI-XL v-prediction model, with the DreamBooth folders instead of a dataset config.
SECTIONED_VPRED_CONFIG = """\
[model]
pretrained_model_name_or_path = "{root}/models/noobaiXLNAIXL_vPred10Version.safetensors"
v_parameterization = true
zero_terminal_snr = true

[network]
network_module = "lycoris.kohya"
network_dim = 128
network_alpha = 128
network_args = ["algo=lokr", "conv_dim=64", "conv_alpha=64", "factor=8"]
network_train_unet_only = true

[optimizer]
optimizer_type = "AdamW"
learning_rate = 1.2e-3
lr_scheduler = "cosine_with_restarts"
lr_scheduler_num_cycles = 2
max_grad_norm = 0.0

[dataset]
train_data_dir = "{img}"
reg_data_dir = "{reg}"
resolution = "1024,1024"
enable_bucket = true
caption_extension = ".caption"
keep_tokens = 1
shuffle_caption = true

[training]
max_train_epochs = 100
train_batch_size = 2
gradient_accumulation_steps = 20
mixed_precision = "fp16"
scale_v_pred_loss_like_noise_pred = true
noise_offset = 0.0357
xformers = true
seed = 42

[saving]
output_dir = "{root}/out"
output_name = "noob_style"
save_precision = "float"
save_every_n_epochs = 10
save_state = false
"""


def gui_config(img: Path, reg: Path, root: Path) -> dict:
    """What kohya_ss's LoRA tab saves for an SDXL LyCORIS/LoKr run (its field names, numbers as text where it
    keeps them so)."""
    return {
        "LoRA_type": "LyCORIS/LoKr",
        "LyCORIS_preset": "full",
        "adaptive_noise_scale": 0,
        "additional_parameters": "",
        "bucket_no_upscale": True,
        "bucket_reso_steps": 64,
        "bypass_mode": False,
        "cache_latents": True,
        "cache_latents_to_disk": True,
        "caption_dropout_every_n_epochs": 0,
        "caption_dropout_rate": 0,
        "caption_extension": ".txt",
        "clip_skip": 1,
        "color_aug": False,
        "conv_alpha": 32,
        "conv_dim": 32,
        "dataset_config": "",
        "decompose_both": False,
        "dora_wd": False,
        "enable_bucket": True,
        "epoch": 120,
        "factor": 8,
        "flip_aug": False,
        "full_bf16": False,
        "full_fp16": False,
        "gradient_accumulation_steps": 8,
        "gradient_checkpointing": True,
        "keep_tokens": "1",
        "learning_rate": 0.0011,
        "logging_dir": (root / "log").as_posix(),
        "lr_scheduler": "cosine_with_restarts",
        "lr_scheduler_num_cycles": "3",
        "lr_warmup": 0,
        "max_bucket_reso": 2048,
        "max_data_loader_n_workers": "0",
        "max_resolution": "1024,1024",
        "max_timestep": 1000,
        "max_token_length": "75",
        "max_train_epochs": "",
        "max_train_steps": "",
        "mem_eff_attn": False,
        "min_bucket_reso": 256,
        "min_snr_gamma": 0,
        "mixed_precision": "bf16",
        "model_list": "custom",
        "module_dropout": 0,
        "multires_noise_discount": 0.3,
        "multires_noise_iterations": 10,
        "network_alpha": 64,
        "network_dim": 64,
        "network_dropout": 0,
        "noise_offset": 0.05,
        "noise_offset_type": "Multires",
        "num_cpu_threads_per_process": 2,
        "optimizer": "AdamW8bit",
        "optimizer_args": "",
        "output_dir": (root / "model").as_posix(),
        "output_name": "gui_style",
        "persistent_data_loader_workers": False,
        "pretrained_model_name_or_path": (root / "models" / "sd_xl_base_1.0.safetensors").as_posix(),
        "prior_loss_weight": 1,
        "random_crop": False,
        "rank_dropout": 0,
        "reg_data_dir": reg.as_posix(),
        "sample_every_n_epochs": 0,
        "sample_prompts": "",
        "sample_sampler": "euler_a",
        "save_every_n_epochs": 10,
        "save_model_as": "safetensors",
        "save_precision": "bf16",
        "save_state": False,
        "scale_v_pred_loss_like_noise_pred": False,
        "sdxl": True,
        "sdxl_cache_text_encoder_outputs": False,
        "sdxl_no_half_vae": True,
        "seed": "777",
        "shuffle_caption": True,
        "text_encoder_lr": 0.00055,
        "train_batch_size": 3,
        "train_data_dir": img.as_posix(),
        "training_comment": "",
        "unet_lr": 0.0011,
        "use_cp": False,
        "use_scalar": False,
        "use_tucker": False,
        "v2": False,
        "v_parameterization": False,
        "vae": "",
        "wandb_api_key": "",
        "xformers": "sdpa",
    }


def write_flat_config(root: Path) -> tuple[Path, Path]:
    """The flat training config + dataset TOML (and the prompts file it names), with their pictures."""
    tree = kohya_tree(root)
    dataset = root / "dataset.toml"
    dataset.write_text(
        DATASET_TOML.format(img=tree["img"].as_posix(), reg=tree["reg"].as_posix()), encoding="utf-8"
    )
    config = root / "config.toml"
    config.write_text(FLAT_CONFIG.format(dataset=dataset.as_posix(), root=root.as_posix()), encoding="utf-8")
    (root / "prompts.txt").write_text(
        f"{TRIGGER}, 1girl, smile --n lowres --w 1024 --h 1024 --d 1 --l 6 --s 28\n# a comment\n"
        f"{TRIGGER}, landscape, night\n",
        encoding="utf-8",
    )
    return config, dataset


def write_sectioned_vpred_config(root: Path) -> Path:
    """The sectioned v-prediction config over DreamBooth folders with `.caption` files, and its model file."""
    tree = kohya_tree(root, suffix=".caption")
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "noobaiXLNAIXL_vPred10Version.safetensors").write_bytes(b"")
    config = root / "noob.toml"
    config.write_text(
        SECTIONED_VPRED_CONFIG.format(
            img=tree["img"].as_posix(), reg=tree["reg"].as_posix(), root=root.as_posix()
        ),
        encoding="utf-8",
    )
    return config


def write_gui_config(root: Path) -> Path:
    """kohya_ss's saved JSON over DreamBooth folders."""
    tree = kohya_tree(root)
    path = root / "gui_lokr.json"
    path.write_text(json.dumps(gui_config(tree["img"], tree["reg"], root), indent=2), encoding="utf-8")
    return path
