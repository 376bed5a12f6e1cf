"""Where a training step of the fast CNN spends its time, block by block.

Times, for one batch: each conv block's forward pass (with autograd recording, as in
training) and its forward + backward pass, the blocks linked as in training; the dense head
with the loss; and the optimizer step. Each block's forward + backward time is divided by its
floor: its analytic GEMM FLOPs (``6 * MACs``; the first block, whose input needs no gradient,
``4 * MACs``) at the matrix-multiply ceiling measured in the same run (as
``bench_training.py``). A block at 1.0 would spend all its time in matrix multiplies at the
machine's peak; what is above it is element-wise work, memory traffic and Python dispatch.
Medians of ``--repeats`` timings after warm-up. Each block is timed alone: in training, the
first block's backward sums are made inside the second block's backward pass (see
:class:`fearkd.models.layers_cnn.Link`), which this split does not show.

Usage::

    python benchmarks/profile_cnn.py                      # batch 256, 2 threads
    python benchmarks/profile_cnn.py --batch 32 --threads 1

The last line of output is one JSON object with stable keys.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from bench_training import matmul_ceiling

from fearkd.models import make_model
from fearkd.models.cnn import cnn_macs
from fearkd.models.layers_cnn import Link, first_block, next_block
from fearkd.training import make_optimizer


def _median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--features", type=int, default=176)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ceiling = matmul_ceiling()
    model = make_model("cnn", args.features, 4, random_state=0)
    model.train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.features, generator=gen)
    y = torch.randint(0, 4, (args.batch,), generator=gen)
    # Linked as in training (fearkd.models.layers_cnn.Link): each BatchNorm block hands its
    # pre-BatchNorm values and (scale, shift) to the next one, which folds them in.
    one, two = Link(), Link()
    with torch.no_grad():
        h1 = first_block(x, model.conv1, model.bn1, link=one).clone()
        h2 = next_block(h1, model.conv2, model.bn2, pad_out=True, link_in=one,
                        link_out=two).clone()
        h3 = next_block(h2, model.conv3, None, pad_out=False, link_in=two)

    def handed(link: Link) -> Link:
        """A link that carries a producer's BatchNorm affine map, and no buffer."""
        carrier = Link()
        carrier.affine = link.affine
        return carrier

    inputs = {"block1": x, "block2": h1.requires_grad_(), "block3": h2.requires_grad_()}
    calls = {
        "block1": lambda t: first_block(t, model.conv1, model.bn1, link=Link()),
        "block2": lambda t: next_block(t, model.conv2, model.bn2, pad_out=True,
                                       link_in=handed(one), link_out=Link()),
        "block3": lambda t: next_block(t, model.conv3, None, pad_out=False,
                                       link_in=handed(two)),
    }
    macs = cnn_macs(args.features)
    flops = {"block1": 4 * macs["conv1"], "block2": 6 * macs["conv2"],
             "block3": 6 * macs["conv3"]}
    rows = {}
    for name, call in calls.items():
        t = inputs[name]
        with torch.no_grad():
            weights = torch.randn(call(t).shape, generator=gen)

        def forward(call=call, t=t):
            call(t)  # its graph (and the buffers it holds) goes when the output does

        def both(call=call, t=t, weights=weights):
            call(t).backward(weights)  # a fixed gradient for the block's output

        floor = args.batch * flops[name] / ceiling * 1e3
        rows[name] = {"forward_ms": _median_ms(forward, args.repeats),
                      "forward_backward_ms": _median_ms(both, args.repeats),
                      "gemm_floor_ms": floor}
        rows[name]["over_floor"] = rows[name]["forward_backward_ms"] / floor
    feats = h3.reshape(args.batch, -1).requires_grad_()

    def head():
        h = model.drop1(model.fc1(feats).tanh())
        F.cross_entropy(model.head(model.drop2(model.fc2(h).relu())), y).backward()

    optimizer = make_optimizer(model.parameters())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    rows["head_and_loss"] = {"forward_backward_ms": _median_ms(head, args.repeats)}
    rows["optimizer_step"] = {"forward_backward_ms": _median_ms(optimizer.step, args.repeats)}

    print(f"fast CNN, {args.features} inputs, batch {args.batch}, {args.threads} threads, "
          f"ceiling {ceiling / 1e9:.1f} GFLOP/s (2048x2048 float32 mm)")
    print(f"{'part':<16}{'forward ms':>12}{'fwd+bwd ms':>12}{'GEMM floor':>12}{'x floor':>9}")
    for name, row in rows.items():
        fwd = f"{row['forward_ms']:.2f}" if "forward_ms" in row else ""
        floor = f"{row['gemm_floor_ms']:.2f}" if "gemm_floor_ms" in row else ""
        over = f"{row['over_floor']:.2f}" if "over_floor" in row else ""
        print(f"{name:<16}{fwd:>12}{row['forward_backward_ms']:>12.2f}{floor:>12}{over:>9}")
    record = {"benchmark": "profile_cnn", "batch": args.batch, "features": args.features,
              "threads": args.threads, "ceiling_gflops": round(ceiling / 1e9, 2),
              "parts": {k: {m: round(v, 3) for m, v in row.items()} for k, row in rows.items()}}
    print(json.dumps(record, sort_keys=True))
    return record


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
