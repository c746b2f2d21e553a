"""Finding the tagger: local folders, the hub cache (offline), and the error when it is nowhere."""

import shutil

import pytest

from gafu.errors import GafuError
from gafu.tagging.labels import read_labels
from gafu.tagging.locate import find_labels_on_disk, locate_tagger
from gafu.trigger import tagger_vocabulary
from tests.conftest import fake_hub_cache


def test_a_local_folder_or_its_model_file_names_the_tagger(tiny_tagger):
    files = locate_tagger(str(tiny_tagger))
    assert files.model == tiny_tagger / "model.onnx" and files.labels == tiny_tagger / "selected_tags.csv"
    assert locate_tagger(str(tiny_tagger / "model.onnx")).model == files.model
    relative = locate_tagger(tiny_tagger.name, base=tiny_tagger.parent)
    assert relative.model == files.model


def test_a_folder_missing_a_file_says_which(tiny_tagger, tmp_path):
    folder = tmp_path / "half"
    folder.mkdir()
    shutil.copy(tiny_tagger / "selected_tags.csv", folder)
    with pytest.raises(GafuError, match=r"has no model\.onnx.*selected_tags\.csv"):
        locate_tagger(str(folder))


def test_a_hub_id_is_loaded_from_the_cache_offline(tiny_tagger):
    revision = fake_hub_cache("gafu-test/tiny-wd-tagger", tiny_tagger)
    files = locate_tagger("gafu-test/tiny-wd-tagger")
    assert files.reference == "gafu-test/tiny-wd-tagger"
    assert files.model.parent.name == revision and files.model.name == "model.onnx"
    assert read_labels(files.labels).names == read_labels(tiny_tagger / "selected_tags.csv").names
    assert find_labels_on_disk("gafu-test/tiny-wd-tagger") == files.labels
    assert "flat color" in tagger_vocabulary("gafu-test/tiny-wd-tagger")


def test_a_hub_id_that_is_not_cached_offline_names_both_files_and_the_fix():
    with pytest.raises(GafuError) as caught:
        locate_tagger("SmilingWolf/wd-vit-large-tagger-v3")
    message = str(caught.value)
    assert "SmilingWolf/wd-vit-large-tagger-v3" in message and "offline" in message
    assert "model.onnx" in message and "selected_tags.csv" in message
    assert "--tagger FOLDER" in message and "[tag]" in message
    assert find_labels_on_disk("SmilingWolf/wd-vit-large-tagger-v3") is None


def test_something_neither_a_folder_nor_a_hub_id_is_refused(tmp_path):
    with pytest.raises(GafuError, match="neither a folder nor a hub repo id"):
        locate_tagger(str(tmp_path / "no" / "such" / "folder"))
