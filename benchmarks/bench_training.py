"""Training speed of the fast models against plain PyTorch layers and the machine's ceiling.

For each configuration (model, inputs, batch size) this times whole training epochs of the
registry's implementation (``cnn``; ``lstm`` and ``gru``, the fused whole-sequence functions)
and of the plain one (``cnn-plain``; ``lstm-plain``, ``gru-plain``: oneDNN-backed ``nn.LSTM``,
``nn.GRU``) through the same loop (:func:`fearkd.training.train_epoch`, with ``fit``'s Adam
from :func:`fearkd.training.make_optimizer`), alternating the two so both see the same machine
noise, and reports the median epoch time with its spread (min-max).

The ceiling is the float32 matrix-multiply rate measured in the same run (median of 7 timed
``torch.mm`` of two 2048 x 2048 matrices, ``2 * 2048**3`` FLOP each), right before and right
after each configuration's timings; the larger of the two is that configuration's reference
(noise only ever slows the reference down). On these shared machines the ceiling drifted by
up to 18 % within one run of all configurations (369 then 436 GFLOP/s), so a reference taken
minutes away from a configuration's timings misstated its share; the share against the
largest ceiling of the whole run is in the JSON too (``*_share_of_run_max``).
Work per sample is analytic (forward + backward multiply-adds only, see ``cnn_flops_per_sample`` and
``rnn_flops_per_sample``): 33.26 MFLOP for the CNN on 176 inputs, 16.16 on 86; 17.57 for
LSTM(64) and 13.18 for GRU(64) over 176 steps. ``share = samples/s * FLOP/sample / ceiling``.

Usage::

    python benchmarks/bench_training.py                 # N = 20,000, 3 repeats, 2 threads
    python benchmarks/bench_training.py --n 4096 --repeats 3 --only cnn176_b256

The last line of output is one JSON object with stable keys.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time

import numpy as np
import torch

from fearkd.models import cnn_flops_per_sample, make_model, rnn_flops_per_sample
from fearkd.training import make_optimizer, train_epoch

CONFIGS = {
    # key: (fast model, plain model, n_features, batch size)
    "cnn176_b32": ("cnn", "cnn-plain", 176, 32),
    "cnn176_b256": ("cnn", "cnn-plain", 176, 256),
    "cnn86_b256": ("cnn", "cnn-plain", 86, 256),
    "lstm176_b256": ("lstm", "lstm-plain", 176, 256),
    "gru176_b256": ("gru", "gru-plain", 176, 256),
}
N_OUTPUTS = 4
MM_SIZE = 2048


def matmul_ceiling(repeats: int = 7) -> float:
    """Median FLOP/s of a 2048 x 2048 float32 ``torch.mm``."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(MM_SIZE, MM_SIZE, generator=gen)
    b = torch.randn(MM_SIZE, MM_SIZE, generator=gen)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * MM_SIZE**3 / statistics.median(times)


def flops_per_sample(name: str, n_features: int) -> int:
    if name.startswith("cnn"):
        return cnn_flops_per_sample(n_features, N_OUTPUTS)
    return rnn_flops_per_sample(n_features, name.split("-")[0])


def make_runner(name: str, n_features: int, batch_size: int, n: int, seed: int):
    """A closure that trains one epoch of ``name`` over ``n`` random samples."""
    model = make_model(name, n_features, N_OUTPUTS, random_state=seed)
    model.train()
    optimizer = make_optimizer(model.parameters(), lr=1e-3)  # fit's Adam
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, n_features, generator=gen)
    y = torch.randint(0, N_OUTPUTS, (n,), generator=gen)

    def run(rows: int | None = None) -> float:
        order = torch.randperm(n, generator=gen)[:rows]
        start = time.perf_counter()
        train_epoch(model, optimizer, X, y, batch_size=batch_size, order=order)
        return time.perf_counter() - start

    return run


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="samples per epoch")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per model")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configurations")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    keys = args.only or list(CONFIGS)
    results = {}
    for key in keys:
        ceiling_before = matmul_ceiling()
        fast_name, plain_name, n_features, batch = CONFIGS[key]
        runners = {impl: make_runner(name, n_features, batch, args.n, seed=0)
                   for impl, name in (("fast", fast_name), ("plain", plain_name))}
        for run in runners.values():  # warm-up: allocator, thread pool, first-call costs
            run(rows=min(args.n, 4 * batch))
        times = {"fast": [], "plain": []}
        for _ in range(args.repeats):
            for impl, run in runners.items():
                times[impl].append(run())
        ceilings = [ceiling_before, matmul_ceiling()]
        results[key] = {"times": times, "flop": flops_per_sample(fast_name, n_features),
                        "batch": batch, "n_features": n_features, "ceilings": ceilings}
    run_max = max(c for res in results.values() for c in res["ceilings"])
    print(f"fearkd training benchmark: N={args.n}, {args.repeats} repeats, {args.threads} "
          f"threads, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("ceiling (2048x2048 float32 mm) around each configuration, GFLOP/s: "
          + ", ".join(f"{key} {max(res['ceilings']) / 1e9:.1f}" for key, res in results.items())
          + f"; largest in the run {run_max / 1e9:.1f}")
    header = (f"{'config':<19}{'impl':<7}{'s/epoch':>9}{'spread':>16}{'samples/s':>11}"
              f"{'share':>7}{'speed-up':>10}")
    print(header)
    print("-" * len(header))
    summary = {}
    for key, res in results.items():
        ceiling = max(res["ceilings"])
        entry = {"ceiling_gflops": round(ceiling / 1e9, 2),
                 "ceiling_gflops_before_after": [round(c / 1e9, 2) for c in res["ceilings"]]}
        for impl in ("fast", "plain"):
            t = res["times"][impl]
            med = statistics.median(t)
            rate = args.n / med
            entry[f"{impl}_s_per_epoch"] = round(med, 4)
            entry[f"{impl}_spread"] = [round(min(t), 4), round(max(t), 4)]
            entry[f"{impl}_samples_per_s"] = round(rate, 1)
            entry[f"{impl}_share"] = round(rate * res["flop"] / ceiling, 4)
            entry[f"{impl}_share_of_run_max"] = round(rate * res["flop"] / run_max, 4)
        entry["speedup_vs_plain"] = round(entry["plain_s_per_epoch"] / entry["fast_s_per_epoch"],
                                          3)
        entry["mflop_per_sample"] = round(res["flop"] / 1e6, 2)
        summary[key] = entry
        for impl in ("fast", "plain"):
            lo, hi = entry[f"{impl}_spread"]
            speed = f"{entry['speedup_vs_plain']:.2f}x" if impl == "fast" else ""
            print(f"{key:<19}{impl:<7}{entry[f'{impl}_s_per_epoch']:>9.3f}"
                  f"{f'{lo:.3f}-{hi:.3f}':>16}{entry[f'{impl}_samples_per_s']:>11.0f}"
                  f"{entry[f'{impl}_share']:>7.3f}{speed:>10}")
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {max_rss_mb:.0f} MiB")
    record = {"benchmark": "training", "n": args.n, "repeats": args.repeats,
              "threads": args.threads, "ceiling_gflops": round(run_max / 1e9, 2),
              "torch": torch.__version__, "numpy": np.__version__,
              "max_rss_mb": round(max_rss_mb, 1), "results": summary}
    print(json.dumps(record, sort_keys=True))
    return record


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
