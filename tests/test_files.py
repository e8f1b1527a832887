"""serving/files.py: atomic writes with one permission policy (the umask's), and streamed hashes."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from serving import files


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_and_folders_get_the_umasks_modes_not_the_temporary_ones(tmp_path, umask_027):
    files.write_text(tmp_path / "a.json", "{}\n")
    assert mode(tmp_path / "a.json") == 0o640  # readable by the group that runs the service; not 0600 from mkstemp
    with files.atomic_folder(tmp_path / "bundle") as folder:
        (folder / "inner").mkdir()
        (folder / "inner" / "w.bin").write_bytes(b"x")
        os.chmod(folder / "inner" / "w.bin", 0o600)  # as safetensors writes it
    assert mode(tmp_path / "bundle") == 0o750 and mode(tmp_path / "bundle" / "inner") == 0o750
    assert mode(tmp_path / "bundle" / "inner" / "w.bin") == 0o640


def test_a_failed_write_leaves_the_old_version_and_no_temporary(tmp_path):
    files.write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), files.atomic_file(tmp_path / "a.txt") as stream:
        stream.write("half")
        raise RuntimeError("crash")
    with files.atomic_folder(tmp_path / "b") as folder:
        (folder / "x").write_text("old")
    with pytest.raises(RuntimeError), files.atomic_folder(tmp_path / "b") as folder:
        (folder / "x").write_text("new")
        raise RuntimeError("crash")
    assert (tmp_path / "a.txt").read_text() == "old" and (tmp_path / "b" / "x").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b"]


def test_a_folder_replaces_the_earlier_one_whole(tmp_path):
    with files.atomic_folder(tmp_path / "b") as folder:
        (folder / "old-only").write_text("1")
    with files.atomic_folder(tmp_path / "b") as folder:
        (folder / "new").write_text("2")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_file_sha256_streams_the_whole_file(tmp_path):
    data = os.urandom(3 * files.READ_BLOCK + 17)
    (tmp_path / "big").write_bytes(data)
    assert files.file_sha256(tmp_path / "big") == hashlib.sha256(data).hexdigest()
