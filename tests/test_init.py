import hashlib

import pytest

from gafu.cli import main
from gafu.config import load_config
from gafu.errors import GafuError
from gafu.init import init_project
from gafu.project import Project
from gafu.trigger import validate_trigger
from tests.conftest import write_picture


def _tree_digest(folder):
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(path.relative_to(folder).as_posix().encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def folders(tmp_path):
    target, reg = tmp_path / "target", tmp_path / "reg"
    write_picture(target / "a.png")
    write_picture(reg / "b.png", seed=5)
    return target, reg


def test_init_writes_a_config_and_touches_no_originals(tmp_path, folders):
    target, reg = folders
    before = _tree_digest(tmp_path / "target"), _tree_digest(tmp_path / "reg")
    result = init_project(tmp_path / "proj", target=target, reg=reg, trigger="mzh_style", family="noob-vpred")
    assert result.config_path == tmp_path / "proj" / "gafu.toml"
    config = load_config(result.config_path)
    assert config.project.trigger == "mzh_style" and config.project.family == "noob-vpred"
    assert config.sources.target == target.resolve().as_posix()
    assert (_tree_digest(tmp_path / "target"), _tree_digest(tmp_path / "reg")) == before
    project = Project.open(tmp_path / "proj")
    assert project.concept_dir("target").relative_to(project.root).as_posix() == "dataset/train/2_mzh_style"
    assert project.concept_dir("reg").relative_to(project.root).as_posix() == "dataset/reg/2_reg"


def test_init_refuses_to_overwrite_without_force(tmp_path, folders):
    target, _ = folders
    init_project(tmp_path / "proj", target=target, trigger="mzh_style")
    with pytest.raises(GafuError, match="--force"):
        init_project(tmp_path / "proj", target=target, trigger="other_style")
    init_project(tmp_path / "proj", target=target, trigger="other_style", force=True)
    assert load_config(tmp_path / "proj" / "gafu.toml").project.trigger == "other_style"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"target": "missing"}, "does not exist"),
        ({"reg": "target"}, "overlap"),
        ({"family": "sd15"}, "unknown model family"),
        ({"repeats": 0}, "at least 1"),
        ({"model": "no/such/file.safetensors"}, "neither an existing file"),
    ],
)
def test_init_bad_arguments(tmp_path, folders, kwargs, needle):
    target, _ = folders
    args = {"target": target, "trigger": "mzh_style"}
    for key, value in kwargs.items():
        args[key] = tmp_path / value if key in ("target", "reg") else value
    with pytest.raises(GafuError, match=needle):
        init_project(tmp_path / "proj", **args)
    assert not (tmp_path / "proj" / "gafu.toml").exists()


def test_init_accepts_hub_ids_and_local_models(tmp_path, folders):
    target, _ = folders
    result = init_project(
        tmp_path / "p1", target=target, trigger="mzh_style", model="OnomaAIResearch/Illustrious-xl"
    )
    assert result.config.model.path == "OnomaAIResearch/Illustrious-xl"
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"x")
    result = init_project(tmp_path / "p2", target=target, trigger="mzh_style", model=str(checkpoint))
    assert result.config.model.path == checkpoint.resolve().as_posix()


@pytest.mark.parametrize(
    ("trigger", "needle"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a, b", "comma"),
        ("a\nb", "line break"),
        ("long_hair", "ordinary tag"),
        ("Long Hair", "ordinary tag"),
        ("watercolor_(medium)", "ordinary tag"),
    ],
)
def test_refused_triggers(trigger, needle):
    with pytest.raises(GafuError, match=needle):
        validate_trigger(trigger)


def test_trigger_warnings():
    assert validate_trigger("mzh_style") == []
    assert "common English word" in validate_trigger("soft")[0]
    assert any("prompt syntax" in w for w in validate_trigger("mzh(style)"))


def test_the_taggers_own_vocabulary_is_used(tmp_path):
    tagger = tmp_path / "tagger"
    tagger.mkdir()
    (tagger / "selected_tags.csv").write_text(
        "tag_id,name,category,count\n1,zzq_unusual_tag,0,10\n", encoding="utf-8"
    )
    from gafu.trigger import tagger_vocabulary

    vocab = tagger_vocabulary(str(tagger))
    with pytest.raises(GafuError, match="ordinary tag"):
        validate_trigger("zzq unusual tag", vocab)


def test_cli_init(tmp_path, folders, capsys):
    target, _reg = folders
    code = main(["init", str(tmp_path / "proj"), "--target", str(target), "--trigger", "mzh_style"])
    assert code == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "no regularization folder" in captured.err
    code = main(["init", str(tmp_path / "proj2"), "--target", str(target), "--trigger", "1girl"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("gafu: error: ") and err.count("\n") == 1


def test_cli_output_into_a_closed_pipe(tmp_path, folders, monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    target, _ = folders
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    code = main(["init", str(tmp_path / "proj"), "--target", str(target), "--trigger", "mzh_style"])
    assert code == 0  # the reader went away (`gafu … | head`): not an error, and the work is kept
    assert (tmp_path / "proj" / "gafu.toml").is_file()
