from gafu.layout import concept_folder_name, list_pictures, parse_concept_folder
from tests.conftest import write_picture


def test_concept_folder_names():
    assert concept_folder_name(2, "Sakuragi Mizuha") == "2_Sakuragi_Mizuha"
    assert concept_folder_name(2, 'a:b/c"d') == "2_a_b_c_d"
    assert parse_concept_folder("2_Sakuragi_Mizuha") == (2, "Sakuragi_Mizuha")
    assert parse_concept_folder("reg") is None
    assert parse_concept_folder("0_x") is None


def test_list_pictures_reads_concept_folders_only(tmp_path):
    write_picture(tmp_path / "2_mzh" / "b.png")
    write_picture(tmp_path / "2_mzh" / "a.png")
    write_picture(tmp_path / "notes" / "c.png")
    (tmp_path / "2_mzh" / "a.txt").write_text("x", encoding="utf-8")
    pictures = list_pictures(tmp_path, "target")
    assert [p.key for p in pictures] == ["2_mzh/a.png", "2_mzh/b.png"]
    assert pictures[0].caption_path.name == "a.txt" and pictures[0].repeats == 2
