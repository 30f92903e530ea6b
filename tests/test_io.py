"""Atomic writes: the file appears whole, with the permissions of an ordinary write, and no temp file stays."""
import stat

import pytest

from jaxfer.runtime import files


def test_atomic_write_follows_umask_and_leaves_no_temp_file(tmp_path):
    files.atomic_write_bytes(tmp_path / "results.json", b"{}")
    assert (tmp_path / "results.json").read_bytes() == b"{}"
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o666 & ~files._UMASK  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
    files.atomic_write_bytes(tmp_path / "a.csv", b"old")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        files.atomic_write(tmp_path / "a.csv", fail)
    assert (tmp_path / "a.csv").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]
