"""Peak RAM and time of loading an SDXL single-file checkpoint: gafu's loader vs diffusers' pipeline loader.

Writes a synthetic checkpoint in SGM layout (fp16, zero weights, written tensor by tensor) with
SDXL's architecture — full size, or `--size half` (half the widths, a quarter of the weights) —
then loads it in fresh processes:

- baseline: `StableDiffusionXLPipeline.from_single_file` (diffusers reads the whole file, then
  converts), every component in the training dtype;
- gafu: `gafu.models.load.load_base_model` (component by component, cast as read; VAE in fp32).

Printed figures are peak RAM above the process's starting point, as a ratio of the bytes of the
loaded weights (1.0 = no memory beyond the weights themselves), and the time ratio.

    python bench/model_loading.py --size half
    python bench/model_loading.py --size full --skip-baseline   # ~7 GB file, ~8 GB RAM
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def half_size_configs(folder: Path) -> Path:
    """SDXL's configs with every width halved (same blocks, layers and names)."""
    from gafu.models.configs import sdxl_config_dir

    source = sdxl_config_dir()
    edits = {
        "unet": {
            "block_out_channels": [160, 320, 640],
            "cross_attention_dim": 1024,
            "projection_class_embeddings_input_dim": 640 + 6 * 256,
        },
        "text_encoder": {
            "hidden_size": 384,
            "intermediate_size": 1536,
            "num_attention_heads": 6,
            "projection_dim": 384,
        },
        "text_encoder_2": {
            "hidden_size": 640,
            "intermediate_size": 2560,
            "num_attention_heads": 10,
            "projection_dim": 640,
        },
        "vae": {"block_out_channels": [64, 128, 256, 256]},
    }
    for name in ("unet", "vae", "text_encoder", "text_encoder_2", "scheduler"):
        config_name = "scheduler_config.json" if name == "scheduler" else "config.json"
        config = json.loads((source / name / config_name).read_text("utf-8"))
        config.update(edits.get(name, {}))
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / config_name).write_text(json.dumps(config, indent=2), "utf-8")
    (folder / "model_index.json").write_text((source / "model_index.json").read_text("utf-8"), "utf-8")
    return folder


def child(which: str, checkpoint: Path, config_dir: Path, tokenizers: Path) -> dict:
    """Load once in this (fresh) process and report peak RAM and the loaded weights' bytes."""
    import diffusers  # imported before measuring: the libraries' own memory is not the weights'
    import torch
    import transformers

    from gafu.models import load
    from gafu.models.memory import PeakMemory

    assert diffusers and transformers and load
    with PeakMemory() as memory:
        if which == "gafu":
            from gafu.models.load import load_base_model

            model = load_base_model(
                checkpoint, config_dir=config_dir, tokenizers=tokenizers, dtype=torch.bfloat16
            )
            parts = [model.unet, model.vae, model.text_encoder, model.text_encoder_2]
        else:
            from diffusers import StableDiffusionXLPipeline
            from transformers import CLIPTokenizer

            pipe = StableDiffusionXLPipeline.from_single_file(
                str(checkpoint),
                config=str(config_dir),
                local_files_only=True,
                torch_dtype=torch.bfloat16,
                tokenizer=CLIPTokenizer.from_pretrained(tokenizers / "tokenizer"),
                tokenizer_2=CLIPTokenizer.from_pretrained(tokenizers / "tokenizer_2"),
            )
            parts = [pipe.unet, pipe.vae, pipe.text_encoder, pipe.text_encoder_2]
    weights = sum(p.numel() * p.element_size() for part in parts for p in part.parameters())
    return {"added_bytes": memory.added_bytes, "weights_bytes": weights, "seconds": memory.seconds}


def run_child(which: str, checkpoint: Path, config_dir: Path, tokenizers: Path) -> dict:
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, __file__, "--child", which, str(checkpoint), str(config_dir), str(tokenizers)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["half", "full"], default="half")
    parser.add_argument("--skip-baseline", action="store_true", help="only gafu's loader (saves RAM)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, checkpoint, config_dir, tokenizers = args.child
        print(json.dumps(child(which, Path(checkpoint), Path(config_dir), Path(tokenizers))))
        return

    from gafu.models.configs import sdxl_config_dir
    from gafu.models.synthetic import write_synthetic_checkpoint
    from gafu.models.tokenizers import clip_bpe_file, clip_vocabulary, write_sdxl_tokenizers

    with tempfile.TemporaryDirectory(prefix="gafu-bench-") as tmp:
        folder = Path(tmp)
        config_dir = half_size_configs(folder / "config") if args.size == "half" else sdxl_config_dir()
        write_sdxl_tokenizers(folder / "tokenizers", *clip_vocabulary(clip_bpe_file()))
        checkpoint = folder / "synthetic-sdxl.safetensors"
        started = time.perf_counter()
        size = write_synthetic_checkpoint(checkpoint, config_dir, fill="zeros")
        seconds = time.perf_counter() - started
        print(f"checkpoint: {args.size}-size SDXL, fp16, {size / 1e9:.2f} GB (written in {seconds:.0f} s)")
        results = {"gafu": run_child("gafu", checkpoint, config_dir, folder / "tokenizers")}
        if not args.skip_baseline:
            results["diffusers pipeline"] = run_child(
                "diffusers", checkpoint, config_dir, folder / "tokenizers"
            )
        for name, r in results.items():
            weights, added = r["weights_bytes"], r["added_bytes"]
            print(
                f"{name:>18}: weights {weights / 1e9:.2f} GB, peak RAM added {added / 1e9:.2f} GB "
                f"= {added / weights:.2f}x the weights, {r['seconds']:.1f} s"
            )
        if "diffusers pipeline" in results:
            base, ours = results["diffusers pipeline"], results["gafu"]
            print(
                f"gafu / baseline: peak RAM added {ours['added_bytes'] / base['added_bytes']:.2f}x, "
                f"time {ours['seconds'] / base['seconds']:.2f}x"
            )


if __name__ == "__main__":
    main()
