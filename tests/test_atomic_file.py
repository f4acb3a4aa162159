"""experiment.atomic_file: a replaced file is the old content or the new, and a failed write leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiment.atomic_file import write_text_atomic


def test_replaces_the_content_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "doc.json"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_a_failed_replace_keeps_what_was_there_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "doc.json"
    target.mkdir()  # os.replace cannot put a file over a directory: the write fails after the temporary file exists
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        write_text_atomic(target, "new")
    assert (target / "inside").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]  # no .doc.json.<pid> left


def test_a_missing_directory_is_an_oserror_for_the_caller_to_word(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        write_text_atomic(tmp_path / "no" / "doc.json", "new")
    assert not (tmp_path / "no").exists()
