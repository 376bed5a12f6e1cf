"""The restricted unpickler and the hand-built Python-2 DEAP pickle stream."""

from __future__ import annotations

import os
import pickle
import pickletools
import subprocess

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


# ---- corpus: honest NumPy pickles at every protocol load; hostile ones are refused ----------

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def _deap_like(dtype, order="C"):
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((2, 3, 5)) * 100).astype(dtype)
    labels = (rng.uniform(1, 9, (2, 4)) * 10).astype(dtype)
    return {"data": np.asarray(data, order=order), "labels": np.asarray(labels, order=order)}


HONEST = {
    "float64": _deap_like("f8"),
    "float32": _deap_like("f4"),
    "int": {"data": _deap_like("i4")["data"], b"labels": _deap_like("i8")["labels"]},
    "unsigned-bool": {"u": np.arange(6, dtype="u2"), "b": np.array([True, False, True])},
    "complex-half": {"c": np.array([1 + 2j, -3j], dtype="c8"), "h": np.arange(3, dtype="f2")},
    "fortran": _deap_like("f8", order="F"),
    "big-endian": {"data": np.arange(6, dtype=">f8").reshape(2, 3)},
    "0-d-and-empty": {"scalar": np.array(2.5), "empty": np.zeros((0, 4)), b"n": np.array(7)},
    "strided": {"data": np.arange(20.0)[::3]},
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_numpy_pickles_load_at_every_protocol(name, protocol):
    payload = HONEST[name]
    blob = pickle.dumps(payload, protocol=protocol)
    ours, reference = safe_loads(blob, filename="s01.dat"), pickle.loads(blob)
    assert set(ours) == set(payload)
    for key, expected in payload.items():
        got = ours[key]
        assert type(got) is np.ndarray and got.shape == expected.shape
        assert got.dtype == reference[key].dtype and got.dtype.kind == expected.dtype.kind
        assert got.flags.f_contiguous == reference[key].flags.f_contiguous
        np.testing.assert_array_equal(got, expected)


def test_python3_protocol2_pickle_loads_from_a_file(tmp_path):
    # The case of issue 23: cleaned DEAP arrays re-saved in DEAP's own format (protocol 2).
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps(_deap_like("f8"), protocol=2))
    out = safe_load(path)
    np.testing.assert_array_equal(out["data"], _deap_like("f8")["data"])


def test_out_of_band_buffers_are_a_format_error():
    buffers = []
    blob = pickle.dumps({"data": np.arange(3.0)}, protocol=5, buffer_callback=buffers.append)
    assert buffers
    match = r"o\.dat: .*out-of-band buffers.*without buffer_callback"
    with pytest.raises(FormatError, match=match):
        safe_loads(blob, filename="o.dat")


