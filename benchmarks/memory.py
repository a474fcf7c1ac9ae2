"""Page faults of a training step: ``fit``'s CNN with glibc's thresholds as ``fit`` sets them and
as glibc leaves them (``xpnn/kernels/memory.py``), each in a fresh process, alternating.

The CNN of ``conv.py`` (batch 128) fits one epoch of a synthetic uint8 set of ``--images``
images (a small set: nothing the process allocated before has raised glibc's thresholds), after
a warm-up epoch; the step time is the epoch's seconds over its steps, the page faults are the
process's minor faults during that second ``fit`` (its set-up included) over its steps.
``--threads`` cores, as many BLAS and loop threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/memory.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

BATCH = 128


def role(images: int, threads: int, keep: bool) -> None:
    """One measurement in this process: print ``{"ms": ..., "faults": ...}`` per step."""
    import resource

    import numpy as np
    from _cnn_peers import xpnn_model
    from threadpoolctl import threadpool_limits

    import xpnn
    from xpnn.train import loop

    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    if not keep:  # glibc's own thresholds: fit's call made a no-op
        loop.keep_freed_memory = lambda: False  # type: ignore[assignment]
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (images, 1, 28, 28), dtype=np.uint8), rng.integers(0, 10, images)
    model = xpnn_model()
    optimizer = xpnn.Adam(model.parameters(), lr=1e-3)
    with threadpool_limits(threads):
        loss = xpnn.SoftmaxCrossEntropy()
        fit = dict(loss=loss, optimizer=optimizer, epochs=1, batch_size=BATCH, verbose=0)
        model.fit(x, y, **fit)  # warm-up: compilation, first touch
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        history = model.fit(x, y, **fit)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    steps = -(-images // BATCH)  # the last, short batch is a step too
    print(json.dumps({"ms": history["seconds"][0] / steps * 1e3, "faults": faults / steps}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--images", type=int, default=7680, help="synthetic training images (>= 1)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="one process each")
    parser.add_argument("--repeats", type=int, default=2, help="processes per configuration")
    parser.add_argument("--role", choices=["keep", "plain"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        return role(args.images, args.threads[0], args.role == "keep")
    print("| threads | glibc thresholds | ms per step (median) | page faults per step |\n|---|---|---:|---:|")
    for threads in args.threads:
        runs: dict[str, list[dict]] = {"as fit sets them": [], "glibc's own": []}
        for _ in range(args.repeats):
            for name, mode in (("as fit sets them", "keep"), ("glibc's own", "plain")):
                command = [sys.executable, __file__, "--role", mode, "--images", str(args.images),
                           "--threads", str(threads)]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{' '.join(command)} failed:\n{done.stderr}")
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
        for name, results in runs.items():
            ms = statistics.median(r["ms"] for r in results)
            faults = statistics.median(r["faults"] for r in results)
            print(f"| {threads} | {name} | {ms:.1f} | {faults:.0f} |")


if __name__ == "__main__":
    main()
