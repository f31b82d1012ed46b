"""atomic_write_bytes: the complete file or the old one, with the permissions an ordinary write would give."""
import os
import stat

import pytest

from stylegan.atomic_write import atomic_write_bytes


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_mode_of_an_ordinary_write(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.png", b"new")
        with open(tmp_path / "b.png", "wb") as f:
            f.write(b"plain")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "a.png").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "b.png").st_mode) == 0o666 & ~umask
    assert (tmp_path / "a.png").read_bytes() == b"new"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "c.pt"
    target.write_bytes(b"old")

    def crash(tmp):
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        atomic_write_bytes(target, b"new", before_replace=crash)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
