"""A progress bar over the pictures of `render_samples`, for terminals (`gafu sample`, `gafu demo`)."""

from __future__ import annotations

import sys
from pathlib import Path


class PictureBar:
    """A tqdm bar on stderr over the pictures of the sheets (nothing when disabled).

    Pass `start` as `render_samples`' `on_start` and `picture` as its `on_picture`.
    """

    def __init__(self, *, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def start(self, total: int) -> None:
        """Open the bar for `total` pictures."""
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="picture", file=sys.stderr, dynamic_ncols=True)

    def picture(self, path: Path, rendered: bool) -> None:
        """One more picture done (rendered, or kept from before)."""
        if self.bar is not None:
            self.bar.update()

    def close(self) -> None:
        """Close the bar, if one was opened."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
