"""`fearkd stream`: ring buffer, parity with predict_proba, replay timing, real LSL in and out."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fearkd
from fearkd.cli import main
from fearkd.config import load_config
from fearkd.datasets.loaders import open_dataset
from fearkd.datasets.synthetic import write_deap
from fearkd.deploy.stream import (
    MISSING,
    OK,
    RingBuffer,
    StreamPredictor,
    replay_chunks,
    trial_samples,
)
from fearkd.deploy.train import train_final

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def model(deap_root, tmp_path_factory, write_experiment):
    folder = tmp_path_factory.mktemp("stream")
    exp = write_experiment(folder, name="stream-test", backbones=("ann",), methods=("method1",),
                           kd_targets=("soft",), window=2.0, step=0.5)
    bundle = train_final(load_config(exp), data_path=deap_root)
    return bundle.save(folder / "model.fkd")


@pytest.fixture(scope="module")
def short_deap(tmp_path_factory):
    """One subject, two 8 s trials: a short recording to replay at speed 1."""
    return write_deap(tmp_path_factory.mktemp("short"), n_subjects=1, n_trials=2, seconds=8.0,
                      seed=3)


def _trial(root, subject="s01", index=0):
    return open_dataset(root).load(subject).trials[index]


def _stream(bundle, x, engine="onnx", chunk=37):
    pred = StreamPredictor(bundle, engine=engine)
    recs = []
    for s, ts in replay_chunks(x, bundle.spec.sfreq, speed=None, chunk=chunk):
        recs += pred.push(s, ts)
    return pred, recs


def test_ring_buffer_holds_the_last_window_after_many_pushes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 3)).astype(np.float32)
    ring, i = RingBuffer(3, 256), 0
    while i < len(x):
        n = int(rng.integers(1, 400))
        ring.push(x[i:i + n])
        i = min(len(x), i + n)
        if ring.count >= 256:
            assert np.array_equal(ring.window(ring.count), x[ring.count - 256:ring.count].T)
    assert ring.count == 5000


def test_ring_buffer_flags_nan_samples_only_where_they_are():
    ring = RingBuffer(2, 8)
    ring.push(np.ones((5, 2), np.float32))
    assert ring.last_missing == -1
    x = np.ones((6, 2), np.float32)
    x[3, 1] = np.nan
    ring.push(x)
    assert ring.last_missing == 5 + 3
    big = np.full((4, 2), 3e38, np.float32)  # finite, but their float32 sum overflows
    ring.push(big)
    assert ring.last_missing == 8


def test_stream_stats_keep_constant_memory_and_the_mean_over_all():
    from fearkd.deploy.stream import StreamStats

    stats = StreamStats()
    stats.KEEP = 4
    stats._lat = np.zeros(4)
    for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
        stats.add_latency(v)
    assert stats.latencies.tolist() == [3.0, 4.0, 5.0, 6.0]  # the last KEEP, oldest first
    assert stats._lat.nbytes == 32
    stats.windows = 6
    assert stats.summary()["latency_mean_ms"] == pytest.approx(3500.0)


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_every_streamed_prediction_equals_predict_proba_on_its_samples(model, deap_root,
                                                                        engine):
    b = fearkd.load_bundle(model)
    x = trial_samples(_trial(deap_root), b.spec.channels)
    pred, recs = _stream(b, x, engine)
    n, step = b.spec.n_samples, pred.n_step
    assert len(recs) == (len(x) - n) // step + 1
    assert all(r["status"] == OK for r in recs)
    windows = np.stack([x[r["start"]:r["stop"]].T for r in recs])
    expected = b.predict_proba(windows)
    got = np.array([[r[f"p_{c}"] for c in b.class_names] for r in recs])
    assert np.abs(got - expected).max() <= 1e-5
    assert [r["level"] for r in recs] == [b.class_names[i] for i in expected.argmax(1)]
    assert recs[0]["t"] == pytest.approx(n / 128) and recs[1]["start"] == step


def test_nan_samples_and_gaps_give_missing_records_not_a_crash(model, deap_root):
    b = fearkd.load_bundle(model)
    x = trial_samples(_trial(deap_root), b.spec.channels)
    x[600, 3] = np.nan
    ts = np.arange(len(x)) / 128.0
    keep = np.ones(len(x), bool)
    keep[1200:1264] = False  # half a second lost
    pred = StreamPredictor(b)
    recs = pred.push(x[keep], ts[keep])
    n = b.spec.n_samples
    for r in recs:
        hit_nan = r["start"] <= 600 < r["stop"]
        hit_gap = r["start"] < 1264 and r["stop"] > 1200
        assert (r["status"] == MISSING) == (hit_nan or hit_gap), r
        if r["status"] == OK:
            p = b.predict_proba(x[r["start"]:r["stop"]].T[None])[0]
            assert np.abs(np.array([r[f"p_{c}"] for c in b.class_names]) - p).max() <= 1e-5
    assert len(recs) == (len(x) - n) // pred.n_step + 1
    assert pred.stats.dropped == 64 and pred.stats.missing > 0


def test_replay_at_speed_1_takes_the_recordings_duration(model, short_deap):
    b = fearkd.load_bundle(model)
    x = trial_samples(_trial(short_deap), b.spec.channels)
    seconds = len(x) / 128.0
    assert 6.0 <= seconds <= 10.0
    pred = StreamPredictor(b)
    start = time.perf_counter()
    recs = []
    for s, ts in replay_chunks(x, 128.0, speed=1.0, chunk=pred.n_step):
        recs += pred.push(s, ts)
    wall = time.perf_counter() - start
    assert abs(wall - seconds) <= 0.02 * seconds, (wall, seconds)
    assert recs[-1]["t"] == pytest.approx(seconds)


def test_cli_replay_max_prints_jsonl_and_a_summary(model, deap_root, capsys):
    b = fearkd.load_bundle(model)
    start = time.perf_counter()
    assert main(["stream", str(model), "--replay", str(deap_root), "--subject", "s02",
                 "--trial", "3", "--speed", "max"]) == 0
    assert time.perf_counter() - start < 5.0
    out, err = capsys.readouterr()
    recs = [json.loads(line) for line in out.splitlines()]
    trial = next(t for t in open_dataset(deap_root).load("s02").trials if t.trial == 3)
    x = trial_samples(trial, b.spec.channels)
    assert len(recs) == (len(x) - b.spec.n_samples) // 64 + 1
    p = b.predict_proba(np.stack([x[r["start"]:r["stop"]].T for r in recs]))
    got = np.array([[r[f"p_{c}"] for c in b.class_names] for r in recs])
    assert np.abs(got - p).max() <= 1e-5
    assert f"{len(recs)} windows (0 without prediction)" in err and "p99" in err


def test_stream_command_never_imports_torch(model, deap_root):
    """``fearkd stream`` loads the bundle and runs its ONNX graph without torch (the CLI
    builds only the invoked subcommand's parser; the bundle builds its torch network on first
    use): what keeps the command's peak memory near 200 MB instead of 400 MB
    (``benchmarks/bench_stream.py``). Failed before both changes."""
    code = ("import sys; from fearkd.cli import main; rc = main(sys.argv[1:]); "
            "print('torch imported' if 'torch' in sys.modules else 'no torch', file=sys.stderr);"
            " sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    res = subprocess.run([sys.executable, "-c", code, "stream", str(model), "--replay",
                          str(deap_root), "--subject", "s02", "--trial", "3", "--speed", "max"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == "no torch"
    assert len(res.stdout.splitlines()) > 0


def test_cli_replay_csv(model, deap_root, capsys):
    assert main(["stream", str(model), "--replay", str(deap_root), "--subject", "s01",
                 "--trial", "1", "--speed", "max", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("t,t_start,start,stop,status,level,p_none,p_low,p_medium,p_high,"
                        "latency_ms")
    assert len(lines) > 10 and lines[1].split(",")[4] == OK


@pytest.mark.parametrize("argv, match", [
    (["--speed", "fast"], r"--speed: .*positive number .* or 'max', got 'fast'"),
    (["--timeout", "0"], r"--timeout: .*positive number of seconds, got '0'"),
    ([], r"the data hold 3 subjects .*choose one with --subject"),
    (["--subject", "s09"], r"--subject 's09': not in the data"),
    (["--subject", "s01"], r"subject 's01' has 12 trials .*choose one with --trial"),
    (["--subject", "s01", "--trial", "99"], r"--trial 99: subject 's01' has trials"),
])
def test_bad_stream_arguments_are_one_line_exit_2(model, deap_root, capsys, argv, match):
    try:
        rc = main(["stream", str(model), "--replay", str(deap_root), "--speed", "max"] + argv)
    except SystemExit as exc:  # argparse refuses a bad flag value
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(match, err), err


# ------------------------------------------------------------------- real LSL, in subprocesses
_OUTLET = """
import sys, time, numpy as np
from mne_lsl.lsl import StreamInfo, StreamOutlet
x = np.load(sys.argv[1]); names = sys.argv[2].split(','); speed = float(sys.argv[3])
info = StreamInfo('fearkd-test-in', 'EEG', x.shape[1], 128.0, 'float32', 'fearkd-test-in')
info.set_channel_names(names)
out = StreamOutlet(info, chunk_size=16)
if not out.wait_for_consumers(90):
    sys.exit(3)
