import io

import numpy as np
import pytest
from PIL import Image

from gafu.images import (
    BLACK,
    WHITE,
    PictureError,
    list_source_pictures,
    load_picture,
    near_duplicate_pairs,
    perceptual_hash,
)
from tests.conftest import write_picture


def test_transparency_is_composited_on_the_background(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    rgba.save(tmp_path / "a.png")
    on_white = load_picture(tmp_path / "a.png", WHITE).image
    on_black = load_picture(tmp_path / "a.png", BLACK).image
    assert on_white.mode == "RGB" and on_white.getpixel((5, 5)) == (255, 255, 255)
    assert on_black.getpixel((5, 5)) == (0, 0, 0)
    assert on_white.getpixel((0, 0)) == (0, 0, 255)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image.save(tmp_path / "r.jpg", exif=exif)
    loaded = load_picture(tmp_path / "r.jpg")
    assert loaded.image.size == (20, 40) == loaded.source_size


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.full((4, 4), 32896, dtype=np.uint16)  # ≈ 50 % grey in 16 bits
    Image.fromarray(values).save(tmp_path / "g16.png")
    pixel = load_picture(tmp_path / "g16.png").image.getpixel((0, 0))
    assert pixel == (128, 128, 128)


@pytest.mark.parametrize("mode", ["CMYK", "P", "L", "1", "LA"])
def test_other_modes_become_rgb(tmp_path, mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    path = write_picture(tmp_path / f"m.{fmt.lower()}", mode=mode, fmt=fmt)
    assert load_picture(path).image.mode == "RGB"


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0)]]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    loaded = load_picture(tmp_path / "a.gif")
    assert loaded.image.getpixel((1, 1))[0] > 200
    assert any("first frame" in note for note in loaded.notes)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "empty (0-byte)"),
        (b"hello, not a picture", "not a picture"),
    ],
)
def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(PictureError) as err:
        load_picture(path)
    assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_file(tmp_path):
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 50).convert("RGB").save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(PictureError, match="corrupt or truncated"):
        load_picture(tmp_path / "cut.jpg")


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    import gafu.images

    write_picture(tmp_path / "big.png", size=(200, 200))
    monkeypatch.setattr(gafu.images, "MAX_PIXELS", 100 * 100)
    with pytest.raises(PictureError, match="decompression bomb"):
        load_picture(tmp_path / "big.png")


def test_listing_skips_hidden_and_other_files(tmp_path):
    write_picture(tmp_path / "a.PNG")
    write_picture(tmp_path / "sub" / "b.webp", fmt="WEBP")
    write_picture(tmp_path / ".thumbs" / "c.png")
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    assert [p.name for p in list_source_pictures(tmp_path)] == ["a.PNG", "b.webp"]


def test_near_duplicates_survive_resizing_and_recompression(tmp_path):
    original = write_picture(tmp_path / "a.png", size=(256, 256), seed=1)
    Image.open(original).resize((200, 200)).save(tmp_path / "a_small.jpg", quality=80)
    write_picture(tmp_path / "other.png", size=(256, 256), seed=2)
    hashes = {p.name: perceptual_hash(load_picture(p).image) for p in sorted(tmp_path.iterdir())}
    pairs = near_duplicate_pairs(hashes)
    assert [(a, b) for a, b, _ in pairs] == [("a.png", "a_small.jpg")]
    across = near_duplicate_pairs(
        {"t": hashes["a.png"]}, {"r1": hashes["other.png"], "r2": hashes["a_small.jpg"]}
    )
    assert [(a, b) for a, b, _ in across] == [("t", "r2")]
