import pytest

from fearkd._atomic import atomic_open


def test_replaces_the_file_only_when_the_block_ends_cleanly(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with atomic_open(target) as fh:
        fh.write(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError, match="boom"), atomic_open(target) as fh:
        fh.write(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"first"  # untouched by the failed write
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]  # no temp left


def test_text_mode_and_bad_mode(tmp_path):
    with atomic_open(tmp_path / "a.txt", "w") as fh:
        fh.write("text")
    assert (tmp_path / "a.txt").read_text() == "text"
    with pytest.raises(ValueError, match="Invalid value for 'mode'"), \
            atomic_open(tmp_path / "b", "a"):
        pass
