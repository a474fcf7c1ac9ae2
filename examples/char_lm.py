"""Train a character-level GPT with xpnn on any backend, and sample from it.

    python examples/char_lm.py                          # the standard library's source, defaults
    python examples/char_lm.py --text /usr/share/games/fortunes --plot lm.png
    python examples/char_lm.py --checkpoint runs/lm     # saves runs/lm/last.npz at each report
    python examples/char_lm.py --checkpoint runs/lm --resume      # continues exactly
    python examples/char_lm.py --checkpoint runs/lm --generate 500 --temperature 0.8
    mpiexec -n 2 -bind-to core python examples/char_lm.py --distributed   # data-parallel (MPI)

The corpus is the Python standard library's top-level ``.py`` files (sorted by name; nothing
to download), or the UTF-8 files of ``--text`` (folders: their files; fortune's ``.dat`` and
``.u8`` index files skipped); the last 10% of it is the validation text. AdamW (betas 0.9,
0.99; weight decay 0.1 on the matrices only) with a linear warmup and a cosine decay to a
tenth of ``--lr``. Every ``--eval-every`` iterations it prints the training loss (the mean
since the last report) and the validation loss on ``--eval-batches`` fixed windows, in nats
and bits per character; at the end the seconds per iteration, a sample, and the loss over
the whole validation text: the last line is ``validation loss: X.XXXX`` (nats per character).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

from gpt import GPT, generate  # beside this script

import xpnn
import xpnn.cli as cli
from xpnn import backend, distributed
from xpnn.data import TextLoader, Vocabulary, load_text
from xpnn.io import serialization
from xpnn.io.paths import writable_path
from xpnn.optim import decay_groups, schedules

BITS = 1.0 / math.log(2.0)  # nats -> bits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.Parser(description=__doc__.split("\n\n", 1)[0],
                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--layers", type=int, default=4, help="transformer blocks")
    p.add_argument("--heads", type=int, default=4, help="attention heads per block")
    p.add_argument("--width", type=int, default=128, help="embedding width (the MLP is 4x)")
    p.add_argument("--context", type=int, default=64, help="characters the model sees")
    p.add_argument("--gelu", default="tanh", choices=["tanh", "none"], help="GELU form of the MLP")
    p.add_argument("--batch-size", type=int, default=24, help="windows per step (the global batch)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate of AdamW")
    p.add_argument("--iters", type=int, default=3000, help="training iterations")
    p.add_argument("--seed", type=int, default=0, help="fixes initial weights and batches")
    p.add_argument("--eval-every", type=int, default=250, help="iterations between reports")
    p.add_argument("--eval-batches", type=int, default=20, help="validation batches per report")
    p.add_argument("--backend", default="numpy", choices=backend.BACKENDS, help="array library")
    p.add_argument("--text", nargs="+", metavar="PATH", help="UTF-8 files or folders (default: stdlib)")
    p.add_argument("--plot", metavar="FILE.png", help="write the loss curves there")
    p.add_argument("--checkpoint", metavar="DIR", help="save DIR/last.npz at every report")
    p.add_argument("--resume", action="store_true", help="continue from DIR/last.npz exactly")
    p.add_argument("--generate", type=int, metavar="N", help="sample N characters from DIR/last.npz")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    p.add_argument("--prompt", default="def ", help="text the sample continues")
    p.add_argument("--sample-length", type=int, default=400, help="characters sampled after training")
    p.add_argument("--distributed", action="store_true", help="data-parallel over MPI (mpiexec -n N)")
    args = p.parse_args(argv)
    if (args.resume or args.generate) and not args.checkpoint:
        p.error("--resume and --generate need --checkpoint DIR")
    for flag in ("layers", "heads", "width", "context", "batch_size", "eval_every", "eval_batches"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.iters < 0 or args.width % args.heads:
        p.error(
            f"--iters must be >= 0 and --heads must divide --width "
            f"(got {args.iters}, {args.heads}, {args.width})"
        )
    cli.checked(p, lambda: check_args(args))
    return args


def check_args(args: argparse.Namespace) -> None:
    """Numbers, paths to write and the backend, before any work (not after the training run)."""
    cli.positive("--lr", args.lr)
    cli.positive("--temperature", args.temperature)
    if args.seed < 0:
        raise xpnn.ArgumentError(f"--seed must be >= 0, got {args.seed}")
    if args.plot:
        writable_path("", "--plot", args.plot, suffixes=cli.PLOT_SUFFIXES)
        cli.require_module("matplotlib", "--plot", "examples")
    if args.checkpoint and not args.generate:
        writable_path("", "--checkpoint", os.path.join(args.checkpoint, "last.npz"), make_dirs=True)
    backend.resolve(args.backend)


def sizes(args: argparse.Namespace, vocabulary: Vocabulary) -> dict[str, Any]:
    return {"vocab_size": len(vocabulary), "layers": args.layers, "heads": args.heads, "width": args.width,
            "context": args.context, "gelu": args.gelu}  # fmt: skip


def make_optimizer(model: GPT, lr: float, iters: int) -> xpnn.AdamW:
    """AdamW over nanoGPT's groups: a warmup of min(100, iters/10) steps, then a cosine to lr/10."""
    warmup = min(100, iters // 10)
    schedule = schedules.Warmup(warmup, schedules.CosineDecay(lr, max(iters - warmup, 1), min_lr=lr / 10))
    return xpnn.AdamW(decay_groups(model, 0.1), lr=schedule, betas=(0.9, 0.99))


def mean_loss(model: GPT, batches: Any) -> float:
    """The mean loss per character over ``batches`` (weighted by their sizes), one host sync."""
    total: Any = 0.0
    count = 0
    model.eval()
    with xpnn.no_grad():
        for x, y in batches:
            n = int(x.shape[0] * x.shape[1])
            total = total + model.loss(x, y).value * float(n)
            count += n
    model.train()
    return float(total) / max(count, 1)


def bar(step: int, total: int, width: int = 20) -> str:
    done = width * step // max(total, 1)
    return f"[{'#' * done}{'-' * (width - done)}] {100 * step // max(total, 1):3d}%"


class Run:
    """The training state a checkpoint holds besides the model and optimizer."""

    def __init__(self, args: argparse.Namespace, vocabulary: Vocabulary) -> None:
        self.step, self.seconds = 0, 0.0
        self.history: dict[str, list[float]] = {"step": [], "train": [], "val": []}
        self.config = {"sizes": sizes(args, vocabulary), "symbols": vocabulary.symbols, "seed": args.seed,
                       "batch_size": args.batch_size, "lr": args.lr, "iters": args.iters}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "seconds": self.seconds, "history": self.history, "config": self.config}

    def restore(self, path: str, saved: Any) -> None:
        if not isinstance(saved, dict) or saved.get("config") != self.config:
            mine = self.config.copy()
            mine.pop("symbols")
            raise xpnn.CheckpointError(f"{path}: saved for another run; this one is {mine}")
        self.step, self.seconds, self.history = int(saved["step"]), float(saved["seconds"]), saved["history"]


