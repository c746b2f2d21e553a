"""Every default of the recipe, in one place, each citing its rule in RECIPE.md.

Stages and the config read these names; nothing else in gafu writes a recipe number.
Values the article leaves open are marked "gafu's choice" with the reason.
"""

from __future__ import annotations

# --- D: data -------------------------------------------------------------------------
TARGET_MIN_PICTURES = 40  # D1: "40 or more is typical"
REG_TO_TARGET_RATIO = (0.5, 2.0)  # D2: "about as many pictures as the target set"
PAD_SIDE_RANGE = (1024, 1536)  # D4a: SDXL's training side .. Illustrious' training side
BUCKET_MAX_SIDE = 1536  # D4b: longest side at most 1536
BUCKET_STEP = 64  # D4b: both sides multiples of 64, or the bucketing crops them
# gafu's floor for [train] resolution and [prep] max_side: one bucket step, so a tiny model (tests,
# `gafu demo`'s 64 px model) trains at its own side; the plan warns below a real model's side (D4).
MIN_TRAINING_SIDE = BUCKET_STEP
PAD_BACKGROUND = "white"  # D4a: black or white; white matches the WD tagger's own padding
UPSCALE_WARN_FACTOR = 2.0  # gafu's choice: more than 2x upscaling visibly softens line art
TARGET_FOLDER_NAME = "train"  # D5: outer folder given to the trainer
REG_FOLDER_NAME = "reg"  # D5
REG_CONCEPT_NAME = "reg"  # D5: `<repeats>_reg`
# D5: `image.png` + `image.txt`; `.caption` is what sd-scripts reads by default and some taggers write.
ORIGINAL_CAPTION_SUFFIXES = (".txt", ".caption")

# --- T: tags -------------------------------------------------------------------------
TAGGER = "SmilingWolf/wd-vit-large-tagger-v3"  # T1
TARGET_THRESHOLD = 0.5  # T2: fewer tags on the target, so the trigger soaks up more
REG_THRESHOLD = 0.35  # T2: more tags on regularization, so ordinary tags soak up other styles
CHARACTER_THRESHOLD = 0.85  # gafu's choice: the WD v3 authors' suggested character threshold
SCORE_FLOOR = 0.05  # gafu's choice: keep every probability above this for re-thresholding
UNWANTED_TAGS = (  # T4: features that must be tagged so they are not learned as style
    "censored",
    "mosaic censoring",
    "bar censor",
    "letterboxed",
    "pillarboxed",
    "watermark",
    "signature",
)
# D1: the tagger's tags that say how a picture is drawn rather than what it shows; `gafu check`
# compares their probabilities across the target set to find pictures of another period or
# technique (gafu's choice of Danbooru tags; the ones a tagger lacks are skipped).
STYLE_TAGS = (
    "monochrome",
    "greyscale",
    "sketch",
    "lineart",
    "flat_color",
    "traditional_media",
    "faux_traditional_media",
    "watercolor_(medium)",
    "realistic",
    "3d",
    "pixel_art",
    "oekaki",
    "colorful",
    "pastel_colors",
    "muted_color",
    "limited_palette",
    "partially_colored",
    "spot_color",
    "high_contrast",
    "halftone",
    "screentone",
    "film_grain",
    "chromatic_aberration",
    "retro_artstyle",
    "1980s_(style)",
    "1990s_(style)",
    "anime_coloring",
)
LETTERBOXED = "letterboxed"  # T4: bars added at top and bottom
PILLARBOXED = "pillarboxed"  # T4: bars added left and right

# --- P: training ---------------------------------------------------------------------
EPOCHS = 200  # P1
GOOD_EPOCH_AT_WEIGHT_1 = 100  # P1: "about 100 epochs at weight 1.0 is typically good"
SAVE_EVERY_EPOCHS = 10  # P1 "saving along the way"; gafu's choice of 10 → 20 files to pick from
REPEATS = 2  # P3: default repeats
STEPS_PER_EPOCH_WITH_REG = 2  # P2+P3: effective batch = repeats × N, an epoch = 2 × repeats × N
UNET_LR = 1.3e-3  # P4
UNET_LR_RANGE = (1e-3, 1.5e-3)  # P4: the sensible range
TEXT_ENCODER_LR_RATIO = 0.5  # P4: one half of the U-Net LR (one tenth is the other choice)
TEXT_ENCODER_LR_RATIOS = (0.5, 0.1)  # P4
SCHEDULER = "cosine_with_restarts"  # P5
RESTART_EVERY_EPOCHS = 50  # P5: a cycle every 50 epochs → 4 cycles over 200 epochs
OPTIMIZER = "adamw"  # P5: AdamW (or "adamw8bit")
OPTIMIZERS = ("adamw", "adamw8bit")  # P5; Prodigy is out of scope
NETWORK_ALGO = "lokr"  # P6
LINEAR_DIM = 128  # P6: more dim, more detail
CONV_DIM = 64  # P6
CONV_DIM_MAX = 64  # P6: the LyCORIS author advises no more than 64
FACTOR = 8  # P6: 8 is the default; 4 gives a ~200 MB file with more detail
LYCORIS_PRESET = "full"  # P6: LyCORIS's default preset
# gafu's choice: alpha = dim, so every module trains at scale 1. LyCORIS forces scale 1 in
# full-matrix mode anyway (most SDXL modules at dim 128 / factor 8); alpha = dim gives the few
# low-rank modules (feed-forward 5120/10240) the same scale, as kohya_ss's SDXL LoKr preset does.
ALPHA_EQUALS_DIM = True
KEEP_TOKENS = 1  # P7: the trigger stays first
SHUFFLE_CAPTION = True  # P7
CAPTION_DROPOUT = 0.0  # P7: every kind of caption/tag dropout stays off
# P8: multi-resolution noise. The article's values are in a lost screenshot; gafu uses the
# values kohya's sd-scripts documents as recommended (iterations 6–10, discount 0.3).
MULTIRES_NOISE_ITERATIONS = 6
MULTIRES_NOISE_DISCOUNT = 0.3
PRIOR_LOSS_WEIGHT = 1.0  # P3: regularization samples weigh as much as target samples
MAX_GRAD_NORM = 1.0  # gafu's choice: kohya's default gradient clipping
SEED = 42  # gafu's choice
KEEP_STATES = 2  # gafu's choice: resumable states kept
SAVE_DTYPE = "fp16"  # gafu's choice: fp16 loads in every UI, including on GPUs without bf16
SAMPLE_WEIGHTS = (0.0, 0.5, 1.0, 1.5)  # P10: the style at several weights
SAMPLE_SEED = 1234  # P10: fixed, so grids of different epochs compare
SAMPLE_NEGATIVE = "lowres, worst quality, bad quality, bad anatomy, jpeg artifacts, watermark"

# --- the style probe (gafu eval): measures the claim of "Why the recipe works" ------------------
# gafu's choices, sized so a probe at every save costs well under 5 % of the epochs between saves
# (docs/benchmarks.md): a few pictures per set, scored at a few timesteps spread over the schedule.
PROBE_PICTURES = 4  # per set: target pictures (with and without the trigger) and reg pictures
PROBE_TIMESTEPS = 8  # fixed timesteps, the centres of equal slices of the noise schedule
PROBE_SEED = 20240  # the probe's fixed noise: the same draws for every evaluation
PROBE_FIT_SHARE = 0.8  # `gafu eval` suggests at a fit of at least this share of the largest fit
