import io

import numpy as np
import pytest
from PIL import Image

from gafu.images import (
    BLACK,
    WHITE,
    PictureError,
    PictureHash,
    list_source_pictures,
    load_picture,
    near_duplicate_pairs,
    perceptual_hash,
    resize_area,
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


def test_flat_pictures_of_different_colours_are_not_duplicates(tmp_path):
    """D2: the hash sees only luminance structure; a hash match must also have the same colours."""
    Image.new("RGB", (256, 256), (30, 60, 200)).save(tmp_path / "blue.png")
    Image.new("RGB", (256, 256), (200, 30, 30)).save(tmp_path / "red.png")
    Image.new("RGB", (200, 200), (34, 62, 196)).save(tmp_path / "blue_again.jpg", quality=85)
    hashes = {p.name: perceptual_hash(load_picture(p).image) for p in sorted(tmp_path.iterdir())}
    assert hashes["blue.png"].structure - hashes["red.png"].structure == 0  # the hash alone: "identical"
    assert [(a, b) for a, b, _ in near_duplicate_pairs(hashes)] == [("blue.png", "blue_again.jpg")]
    assert near_duplicate_pairs({"t": hashes["blue.png"]}, {"r": hashes["red.png"]}) == []


def test_picture_hashes_round_trip_as_text_and_old_ones_still_match():
    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    stored = perceptual_hash(image)
    assert PictureHash.parse(str(stored)) == stored and len(stored.colours) == 4 * 4 * 3
    old = PictureHash.parse(str(stored.structure))  # written before gafu compared colours
    assert old.colours == b"" and [(a, b) for a, b, _ in near_duplicate_pairs({"a": stored, "b": old})] == [
        ("a", "b")
    ]


def _area_average_by_blocks(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV INTER_AREA's definition, computed another way: each source pixel split into equal
    sub-pixels on the common grid of both sizes, then the mean of each output pixel's block."""
    height, width = pixels.shape[:2]
    out_w, out_h = size
    grid_h, grid_w = np.lcm(height, out_h), np.lcm(width, out_w)
    fine = pixels.astype(np.float64).repeat(grid_h // height, axis=0).repeat(grid_w // width, axis=1)
    blocks = fine.reshape(out_h, grid_h // out_h, out_w, grid_w // out_w, -1)
    return blocks.mean(axis=(1, 3))


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((30, 20), (12, 8)),
        ((45, 36), (20, 24)),
        ((64, 48), (32, 24)),
        ((35, 21), (15, 9)),
        ((15, 26), (11, 23)),  # 11 × (15 / 11) < 15 in floating point: the last pixel counted once
    ],
)
def test_resize_area_averages_the_area_under_each_pixel(source, target):
    pixels = np.random.default_rng(sum(source)).integers(0, 256, (source[1], source[0], 3), dtype=np.uint8)
    resized = np.asarray(resize_area(Image.fromarray(pixels), target)).astype(np.float64)
    exact = _area_average_by_blocks(pixels, target)
    assert resized.shape == (target[1], target[0], 3)
    assert np.abs(resized - exact).max() <= 0.5 + 1e-9  # rounded to 8 bits
    # Off halves, the nearest 8-bit value; OpenCV's exact 2 × 2 path rounds halves up.
    halving = source == (2 * target[0], 2 * target[1])
    expected = np.floor(exact + 0.5) if halving else np.rint(exact)
    decided = halving | ~np.isclose(exact % 1, 0.5, atol=1e-6)
    assert np.array_equal(resized[decided], expected[decided])
    with pytest.raises(ValueError, match="shrinks only"):
        resize_area(Image.fromarray(pixels), (source[0] + 1, source[1]))
