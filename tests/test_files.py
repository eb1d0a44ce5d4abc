"""gancore.files: paths written into shared files name no machine's folders."""

from gancore.files import portable_path


def test_a_path_below_the_working_directory_becomes_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "out" / "teacher") == "out/teacher"
    assert portable_path("out/teacher") == "out/teacher"


def test_a_path_elsewhere_stays_as_given(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert portable_path(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")