class _Reduce:
    """An object that pickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch(marker):
    return f"touch {marker}"


def _dtype_build(state: bytes) -> bytes:
    return b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R" + state + b"b."


def _hostile(marker):
    """(name, pickle bytes, expected match) of payloads that must be refused."""
    cmd = _touch(marker)
    py = f"open({str(marker)!r}, 'w').close()"
    m = str(marker).encode()
    cases = [
        ("os.system REDUCE", pickle.dumps({"data": _Reduce(os.system, cmd)}, 2), r"\.system"),
        ("subprocess.call", pickle.dumps(_Reduce(subprocess.call, ["touch", str(marker)]), 4),
         r"subprocess\.call"),
        ("builtins.eval", pickle.dumps(_Reduce(eval, py), 2), r"__builtin__\.eval"),
        ("builtins.exec p5", pickle.dumps(_Reduce(exec, py), 5), r"builtins\.exec"),
        ("getattr GLOBAL", b"c__builtin__\ngetattr\n(cos\nsystem\nS'x'\ntR.", r"getattr"),
        ("__import__ STACK_GLOBAL",
         b"\x80\x04\x8c\x08builtins\x8c\n__import__\x93\x8c\x02os\x85R.", r"__import__"),
        ("os.system GLOBAL p0", b"cos\nsystem\n(S'touch " + m + b"'\ntR.", r"os\.system"),
        ("nested reduce chain",
         pickle.dumps({"a": np.arange(2.0), "b": [_Reduce(getattr, _Reduce(os.system, cmd),
                                                          "x")]}, 2), r"getattr|system"),
        ("codecs utf-8", b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00utf-8"
         b"\x86R.", r"_codecs\.encode.*latin1"),
        ("codecs rot13", b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00rot_13"
         b"\x86R.", r"_codecs\.encode"),
        ("codecs non-str", b"\x80\x02c_codecs\nencode\nC\x01aX\x06\x00\x00\x00latin1\x86R.",
         r"_codecs\.encode"),
        ("codecs 3 args", b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00latin1"
         b"X\x06\x00\x00\x00strict\x87R.", r"_codecs\.encode"),
        ("bytes with argument", b"\x80\x02c__builtin__\nbytes\nK\x05\x85R.", r"bytes\(5,\)"),
        ("_frombuffer object dtype",
         b"\x80\x02cnumpy._core.numeric\n_frombuffer\n(C\x08\x00\x00\x00\x00\x00\x00\x00\x00"
         b"cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87RK\x01\x85X\x01\x00\x00\x00CtR.",
         r"object dtype"),
        ("dtype('O')", b"\x80\x02cnumpy\ndtype\nX\x01\x00\x00\x00O\x89\x88\x87R.",
         r"object dtype"),
        ("structured dtype", b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00V8\x89\x88\x87R.",
         r"non-numeric dtype"),
        ("longdouble dtype", b"\x80\x02cnumpy\ndtype\nX\x03\x00\x00\x00f16\x89\x88\x87R.",
         r"non-numeric dtype"),
        ("dtype BUILD crafted", _dtype_build(b"(K\x03X\x01\x00\x00\x00<NNNJ\x00\x00\x01\x00"
                                             b"J\xff\xff\xff\xffK\x00t"), r"dtype BUILD"),
        ("dtype BUILD fields", _dtype_build(b"(K\x03X\x01\x00\x00\x00<N}NJ\xff\xff\xff\xff"
                                            b"J\xff\xff\xff\xffK\x00t"), r"dtype BUILD"),
        ("dtype BUILD object flags", _dtype_build(b"(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff"
                                                  b"\xffJ\xff\xff\xff\xffK?t"), r"dtype BUILD"),
        ("ndarray called", b"\x80\x02cnumpy\nndarray\nK\x03\x85R.", r"calls ndarray"),
        ("_reconstruct object", b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray"
         b"\nK\x00\x85U\x01O\x87R.", r"_reconstruct"),
        ("NEWOBJ", b"\x80\x02cnumpy\nndarray\nK\x03\x85\x81.", r"calls a class directly"),
        ("BUILD on a dict", b"\x80\x02}}b.", r"BUILD state on a dict"),
        ("persistent id", b"\x80\x02U\x03abcQ.", r"persistent id"),
    ]
    return cases


HOSTILE_NAMES = [name for name, _, _ in _hostile("m")]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_pickles_are_refused_and_nothing_runs(tmp_path, name):
    marker = tmp_path / "MARKER"
    _, blob, match = next(c for c in _hostile(marker) if c[0] == name)
    path = tmp_path / "s09.dat"
    path.write_bytes(blob)
    with pytest.raises(UnsafeFileError, match=r"^s09\.dat: refused to load: .*" + match) as err:
        safe_load(path)
    message = str(err.value)
    assert "\n" not in message and "re-save the arrays with numpy.save" in message
    assert not marker.exists()


def test_crafted_dtype_build_no_longer_reaches_numpy():
    # Before: numpy.dtype + BUILD with this state raised SystemError inside NumPy.
    blob = _dtype_build(b"(K\x03X\x01\x00\x00\x00<NNNJ\x00\x00\x01\x00J\xff\xff\xff\xffK\x00t")
    match = r"x\.dat: .*dtype BUILD state .*NumPy writes \(3, '<'"
    with pytest.raises(UnsafeFileError, match=match):
        safe_loads(blob, filename="x.dat")


def test_honest_messages_do_not_say_malicious(tmp_path):
    for protocol in PROTOCOLS:
        assert safe_loads(pickle.dumps(HONEST["float64"], protocol=protocol))
    with pytest.raises(UnsafeFileError) as err:
        safe_loads(pickle.dumps(_Reduce(eval, "1"), 2), filename="e.dat")
    assert "malicious" not in str(err.value)


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"\x80\x02cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R.", None),
        (b"\x80\x02cnumpy.core.numeric\n_frombuffer\n(C\x07\x00\x00\x00\x00\x00\x00\x00cnumpy"
         b"\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87RK\x01\x85X\x01\x00\x00\x00CtR.",
         r"f\.dat: not a readable pickle .*buffer of 7 bytes"),
    ],
)
def test_wrong_sizes_are_format_errors(blob, match):
    if match is None:  # the bare dtype is fine: it is what every array pickle holds
        assert safe_loads(blob) == np.dtype("f8")
        return
    with pytest.raises(FormatError, match=match):
        safe_loads(blob, filename="f.dat")


@pytest.mark.parametrize("opcode", [b"\x8d", b"\x8e", b"\x8c"])  # BINUNICODE8, BINBYTES8, SHORT
def test_an_absurd_length_field_is_a_named_error_not_a_memory_error(opcode, tmp_path):
    """A bit flip in a length field claimed 7e18 bytes: the unpickler asked the file for them
    and died with MemoryError (found by `make fuzz`). Reads are bounded by the bytes left.
    A real file, not BytesIO: a file object allocates what a read asks for."""
    size = 7089066062912191746 if opcode != b"\x8c" else 255
    width = 8 if opcode != b"\x8c" else 1
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.PROTO + bytes([4]) + opcode + size.to_bytes(width, "little") + b"abc")
    with pytest.raises(FormatError, match=r"s01\.dat: not a readable pickle .* truncated or "
                                          r"corrupt"):
        safe_load(path)