def setup(args: argparse.Namespace, corpus: Any, comm: Any) -> tuple[GPT, xpnn.AdamW, Run, str | None]:
    """The model on its backend, its optimizer and the run, resumed from ``--checkpoint`` where asked."""
    model = GPT(**sizes(args, corpus.vocabulary), seed=args.seed).to(args.backend)
    optimizer = make_optimizer(model, args.lr, args.iters)
    run = Run(args, corpus.vocabulary)
    last = os.path.join(args.checkpoint, "last.npz") if args.checkpoint else None
    if args.resume and last and os.path.exists(last):
        serialization.load_into(last, model, optimizer, check_training=lambda saved: run.restore(last, saved))
        print(f"resumed from {last} at iteration {run.step}")
    if comm.size > 1:
        distributed.broadcast_parameters(model, comm)
    return model, optimizer, run, last


def train(args: argparse.Namespace, corpus: Any, comm: Any) -> tuple[GPT, Run]:
    """Train to ``--iters``, reporting (and checkpointing) every ``--eval-every`` iterations. Each
    rank takes its rows of every global batch; the gradients are averaged weighted by them."""
    model, optimizer, run, last = setup(args, corpus, comm)
    step_of = distributed.DistributedOptimizer(optimizer, comm) if comm.size > 1 else optimizer
    windows = {"batch_size": args.batch_size, "context": args.context, "target": args.backend}
    loader = TextLoader(corpus.train, seed=args.seed, **windows)
    held_out = TextLoader(corpus.validation, seed=args.seed + 1, **windows)
    start, stop = distributed.shard_bounds(args.batch_size, comm.rank, comm.size)
    share = ((stop - start) / args.batch_size,) if comm.size > 1 else ()
    running: Any = 0.0
    count, clock, tty = 0, time.perf_counter(), sys.stdout.isatty()
    while run.step < args.iters:
        x, y = loader.batch(run.step)
        loss = model.loss(x[start:stop, :], y[start:stop, :])
        optimizer.zero_grad()
        loss.backward()
        step_of.step(*share)
        running, count, run.step = running + loss.value, count + 1, run.step + 1
        if tty:
            print(f"\r{bar(run.step, args.iters)} {run.step}/{args.iters}", end="", flush=True)
        if run.step % args.eval_every == 0 or run.step == args.iters:
            backend.synchronize()
            run.seconds += time.perf_counter() - clock
            train_loss = float(running) / count  # this rank's rows: their share of the global mean
            if comm.size > 1:
                train_loss = distributed.Shards(comm).sum_over_ranks(train_loss * share[0])[0]
            report(args, model, held_out, run, train_loss, optimizer)
            running, count = 0.0, 0
            if last and comm.rank == 0:
                os.makedirs(os.path.dirname(last), exist_ok=True)
                serialization.save(last, model, optimizer=optimizer, training=run.to_dict())
            clock = time.perf_counter()
    return model, run


