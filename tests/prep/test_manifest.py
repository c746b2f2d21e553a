import pytest

from gafu.errors import GafuError
from gafu.prep.manifest import Manifest, ManifestEntry, load_manifest, save_manifest


def test_manifest_round_trip(tmp_path):
    path = tmp_path / ".gafu" / "prep-manifest.json"
    assert load_manifest(path).entries == {}
    entry = ManifestEntry(
        set="target",
        source="/art/a.jpg",
        source_sha256="ab",
        source_size=(1200, 800),
        settings="k1",
        output_size=(1536, 1536),
        bars="letterboxed",
        scale=1.28,
        crop=None,
        notes=["upscaled 1.28x"],
    )
    save_manifest(Manifest({"dataset/train/2_x/a.png": entry}), path)
    loaded = load_manifest(path)
    assert loaded.entries["dataset/train/2_x/a.png"] == entry
    assert loaded.bars_for("dataset/train/2_x/a.png") == "letterboxed"
    assert loaded.bars_for("unknown.png") is None


def test_damaged_manifest_is_a_clear_error(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"version": 1, "entries": {"a.png": {"set": "target"}}}', encoding="utf-8")
    with pytest.raises(GafuError, match="delete it"):
        load_manifest(path)
    path.write_text('{"version": 99}', encoding="utf-8")
    with pytest.raises(GafuError, match="not a prep manifest"):
        load_manifest(path)


def test_saving_an_unchanged_manifest_rewrites_nothing(tmp_path):
    path = tmp_path / "m.json"
    assert save_manifest(Manifest(), path) is True
    mtime = path.stat().st_mtime_ns
    assert save_manifest(Manifest(), path) is False
    assert path.stat().st_mtime_ns == mtime
