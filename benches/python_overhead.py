#!/usr/bin/env python3
"""Measure the Python binding's overhead on text embedding against the same calls in Rust.

Both sides embed the first sentences of benches/data/sentences.txt with all-minilm-l6-v2
on the CPU with the same number of threads, one ``embed`` call per batch, at batch sizes
1 and 32. Rust runs as the release binary ``bench-embed-overhead``; Python calls
``kai.TextEmbedder.embed`` in this process. The two alternate over several rounds, and
the side that goes first changes each round, so drift on a shared machine affects both
alike. Each side's figures are its median and its fastest pass over the rounds. Noise
from other processes only adds time, so the fastest passes are the steadier comparison.

Install a release build of the wheel into the interpreter that runs this script
(``maturin build --release`` in ``python/``, then ``pip install`` the wheel), then:

    python benches/python_overhead.py --threads 2

It prints a Markdown table with the time per call of each side and the overhead
(Python / Rust - 1). The target is an overhead under 5 % at batch 32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_rust(target: Path, env: dict[str, str]) -> Path:
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "kai-benches",
         "--bin", "bench-embed-overhead"],
        cwd=ROOT, env=env, check=True,
    )
    return target / "release" / "bench-embed-overhead"


def time_rust(binary: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[int, float]:
    command = [
        str(binary),
        "--corpus", str(args.corpus),
        "--sentences", str(args.sentences),
        "--batch-sizes", ",".join(map(str, args.batch_sizes)),
    ]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return {t["batch_size"]: t["seconds"] for t in json.loads(output.stdout)}


def time_python(corpus: list[str], args: argparse.Namespace) -> dict[int, float]:
    import kai

    seconds = {}
    for batch_size in args.batch_sizes:
        embedder = kai.TextEmbedder(device="cpu", batch_size=batch_size)
        batches = [corpus[i : i + batch_size] for i in range(0, len(corpus), batch_size)]
        # The same untimed warm-up as the Rust side.
        for batch in batches[:4]:
            embedder.embed(batch)
        started = time.perf_counter()
        for batch in batches:
            vectors = embedder.embed(batch)
            assert vectors.shape[0] == len(batch)
        seconds[batch_size] = time.perf_counter() - started
    return seconds


def table(rust: dict[int, list[float]], python: dict[int, list[float]], calls: dict[int, int],
          args: argparse.Namespace) -> str:
    lines = [
        f"{args.sentences} sentences, {args.threads} threads, {args.rounds} rounds; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs.",
        "",
        "| batch size | calls | pass | Rust (ms per call) | Python (ms per call) | overhead |"
        " overhead per call (µs) |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for batch_size in args.batch_sizes:
        n = calls[batch_size]
        for label, pick in (("median", statistics.median), ("fastest", min)):
            r = pick(rust[batch_size])
            p = pick(python[batch_size])
            lines.append(
                f"| {batch_size} | {n} | {label} | {1e3 * r / n:.3f} | {1e3 * p / n:.3f} "
                f"| {100 * (p / r - 1):+.2f} % | {1e6 * (p - r) / n:+.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 32])
    parser.add_argument("--corpus", type=Path, default=ROOT / "benches" / "data" / "sentences.txt")
    args = parser.parse_args()

    # Set before kai first runs a kernel, because candle's thread pool reads it once.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "kai" / "target"))
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    binary = build_rust(target, env)

    corpus = args.corpus.read_text(encoding="utf-8").splitlines()[: args.sentences]
    args.sentences = len(corpus)
    calls = {b: -(-len(corpus) // b) for b in args.batch_sizes}
    rust: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
    python: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
    for round_index in range(args.rounds):
        sides = [("rust", lambda: time_rust(binary, args, env)),
                 ("python", lambda: time_python(corpus, args))]
        if round_index % 2:
            sides.reverse()
        for name, measure in sides:
            timings = measure()
            for batch_size, seconds in timings.items():
                (rust if name == "rust" else python)[batch_size].append(seconds)
            print(f"round {round_index + 1} {name}: "
                  + ", ".join(f"batch {b} {s:.3f} s" for b, s in timings.items()),
                  file=sys.stderr)
    print(table(rust, python, calls, args))


if __name__ == "__main__":
    main()
