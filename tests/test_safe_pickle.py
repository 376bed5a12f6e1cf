"""The restricted unpickler and the hand-built Python-2 DEAP pickle stream."""

from __future__ import annotations

import os
import pickle
import pickletools

import numpy as np
import pytest

from fearkd.datasets._safe_pickle import safe_load, safe_loads
from fearkd.datasets.synthetic.deap import _array_head, _write_dat_stream, write_dat_file
from fearkd.errors import FormatError, UnsafeFileError


@pytest.fixture
def arrays():
    rng = np.random.default_rng(3)
    return {"labels": rng.uniform(1, 9, (3, 4)), "data": rng.standard_normal((3, 40, 300))}


@pytest.fixture
def dat(tmp_path, arrays):
    return write_dat_file(tmp_path / "s01.dat", arrays)


def test_stream_layout_is_python2_protocol2(dat):
    raw = dat.read_bytes()
    assert raw.startswith(b"\x80\x02}(U\x06labels")
    assert raw.endswith(b"tbu.")
    head = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
    assert raw.count(head) == 2
    ops = [op.name for op, _, _ in pickletools.genops(raw)]
    # Python-2 str opcodes only: no BINUNICODE / SHORT_BINUNICODE / BINBYTES from Python 3.
    assert "BINSTRING" in ops and "SHORT_BINSTRING" in ops and "NEWFALSE" in ops
    assert not {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"} & set(ops)
    assert ops.count("TUPLE3") >= 3 and ops[-2:] == ["SETITEMS", "STOP"]


def test_shape_ints_use_smallest_opcode():
    assert b"(K\x01K\x03K(M,\x01\x87" in _array_head((3, 40, 300), 8)
    assert b"(K\x01K\x01J\x80\x1a\x06\x00\x86" in _array_head((1, 400000), 8)
    assert b"(K\x01(K\x01K\x02K\x03K\x04t" in _array_head((1, 2, 3, 4), 8)


def test_default_encoding_fails_like_the_real_files(dat):
    with open(dat, "rb") as f, pytest.raises(UnicodeDecodeError):
        pickle.load(f)


def test_latin1_and_bytes_encodings(dat, arrays):
    with open(dat, "rb") as f:
        latin = pickle.load(f, encoding="latin1")
    assert set(latin) == {"data", "labels"}
    np.testing.assert_array_equal(latin["data"], arrays["data"])
    np.testing.assert_array_equal(latin["labels"], arrays["labels"])
    assert latin["data"].dtype == np.float64
    with open(dat, "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert set(raw) == {b"data", b"labels"}
    np.testing.assert_array_equal(raw[b"data"], arrays["data"])


def test_safe_load_reads_the_stream(dat, arrays):
    out = safe_load(dat)
    np.testing.assert_array_equal(out["data"], arrays["data"])
    np.testing.assert_array_equal(out["labels"], arrays["labels"])


def test_safe_load_accepts_python3_protocol4_pickles_with_bytes_keys():
    x = np.arange(12.0).reshape(3, 4)
    out = safe_loads(pickle.dumps({b"data": x, "labels": x[:, :2]}, protocol=4))
    np.testing.assert_array_equal(out[b"data"], x)
    np.testing.assert_array_equal(out["labels"], x[:, :2])


def test_python3_protocol2_bytes_need_codecs_and_are_refused():
    # Python 3 writes bytes in protocol 2 through _codecs.encode: not on the allow-list.
    with pytest.raises(UnsafeFileError, match=r"_codecs\.encode"):
        safe_loads(pickle.dumps({"data": np.arange(3.0)}, protocol=2))


class _System:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_os_system_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "s02.dat"
    path.write_bytes(pickle.dumps({"data": _System(f"touch {marker}")}, protocol=2))
    with pytest.raises(UnsafeFileError, match=r"s02\.dat: refused to load.*(posix|os|nt)\.system"):
        safe_load(path)
    assert not marker.exists()


def test_builtins_open_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "written"
    payload = f"c__builtin__\nopen\n(V{marker}\nVw\ntR.".encode()
    path = tmp_path / "s03.dat"
    path.write_bytes(payload)
    with pytest.raises(UnsafeFileError, match=r"s03\.dat: .*__builtin__\.open"):
        safe_load(path)
    assert not marker.exists()


def test_evil_global_after_a_valid_array_is_refused(tmp_path, arrays):
    marker = tmp_path / "late"
    good = tmp_path / "good.dat"
    write_dat_file(good, {"data": arrays["labels"]})
    evil = good.read_bytes()[:-2] + f"U\x04evilcposix\nsystem\n(Vtouch {marker}\ntRu.".encode()
    path = tmp_path / "s04.dat"
    path.write_bytes(evil)
    with pytest.raises(UnsafeFileError, match="posix.system"):
        safe_load(path)
    assert not marker.exists()


def test_object_dtype_is_refused():
    payload = b"\x80\x02cnumpy\ndtype\nU\x02O8K\x00K\x01\x87R."
    with pytest.raises(UnsafeFileError, match=r"x\.dat: .*object dtype"):
        safe_loads(payload, filename="x.dat")


def test_persistent_id_is_refused():
    with pytest.raises(UnsafeFileError, match="persistent id"):
        safe_loads(b"\x80\x02U\x03abcQ.", filename="p.dat")


def test_truncated_and_garbage_streams_are_format_errors(tmp_path, dat):
    cut = tmp_path / "s05.dat"
    cut.write_bytes(dat.read_bytes()[: dat.stat().st_size // 2])
    with pytest.raises(FormatError, match=r"s05\.dat: not a readable pickle .*truncated"):
        safe_load(cut)
    junk = tmp_path / "s06.dat"
    junk.write_bytes(b"this is not a pickle at all")
    with pytest.raises(FormatError, match=r"s06\.dat: not a readable pickle"):
        safe_load(junk)
    empty = tmp_path / "s07.dat"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match=r"s07\.dat: not a readable pickle \(EOFError"):
        safe_load(empty)


def test_stream_writer_checks_sizes(tmp_path):
    with pytest.raises(ValueError, match=r"Chunks hold 40 bytes; shape \(2, 3\) needs 48"):
        _write_dat_stream(tmp_path / "a.dat", [("data", (2, 3), [np.zeros(5)])])
    with pytest.raises(ValueError, match=r"too large for a protocol-2 BINSTRING"):
        _write_dat_stream(tmp_path / "b.dat", [("data", (2**28,), [])])
    assert list(tmp_path.iterdir()) == []