def report(args: argparse.Namespace, model: GPT, held_out: TextLoader, run: Run, train_loss: float,
           optimizer: Any) -> None:  # fmt: skip
    val = mean_loss(model, (held_out.batch(k) for k in range(args.eval_batches)))
    run.history["step"].append(run.step)
    run.history["train"].append(train_loss)
    run.history["val"].append(val)
    per_step = run.seconds / max(run.step, 1)
    print(f"\r{bar(run.step, args.iters)} iter {run.step:>6}/{args.iters} | train {train_loss:.4f} nats "
          f"({train_loss * BITS:.3f} bits) | val {val:.4f} nats ({val * BITS:.3f} bits) | "
          f"lr {optimizer.lr_at(max(optimizer.t - 1, 0)):.2e} | {per_step:.4f} s/it", flush=True)  # fmt: skip


def load_for_sampling(path: str, target: str) -> tuple[GPT, Vocabulary]:
    """The model and vocabulary saved in a checkpoint of this script."""
    saved = serialization.open_checked(path).header.get("training")
    if not isinstance(saved, dict) or "config" not in saved:
        raise xpnn.CheckpointError(f"{path}: not a checkpoint of char_lm.py (no model sizes in it)")
    config = saved["config"]
    model = GPT(**config["sizes"]).to(target)
    serialization.load_into(path, model)
    return model, Vocabulary(config["symbols"])


def sample(model: GPT, vocabulary: Vocabulary, args: argparse.Namespace, length: int) -> str:
    prompt = "".join(c for c in args.prompt if c in vocabulary.symbols) or vocabulary.symbols[0]
    ids = generate(
        model, list(vocabulary.encode(prompt)), length, temperature=args.temperature, seed=args.seed
    )
    return prompt + vocabulary.decode(ids)


def plot(path: str, history: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    ax.plot(history["step"], history["train"], "o-", label="train (mean since the last report)")
    ax.plot(history["step"], history["val"], "s-", label="validation")
    ax.set(xlabel="iteration", ylabel="loss (nats per character)", title="character-level GPT")
    ax.grid(alpha=0.3)
    ax.legend()
    figure.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.generate:
        model, vocabulary = load_for_sampling(os.path.join(args.checkpoint, "last.npz"), args.backend)
        print(sample(model, vocabulary, args, args.generate))
        return 0
    comm = distributed.init() if args.distributed else distributed.SingleProcess()
    if comm.rank != 0:  # every rank trains the same model: one set of lines, one plot, one file
        sys.stdout, args.plot = open(os.devnull, "w"), None
    corpus = load_text(args.text)
    print(f"corpus: {len(corpus.files)} files, {len(corpus.train):,} training and {len(corpus.validation):,} "
          f"validation characters, {len(corpus.vocabulary)} symbols; backend {args.backend}"
          + (f", {comm.size} ranks" if comm.size > 1 else ""))  # fmt: skip
    model, run = train(args, corpus, comm)
    print(f"{sum(p.size for p in model.parameters()):,} parameters")
    if args.plot:
        plot(args.plot, run.history)
        print(f"loss curves written to {args.plot}")
    print(
        f"seconds per iteration: {run.seconds / max(run.step, 1):.4f} "
        f"(backend {args.backend}, {run.step} iterations)"
    )
    print(
        f"sample (temperature {args.temperature}):\n"
        + sample(model, corpus.vocabulary, args, args.sample_length)
    )
    every = TextLoader(
        corpus.validation, batch_size=64, context=args.context, target=backend.resolve(args.backend)
    )
    val = mean_loss(model, every.sequential())
    print(f"validation loss over the whole validation text: {val * BITS:.4f} bits per character")
    print(f"validation loss: {val:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