# the wrong-name probe consumes nothing; wait for the stream command's inlet
time.sleep(0.5)
t0 = time.perf_counter()
for i in range(0, len(x), 16):
    out.push_chunk(np.ascontiguousarray(x[i:i + 16]))
    time.sleep(max(0.0, t0 + (i + 16) / 128.0 / speed - time.perf_counter()))
time.sleep(2.5)  # stay open but silent: a stalled input
"""

_READER = """
import sys, numpy as np
from mne_lsl.lsl import StreamInlet, resolve_streams
found = resolve_streams(timeout=60, name='fearkd-test-out')
inlet = StreamInlet(found[0]); inlet.open_stream(timeout=10)
rows = []
import time
end, quiet = time.time() + float(sys.argv[2]), 0.0
while time.time() < end and quiet < 3.0:
    d, ts = inlet.pull_chunk(timeout=0.2)
    if len(ts):
        rows += list(np.asarray(d).reshape(len(ts), -1))
    quiet = 0.0 if len(ts) or not rows else quiet + 0.2
print(inlet.get_sinfo().get_channel_names(), file=sys.stderr)
np.save(sys.argv[1], np.array(rows))
"""


@pytest.fixture
def lsl_env(tmp_path):
    cfg = tmp_path / "lsl_api.cfg"
    cfg.write_text("[ports]\nIPv6 = disable\n[lab]\nResolveScope = machine\n")
    return {**os.environ, "LSLAPICFG": str(cfg), "PYTHONPATH": str(SRC)}


def test_lsl_stream_in_and_probabilities_out(model, deap_root, tmp_path, lsl_env):
    b = fearkd.load_bundle(model)
    x = trial_samples(_trial(deap_root, "s03", 2), b.spec.channels)[:128 * 6]
    np.save(tmp_path / "x.npy", x)
    py = sys.executable
    outlet = subprocess.Popen([py, "-c", _OUTLET, str(tmp_path / "x.npy"),
                               ",".join(b.spec.channels), "8"], env=lsl_env)
    try:
        probe = subprocess.Popen([py, "-m", "fearkd.cli", "stream", str(model), "--lsl",
                                  "no-such-stream", "--timeout", "1"], env=lsl_env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reader = subprocess.Popen([py, "-c", _READER, str(tmp_path / "out.npy"), "50"],
                                  env=lsl_env, stderr=subprocess.PIPE, text=True)
        cli = subprocess.Popen([py, "-m", "fearkd.cli", "stream", str(model), "--lsl",
                                "fearkd-test-in", "--lsl-out", "fearkd-test-out"], env=lsl_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        probe_err = probe.communicate(timeout=60)[1]
        assert probe.returncode == 2
        assert "no LSL stream of that name within 1 s; streams seen:" in probe_err
        assert "'fearkd-test-in' (EEG, 22 ch, 128 Hz)" in probe_err
        assert outlet.wait(timeout=120) == 0
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=20)
        reader_err = reader.communicate(timeout=60)[1]
    finally:
        for proc in (outlet,):
            if proc.poll() is None:
                proc.kill()
    recs = [json.loads(line) for line in out.splitlines()]
    ok = [r for r in recs if r["status"] == OK]
    assert len(ok) == (len(x) - b.spec.n_samples) // 64 + 1, err
    p = b.predict_proba(np.stack([x[r["start"]:r["stop"]].T for r in ok]))
    got = np.array([[r[f"p_{c}"] for c in b.class_names] for r in ok])
    assert np.abs(got - p).max() <= 1e-5
    assert any(r["status"] == MISSING for r in recs[len(ok):]), "stall gave no record"
    assert "windows" in err and "p99" in err and "dropped samples" in err
    assert reader.returncode == 0, reader_err
    published = np.load(tmp_path / "out.npy")
    assert len(published) >= 1
    rows = np.array([[np.nan if r[f"p_{c}"] is None else r[f"p_{c}"] for c in b.class_names]
                     for r in recs], dtype=np.float32)
    for row in published:  # each published row is one of the records, as float32
        assert np.isclose(rows, row[None], equal_nan=True).all(axis=1).any()
