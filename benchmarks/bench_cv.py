"""Cross-validation wall time with 1 and 2 local workers, measured in the same run.

Writes a small synthetic DEAP, extracts its features once, then runs the same experiment (the
demo's settings with one seed, as before the demo ran three: CNN backbone with Method 1,
Method 2, the scratch student and the demo's baselines under the ``subject`` protocol) into
fresh run directories with ``jobs=1`` and ``jobs=2``, checks that both give identical
results, and prints the speed-up (time at 1 worker / time at 2 workers).
Units are independent folds, so the ideal speed-up is ``min(workers, units, cores)``.

Usage::

    python benchmarks/bench_cv.py --subjects 6 --folds 4 --repeats 1

The last line of output is one JSON object with stable keys.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from fearkd.datasets.synthetic import write_deap
from fearkd.demo import DEMO_SIZES, demo_config
from fearkd.experiment import prepare_data, run_experiment


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = write_deap(tmp / "deap", n_subjects=args.subjects, n_trials=args.trials,
                          seconds=23.0, seed=0)
        size = dict(DEMO_SIZES["full"], epochs=args.epochs, folds=args.folds)
        cfg = demo_config("deap", root, size).replace(evaluation={"seeds": [0]})
        data = prepare_data(cfg, progress=False)
        plan = [("subject", "cnn", ("method1", "method2"))]
        times: dict[int, list[float]] = {1: [], 2: []}
        results = {}
        for rep in range(args.repeats):
            for jobs in (1, 2):
                start = time.perf_counter()
                res = run_experiment(cfg, tmp / f"run-{jobs}-{rep}", plan=plan, prepared=data,
                                     jobs=jobs, progress=False)
                times[jobs].append(time.perf_counter() - start)
                results[jobs] = res.results
        key = list(results[1].columns[:11])
        same = results[1].sort_values(key).reset_index(drop=True).equals(
            results[2].sort_values(key).reset_index(drop=True))
    t1, t2 = statistics.median(times[1]), statistics.median(times[2])
    print(f"units: {args.folds} folds x 1 pipeline (CNN, Method 1 + 2 + scratch), "
          f"{len(data.featureset)} windows, cores {os.cpu_count()}")
    print(f"1 worker : {t1:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in times[1])})")
    print(f"2 workers: {t2:7.1f} s  (runs: {', '.join(f'{t:.1f}' for t in times[2])})")
    print(f"speed-up at 2 workers: {t1 / t2:.2f}x; identical results: {same}")
    print(json.dumps({"bench": "cv", "seconds_1_worker": round(t1, 2),
                      "seconds_2_workers": round(t2, 2), "speedup_2_workers": round(t1 / t2, 3),
                      "identical_results": bool(same), "n_windows": len(data.featureset),
                      "folds": args.folds, "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
