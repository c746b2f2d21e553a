"""gafu (画風): from a folder of one artist's pictures to a style LoKr for SDXL-family anime models."""

__version__ = "0.1.0"
