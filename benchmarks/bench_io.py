"""Read throughput and peak memory of the DEAP reader on synthetic full-size DEAP.

Writes (in a child process, so that writing does not count in this process's peak memory) or
reuses a synthetic DEAP of 40 trials x 40 channels x 8064 samples per subject (.dat, float64),
then iterates it subject by subject through ``load_deap`` and touches every trial's signals.
Reference measured in the same run: plain ``open().readinto()`` of the same files into one
reused buffer (the disk / page-cache ceiling for reading these bytes). Each pass is repeated;
medians and spreads are printed, with our speed as a ratio to the reference.

Usage::

    python benchmarks/bench_io.py --subjects 2
    python benchmarks/bench_io.py --subjects 32 --root /tmp/deap-full --keep

The last line of output is one JSON object with stable keys.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fearkd.datasets.deap import load_deap

_WRITE = (
    "import sys; from fearkd.datasets.synthetic.deap import write_deap; "
    "write_deap(sys.argv[1], n_subjects=int(sys.argv[2]), n_trials=40, seconds=63.0, seed=0, "
    "ratings_csv=False)"
)


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _files(root: Path, n: int) -> list[Path]:
    return [root / "data_preprocessed_python" / f"s{i:02d}.dat" for i in range(1, n + 1)]


def _reference_pass(files: list[Path], buf: bytearray) -> float:
    t0 = time.perf_counter()
    for p in files:
        with open(p, "rb", buffering=0) as f:
            view = memoryview(buf)
            while f.readinto(view):
                pass
    return time.perf_counter() - t0


def _our_pass(root: Path, n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    checksum = 0.0
    for subject in load_deap(root, subjects=list(range(1, n + 1))):
        for trial in subject:
            # touch every modality so nothing is left unread
            checksum += sum(float(s.data[:, -1].sum()) for s in trial.signals.values())
    return time.perf_counter() - t0, checksum


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=32, help="subjects to write/read (1-32)")
    ap.add_argument("--root", type=Path, help="existing or new folder for the synthetic DEAP")
    ap.add_argument("--keep", action="store_true", help="keep the written files")
    ap.add_argument("--repeats", type=int, default=3, help="passes of each reader")
    args = ap.parse_args(argv)
    n = args.subjects
    if not 1 <= n <= 32:
        ap.error(f"--subjects must be 1-32, got {n}")

    tmp = None
    root = args.root
    if root is None:
        tmp = Path(tempfile.mkdtemp(prefix="fearkd-bench-io-"))
        root = tmp
    try:
        files = _files(root, n)
        write_s = None
        if not all(p.is_file() for p in files):
            print(f"writing {n} synthetic full-size DEAP subject(s) to {root} ...", flush=True)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", _WRITE, str(root), str(n)], check=True)
            write_s = time.perf_counter() - t0
            print(f"  written in {write_s:.1f} s ({write_s / n:.2f} s per subject)")
        nbytes = sum(p.stat().st_size for p in files)
        rss_start = _rss_mb()

        ours, refs = [], []
        for _ in range(args.repeats):
            seconds, _checksum = _our_pass(root, n)
            ours.append(seconds)
        peak_ours = _peak_rss_mb()
        buf = bytearray(max(p.stat().st_size for p in files))
        for _ in range(args.repeats):
            refs.append(_reference_pass(files, buf))
        del buf

        mb = nbytes / 1e6
        our_mb_s = mb / statistics.median(ours)
        ref_mb_s = mb / statistics.median(refs)
        print(f"files: {n} x .dat, {mb:,.1f} MB in total")
        print(f"load_deap (restricted unpickler + Recordings): median {our_mb_s:,.0f} MB/s "
              f"over {args.repeats} pass(es), min-max {mb / max(ours):,.0f}-{mb / min(ours):,.0f}")
        print(f"reference raw readinto():                       median {ref_mb_s:,.0f} MB/s, "
              f"min-max {mb / max(refs):,.0f}-{mb / min(refs):,.0f}")
        print(f"ratio ours / reference: {our_mb_s / ref_mb_s:.2f}")
        print(f"RSS before reading {rss_start:,.0f} MB; peak RSS while reading "
              f"{peak_ours:,.0f} MB (one subject file is {nbytes / n / 2**20:,.0f} MiB)")
        result = {
            "bench": "io",
            "n_subjects": n,
            "bytes": nbytes,
            "repeats": args.repeats,
            "read_mb_s": round(our_mb_s, 1),
            "ref_read_mb_s": round(ref_mb_s, 1),
            "ratio_to_ref": round(our_mb_s / ref_mb_s, 3),
            "peak_rss_mb": round(peak_ours, 1),
            "rss_start_mb": round(rss_start, 1),
            "write_s": None if write_s is None else round(write_s, 2),
        }
        print(json.dumps(result))
        return result
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            print(f"kept {tmp}", file=sys.stderr)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
