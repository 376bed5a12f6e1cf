"""``fearkd stream``: a bundle applied to a live (LSL) or replayed signal, one window per step.

Samples arrive in chunks of shape (n_samples, n_channels) with their timestamps. A
:class:`RingBuffer` keeps the last window of every channel in a preallocated array written
twice (at ``i`` and ``i + capacity``), so the latest window is always a contiguous view and
the work per step does not grow with how long the stream has run. :class:`StreamPredictor`
emits one record per step (the bundle's ``window_s`` and ``step_s``): the window's time on the
recording's clock, the sample range ``[start, stop)`` of the stream it used, the level, one
probability per class and the latency. A window that holds a NaN sample, or samples lost in a
timestamp gap, gives a record with ``status = "no prediction: signal missing"`` instead.

Sources: :func:`replay_chunks` replays one trial of any dataset a fearkd reader opens on the
recording's clock (``speed`` x real time, or as fast as possible), :class:`LslSource` reads an
LSL stream through ``mne_lsl``. :class:`LslSink` publishes the probabilities as an LSL outlet.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator

import numpy as np

from ..errors import BundleError, FearkdError
from .bundle import Bundle

__all__ = ["RingBuffer", "StreamPredictor", "StreamStats", "replay_chunks", "pick_trial",
           "LslSource", "LslSink", "StreamNotFoundError", "MISSING", "OK"]

logger = logging.getLogger(__name__)

OK = "ok"
MISSING = "no prediction: signal missing"
#: A timestamp step larger than this many sample periods is a gap (samples were lost).
GAP_PERIODS = 1.5


class StreamNotFoundError(FearkdError):
    """No LSL stream of the requested name appeared within the timeout."""


class RingBuffer:
    """The last ``capacity`` samples of every channel, in constant memory.

    Parameters
    ----------
    n_channels, capacity : int

    Attributes
    ----------
    count : int
        Samples pushed so far (the stream's sample counter).
    last_missing : int
        Index of the last missing (NaN) sample pushed, -1 if none.
    """

    def __init__(self, n_channels: int, capacity: int) -> None:
        self.capacity = int(capacity)
        self._buf = np.zeros((int(n_channels), 2 * self.capacity), dtype=np.float32)
        self.count = 0
        self.last_missing = -1

    def push(self, samples: np.ndarray) -> None:
        """Append samples, shape (n, n_channels); NaN marks a missing sample."""
        samples = np.asarray(samples, dtype=np.float32)
        n = len(samples)
        if n == 0:
            return
        # one reduction in the usual case; the row-wise check only when the sum is not finite
        # (a NaN or inf sample, or a float32 overflow of finite ones)
        if not np.isfinite(np.add.reduce(samples, axis=None)):
            bad = np.flatnonzero(~np.isfinite(samples).all(axis=1))
            if bad.size:
                self.last_missing = self.count + int(bad[-1])
        if n > self.capacity:  # only the newest samples can ever be read
            self.count += n - self.capacity
            samples = samples[-self.capacity:]
            n = self.capacity
        pos = self.count % self.capacity
        first = min(n, self.capacity - pos)
        block = samples.T
        for off in (0, self.capacity):
            self._buf[:, off + pos:off + pos + first] = block[:, :first]
            self._buf[:, off:off + n - first] = block[:, first:]
        self.count += n

    def push_missing(self, n: int) -> None:
        """Append ``n`` missing samples (a gap in the input)."""
        if n <= 0:
            return
        k = min(int(n), self.capacity)
        self.count += int(n) - k
        self.push(np.full((k, self._buf.shape[0]), np.nan, dtype=np.float32))

    def window(self, stop: int) -> np.ndarray:
        """Samples ``[stop - capacity, stop)`` as a view, shape (n_channels, capacity).

        ``stop`` must be ``count`` (the newest window).
        """
        if stop != self.count or stop < self.capacity:
            raise ValueError(f"Only the newest full window can be read: stop={stop}, "
                             f"count={self.count}, capacity={self.capacity}.")
        pos = stop % self.capacity
        return self._buf[:, pos:pos + self.capacity]


class StreamStats:
    """Counts and latencies of a stream (for the summary printed at the end), in constant
    memory: the mean latency over every window, the p99 over the last :attr:`KEEP` windows.
    """

    #: Latencies kept for the p99 (a ring of float64, 512 KiB).
    KEEP = 65536

    def __init__(self) -> None:
        self.windows = 0
        self.missing = 0
        self.dropped = 0
        self._lat = np.zeros(self.KEEP)
        self._n = 0
        self._sum = 0.0

    def add_latency(self, seconds: float) -> None:
        """Record one prediction's latency (s)."""
        self._lat[self._n % self.KEEP] = seconds
        self._n += 1
        self._sum += seconds

    @property
    def latencies(self) -> np.ndarray:
        """The kept latencies (s), at most :attr:`KEEP`, oldest first."""
        if self._n <= self.KEEP:
            return self._lat[:self._n].copy()
        i = self._n % self.KEEP
        return np.concatenate([self._lat[i:], self._lat[:i]])

    def summary(self) -> dict:
        lat = self.latencies * 1e3
        return {"windows": self.windows, "predicted": self.windows - self.missing,
                "missing": self.missing, "dropped_samples": self.dropped,
                "latency_mean_ms": self._sum / self._n * 1e3 if self._n else math.nan,
                "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else math.nan}

    def line(self) -> str:
        s = self.summary()
        return (f"{s['windows']} windows ({s['missing']} without prediction), latency mean "
                f"{s['latency_mean_ms']:.3f} ms, p99 {s['latency_p99_ms']:.3f} ms, "
                f"{s['dropped_samples']} dropped samples")


class StreamPredictor:
    """One prediction per step of a bundle over a stream of samples.

    Parameters
    ----------
    bundle : Bundle
        A bundle whose graph takes raw samples (``input_kind == "samples"``).
    engine : {"onnx", "torch"}
        ``onnx``: the bundle's graph in onnxruntime on one thread (the faster one, see
        ``benchmarks/bench_stream.py``); ``torch``: :meth:`Bundle.predict_proba`.
    """

    def __init__(self, bundle: Bundle, engine: str = "onnx") -> None:
        if bundle.spec is None:
            raise BundleError("This bundle takes features (input_kind='features'), not raw "
                              "samples; `fearkd stream` needs a bundle trained with "
                              "band-power/mean-var features (see docs/BUNDLE.md).")
        if engine not in ("onnx", "torch"):
            raise ValueError(f"'engine' must be 'onnx' or 'torch', got {engine!r}.")
        self.bundle = bundle
        self.engine = engine
        spec = bundle.spec
        self.sfreq = spec.sfreq
        self.n_window = spec.n_samples
        step_s = float(bundle.manifest.get("windowing", {}).get("step_s",
                                                                 spec.n_samples / spec.sfreq))
        self.n_step = max(1, int(round(step_s * spec.sfreq)))
        self.ring = RingBuffer(len(spec.channels), self.n_window)
        self.stats = StreamStats()
        self._next_stop = self.n_window
        self._t0: float | None = None  # timestamp of sample 0 (the recording's clock)
        self._last_ts: float | None = None
        # the graph's input, preallocated: each step copies the newest window into it
        self._x = np.zeros((1, len(spec.channels), spec.n_samples), np.float32)
        self._names = tuple(bundle.class_names)
        self._keys = tuple(f"p_{c}" for c in self._names)
        if engine == "onnx":
            session = bundle.onnx_session()
            feed = {session.get_inputs()[0].name: self._x}
            run = session.run
            self._predict = lambda: run(None, feed)[0][0]
            self._predict()  # the first run allocates; keep it out of the latencies
        else:
            self._predict = lambda: bundle.predict_proba(self._x)[0]

    def push(self, samples: np.ndarray, timestamps: np.ndarray) -> list[dict]:
        """Add a chunk and return the records of every window it completes.

        Parameters
        ----------
        samples : ndarray, shape (n, n_channels)
            Channels in the bundle's order; NaN marks a missing sample.
        timestamps : ndarray, shape (n,)
            Seconds on the recording's clock; a step larger than 1.5 sample periods is a gap
            and the lost samples count as missing.
        """
        received = time.perf_counter()
        samples = np.asarray(samples)
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if len(samples) == 0:
            return []
        if self._t0 is None:
            self._t0 = float(timestamps[0])
        out: list[dict] = []
        gaps = self._gaps(timestamps)
        begin = 0
        for at, lost in gaps:
            out += self._take(samples[begin:at], received)
            self.ring.push_missing(lost)
            self.stats.dropped += lost
            begin = at
        out += self._take(samples[begin:], received)
        self._last_ts = float(timestamps[-1])
        return out

    def stalled(self, now_ts: float) -> list[dict]:
        """Records for the steps that passed without input, up to ``now_ts`` (stream clock)."""
        if self._last_ts is None:
            return []
        lost = int(math.floor((now_ts - self._last_ts) * self.sfreq))
        if lost < self.n_step:
            return []
        self.ring.push_missing(lost)
        self.stats.dropped += lost
        self._last_ts += lost / self.sfreq
        return self._emit(time.perf_counter())

    def _gaps(self, ts: np.ndarray) -> list[tuple[int, int]]:
        prev = self._last_ts if self._last_ts is not None else ts[0] - 1.0 / self.sfreq
        d = np.empty(len(ts))
        d[0] = ts[0] - prev
        np.subtract(ts[1:], ts[:-1], out=d[1:])
        d *= self.sfreq
        if d.max() <= GAP_PERIODS:
            return []
        where = np.flatnonzero(d > GAP_PERIODS)
        return [(int(i), int(round(d[i])) - 1) for i in where]

    def _take(self, samples: np.ndarray, received: float) -> list[dict]:
        out = []
        while len(samples):
            room = self._next_stop - self.ring.count
            if room <= 0:
                out += self._emit(received)
                continue
            self.ring.push(samples[:room])
            samples = samples[room:]
            out += self._emit(received)
        return out

    def _emit(self, received: float) -> list[dict]:
        out = []
        while self.ring.count >= self._next_stop:
            if self.ring.count > self._next_stop:  # a gap jumped past this window
                self._skip(out)
                continue
            out.append(self._record(received))
            self._next_stop += self.n_step
        return out

    def _skip(self, out: list[dict]) -> None:
        stop = self._next_stop
        out.append(self._missing(stop - self.n_window, stop))
        self._next_stop += self.n_step

    def _missing(self, start: int, stop: int) -> dict:
        self.stats.windows += 1
        self.stats.missing += 1
        rec = self._base(start, stop, MISSING)
        rec.update({"level": None, **{f"p_{c}": None for c in self.bundle.class_names},
                    "latency_ms": None})
        return rec

    def _base(self, start: int, stop: int, status: str) -> dict:
        return {"t_start": self._t0 + start / self.sfreq, "t": self._t0 + stop / self.sfreq,
                "start": start, "stop": stop, "status": status}

    def _record(self, received: float) -> dict:
        stop = self._next_stop
        start = stop - self.n_window
        if self.ring.last_missing >= start:
            return self._missing(start, stop)
        np.copyto(self._x[0], self.ring.window(stop))
        proba = self._predict()
        latency = time.perf_counter() - received
        self.stats.windows += 1
        self.stats.add_latency(latency)
        rec = self._base(start, stop, OK)
        rec["level"] = self._names[int(proba.argmax())]
        rec.update(zip(self._keys, proba.tolist(), strict=True))
        rec["latency_ms"] = latency * 1e3
        return rec


# ------------------------------------------------------------------------------ sources
def pick_trial(recordings, subject: str | None, trial: int | None):
    """The one trial to replay; ``subject``/``trial`` are required when there is a choice."""
    subjects = list(recordings.subjects)
    if subject is None:
        if len(subjects) != 1:
            raise ValueError(f"--replay: the data hold {len(subjects)} subjects "
                             f"{subjects[:8]}; choose one with --subject (e.g. --subject "
                             f"{subjects[0] if subjects else 'ID'}).")
        subject = subjects[0]
    if subject not in subjects:
        raise ValueError(f"--subject {subject!r}: not in the data, which hold {subjects[:8]}; "
                         f"choose one of them.")
    trials = recordings.load(subject).trials
    ids = [t.trial for t in trials]
    if trial is None:
        if len(trials) != 1:
            raise ValueError(f"--replay: subject {subject!r} has {len(trials)} trials "
                             f"{ids[:8]}; choose one with --trial (e.g. --trial {ids[0]}).")
        return trials[0]
    for t in trials:
        if t.trial == trial:
            return t
    raise ValueError(f"--trial {trial}: subject {subject!r} has trials {ids}; choose one of "
                     f"them.")


def trial_samples(trial, channels) -> np.ndarray:
    """The trial's samples of ``channels`` (already at one rate), shape (n, n_channels)."""
    rows = [trial.channel(c)[0] for c in channels]
    n = min(len(r) for r in rows)
    return np.stack([r[:n] for r in rows], axis=1).astype(np.float32)


def replay_chunks(samples: np.ndarray, sfreq: float, *, speed: float | None = 1.0,
                  chunk: int = 32) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Replay samples on the recording's clock.

    Parameters
    ----------
    samples : ndarray, shape (n, n_channels)
    sfreq : float
    speed : float or None
        Multiple of real time; None = as fast as possible. Sample ``k`` is released once
        ``(k + 1) / sfreq / speed`` seconds of wall time have passed, so ``N`` seconds of
        recording take ``N / speed`` seconds.
    chunk : int
        Samples per chunk.

    Yields
    ------
    (ndarray (m, n_channels), ndarray (m,))
        Samples and their timestamps ``k / sfreq`` (s).
    """
    n = len(samples)
    start = time.perf_counter()
    for i in range(0, n, chunk):
        j = min(n, i + chunk)
        if speed is not None:
            delay = start + j / sfreq / speed - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        yield samples[i:j], np.arange(i, j) / sfreq


class LslSource:
    """Chunks from an LSL stream (``mne_lsl``), channels matched to the bundle by name.

    Parameters
    ----------
    name : str
        The LSL stream's name.
    channels : sequence of str
        The bundle's channels, in order.
    sfreq : float
        The rate the bundle needs.
    timeout : float
        Seconds to wait for the stream.
    channel_map : dict, optional
        Stream channel name -> bundle name.
    """

    def __init__(self, name: str, channels, sfreq: float, *, timeout: float = 5.0,
                 channel_map: dict | None = None) -> None:
        from mne_lsl.lsl import StreamInlet, resolve_streams

        found = resolve_streams(timeout=timeout, name=name)
        if not found:
            seen = resolve_streams(timeout=min(1.0, timeout))
            listed = ", ".join(f"{s.name!r} ({s.stype}, {s.n_channels} ch, {s.sfreq:g} Hz)"
                               for s in seen) or "none"
            raise StreamNotFoundError(f"--lsl {name!r}: no LSL stream of that name within "
                                      f"{timeout:g} s; streams seen: {listed}. Start the "
                                      f"stream, pass one of those names, or raise --timeout.")
        info = found[0]
        if abs(info.sfreq - sfreq) > 1e-6:
            raise BundleError(f"--lsl {name!r} is sampled at {info.sfreq:g} Hz but the bundle "
                              f"needs {sfreq:g} Hz; stream at {sfreq:g} Hz or train a bundle "
                              f"at {info.sfreq:g} Hz.")
        self.inlet = StreamInlet(info, recover=False)
        self.inlet.open_stream(timeout=timeout)
        have = self.inlet.get_sinfo().get_channel_names() or []
        mapping = dict(channel_map or {})
        have = [mapping.get(c, c) for c in have]
        missing = [c for c in channels if c not in have]
        if missing:
            raise BundleError(f"--lsl {name!r} lacks channel(s) {missing} that the bundle "
                              f"needs; it needs {list(channels)} and the stream has {have}. "
                              f"Map names with --channel-map STREAM=BUNDLE.")
        self.index = np.asarray([have.index(c) for c in channels])
        self.sfreq = sfreq
        # remote (source) timestamps + correction = local clock
        self.correction = self.inlet.time_correction(timeout=timeout)

    def chunks(self, wait: float = 0.05) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (samples, timestamps) until the stream is lost; empty chunks when idle."""
        while True:
            try:
                data, ts = self.inlet.pull_chunk(timeout=wait, max_samples=1024)
            except Exception as exc:  # noqa: BLE001 - liblsl reports a lost stream this way
                logger.info("LSL stream ended: %s", exc)
                return
            if len(ts) == 0:
                yield np.empty((0, len(self.index)), np.float32), np.empty(0)
                continue
            data = np.asarray(data, dtype=np.float32).reshape(len(ts), -1)
            yield data[:, self.index], np.asarray(ts, dtype=np.float64)

    def now(self) -> float:
        """The source's clock now (the clock of the stream's timestamps)."""
        from mne_lsl.lsl import local_clock

        return local_clock() - self.correction

    def close(self) -> None:
        self.inlet.close_stream()


class LslSink:
    """An LSL outlet of class probabilities (one channel per class, NaN = no prediction)."""

    def __init__(self, name: str, class_names, rate: float) -> None:
        from mne_lsl.lsl import StreamInfo, StreamOutlet

        info = StreamInfo(name, "Probabilities", len(class_names), rate, "float32",
                          f"fearkd-{name}")
        info.set_channel_names(list(class_names))
        self.names = list(class_names)
        self.outlet = StreamOutlet(info)

    def push(self, record: dict) -> None:
        row = np.asarray([np.nan if record[f"p_{c}"] is None else record[f"p_{c}"]
                          for c in self.names], dtype=np.float32)
        self.outlet.push_sample(row)
