"""Training speed of every registered model and the quick demo's wall time, against a git ref.

The reference is the same figure measured in the same run on another commit (default
``0c982b3``, the last commit with the compiled CNN/LSTM/GRU layer). The ref is exported with
``git archive`` into a temporary folder and its compiled module is built in place there
(``python setup.py build_ext --inplace``), as its users had it; when that fails, or the ref has
no ``setup.py``, the output says so and the ref is measured as it is.

Each measurement runs in a fresh subprocess whose ``PYTHONPATH`` points at one tree's ``src``;
the two trees alternate (old, new, old, new, ...) so both see the same machine noise, and the
table shows medians. Figures:

* epochs/s of each name of ``fearkd.models.MODELS`` (the current tree's registry; the old tree
  builds the same name) at batch 32 and 256, on one thread (``torch.set_num_threads(1)``, as a
  cross-validation unit runs), plus ``cnn`` at batch 256 on two threads. Data: ``--n`` samples x
  176 features, 4 classes, standard normal; the loop is a plain Adam + cross-entropy loop
  written here, the same for both trees (one untimed warm-up pass over a few batches, then
  ``--epochs`` timed epochs);
* wall time of ``python -m fearkd.cli demo --quick --quiet --out TMP`` in each tree.

Usage::

    python benchmarks/bench_training.py               # ref 0c982b3, 3,000 samples, 3 rounds
    python benchmarks/bench_training.py HEAD~3 --quick

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

ROOT = Path(__file__).resolve().parents[1]
N_FEATURES = 176
N_CLASSES = 4
BATCHES = (32, 256)
WARMUP_BATCHES = 3


def _worker(spec: dict) -> dict:
    """Time the configurations of ``spec`` in this process (fearkd from PYTHONPATH)."""
    import numpy as np
    import torch

    from fearkd.models import available_models, make_model

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(spec["n"], N_FEATURES)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, N_CLASSES, spec["n"]))
    known = set(available_models())
    out = {}
    for key, name, batch, threads in spec["configs"]:
        if name not in known:
            out[key] = None
            continue
        torch.set_num_threads(threads)
        model = make_model(name, N_FEATURES, N_CLASSES, random_state=0)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = torch.nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(0)

        def epoch(limit=None, model=model, opt=opt, loss_fn=loss_fn, gen=gen, batch=batch):
            order = torch.randperm(len(x), generator=gen)
            for i, start in enumerate(range(0, len(x), batch)):
                if limit is not None and i >= limit:
                    break
                idx = order[start:start + batch]
                opt.zero_grad(set_to_none=True)
                loss_fn(model(x[idx]), y[idx]).backward()
                opt.step()

        epoch(WARMUP_BATCHES)
        t0 = time.perf_counter()
        for _ in range(spec["epochs"]):
            epoch()
        out[key] = spec["epochs"] / (time.perf_counter() - t0)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _run_worker(src: Path, spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"worker on {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_demo(src: Path, out: Path) -> float | None:
    env = {**os.environ, "PYTHONPATH": str(src)}
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "fearkd.cli", "demo", "--quick", "--quiet",
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          check=False, cwd=out.parent)
    wall = time.perf_counter() - t0
    if proc.returncode:
        print(f"demo on {src} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return None
    return wall


def _export(ref: str, dest: Path) -> str:
    """Export ``ref`` into ``dest`` and build its compiled module in place; say what happened."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    if not (dest / "setup.py").exists():
        return "no setup.py (nothing to build)"
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=dest,
                          capture_output=True, text=True, check=False)
    built = sorted(p.name for p in (dest / "src").rglob("*.so"))
    if proc.returncode or not built:
        return (f"build_ext FAILED (exit {proc.returncode}), measured without it: "
                f"{proc.stderr.strip()[-300:]}")
    return f"built {', '.join(built)}"


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(new: float | None, old: float | None) -> float | None:
    return new / old if new is not None and old else None


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref", nargs="?", default="0c982b3", help="git ref to compare with")
    ap.add_argument("--quick", action="store_true",
                    help="512 samples, 1 epoch, 2 rounds, one demo each")
    ap.add_argument("--n", type=int, default=None, help="samples (default 3000; quick 512)")
    ap.add_argument("--epochs", type=int, default=None, help="timed epochs (default 2)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="old/new alternations of the training timings (default 3)")
    ap.add_argument("--demo-rounds", type=int, default=None, help="default 2; quick 1")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0

    n = args.n or (512 if args.quick else 3000)
    epochs = args.epochs or (1 if args.quick else 2)
    rounds = args.rounds or (2 if args.quick else 3)
    demo_rounds = args.demo_rounds or (1 if args.quick else 2)

    sys.path.insert(0, str(ROOT / "src"))
    from fearkd.models import MODELS

    configs = [(f"{name}_b{b}_t1", name, b, 1) for name in MODELS.names() for b in BATCHES]
    configs.append(("cnn_b256_t2", "cnn", 256, 2))
    spec = {"n": n, "epochs": epochs, "configs": configs}
    new_src = ROOT / "src"

    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        old_tree = Path(tmp) / "old"
        old_tree.mkdir()
        build = _export(args.ref, old_tree)
        print(f"ref {args.ref}: {build}")
        old_src = old_tree / "src"
        runs: dict[str, list[dict]] = {"old": [], "new": []}
        for r in range(rounds):
            for side, src in (("old", old_src), ("new", new_src)):
                runs[side].append(_run_worker(src, spec))
            print(f"training round {r + 1}/{rounds} done", flush=True)
        demo: dict[str, list] = {"old": [], "new": []}
        for r in range(demo_rounds):
            for side, src in (("old", old_src), ("new", new_src)):
                demo[side].append(_run_demo(src, Path(tmp) / f"demo_{side}_{r}"))
            print(f"demo round {r + 1}/{demo_rounds} done", flush=True)

    figures = {}
    print(f"\n{n} samples x {N_FEATURES} features, {N_CLASSES} classes, {epochs} timed "
          f"epoch(s), median of {rounds} alternating rounds; old = {args.ref}")
    print(f"{'model':10s} {'batch':>5s} {'threads':>7s} {'new ep/s':>9s} {'old ep/s':>9s} "
          f"{'new/old':>8s}")
    for key, name, batch, threads in configs:
        new = _median([run[key] for run in runs["new"]])
        old = _median([run[key] for run in runs["old"]])
        figures[key] = {"new": new, "old": old, "ratio": _ratio(new, old)}
        print(f"{name:10s} {batch:5d} {threads:7d} {_fmt(new):>9s} {_fmt(old):>9s} "
              f"{_fmt(_ratio(new, old), '.3f'):>8s}")
    new_demo, old_demo = _median(demo["new"]), _median(demo["old"])
    # Wall time: a ratio below 1 means the new tree is faster.
    figures["demo_quick_s"] = {"new": new_demo, "old": old_demo,
                               "ratio": _ratio(new_demo, old_demo)}
    print(f"\nfearkd demo --quick wall time: new {_fmt(new_demo, '.1f')} s, old "
          f"{_fmt(old_demo, '.1f')} s, new/old {_fmt(_ratio(new_demo, old_demo), '.3f')} "
          f"(median of {demo_rounds})")
    peak = {side: max(run["peak_rss_mb"] for run in runs[side]) for side in runs}
    print(f"peak RSS of a training worker: new {peak['new']:.0f} MB, old {peak['old']:.0f} MB")
    print(json.dumps({"benchmark": "bench_training", "ref": args.ref, "ref_build": build,
                      "n": n, "n_features": N_FEATURES, "epochs": epochs, "rounds": rounds,
                      "figures": figures, "peak_rss_mb": peak}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
