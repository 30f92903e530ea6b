"""Atomic writes: the file appears whole, with the permissions of an ordinary write, and no temp file stays."""
import errno
import os
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


def test_a_full_disk_is_one_line_naming_the_file_and_the_space_it_needs(tmp_path):
    files.atomic_write_bytes(tmp_path / "a.csv", b"old")

    def full(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(files.DiskFull) as e:
        files.atomic_write(tmp_path / "a.csv", full, size=3 * 2**20)
    assert str(e.value).startswith(f"no space left on the device for {tmp_path / 'a.csv'} (about 3.0 MiB needed, ")
    assert "\n" not in str(e.value)
    assert (tmp_path / "a.csv").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


@pytest.mark.parametrize("text, reason", [
    ("", "empty"), ("a,b\r\n", "no rows"), ("a,b\r\n1,2\r\n3", "its last line is cut short"),
    ("a,b\r\n1,2\r\n3\r\n", "row 2 is incomplete"), ("a,b\r\n,2\r\n", "row 1 is incomplete"),
    ("x,b\r\n1,2\r\n", "no column 'a'")])
def test_a_table_cut_short_or_edited_is_named_in_one_line(tmp_path, text, reason):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(files.DamagedFile, match=f"t.csv is damaged \\({reason}\\)"):
        files.read_csv(tmp_path / "t.csv", ("a",), rows=True)
    files.write_csv(tmp_path / "w.csv", [{"a": 1, "b": 2.5}])
    assert files.read_csv(tmp_path / "w.csv", ("a",), rows=True) == [{"a": "1", "b": "2.5"}]
