#!/usr/bin/env python3
"""Compare kai's text embeddings with sentence-transformers in one run.

Both libraries embed the same corpus (benches/data/sentences.txt) with the same
all-MiniLM-L6-v2 folder on the CPU with the same number of threads: throughput at several
batch sizes (median of repeated passes over the whole corpus) and the latency of embedding
one sentence at a time (p50 and p95). kai runs as the release binary `bench-text-embed`;
sentence-transformers runs in this process with PyTorch.

Set up the peer environment once with ``benches/setup-peers.sh``, then:

    ~/.cache/kai/peers/bin/python benches/text_embed.py --threads 2

It prints a Markdown table with the ratios (kai / sentence-transformers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def model_dir() -> Path:
    configured = os.environ.get("MODEL_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kai" / "models"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = min(max(int(-(-len(ordered) * q // 1)), 1), len(ordered))
    return ordered[rank - 1]


def measure_peer(corpus: list[str], args: argparse.Namespace) -> dict:
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(str(model_dir() / "all-minilm-l6-v2"), device="cpu")
    model.encode(corpus[:64], batch_size=32)

    throughput = []
    for batch_size in args.batch_sizes:
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            vectors = model.encode(corpus, batch_size=batch_size, convert_to_numpy=True)
            seconds.append(time.perf_counter() - started)
            assert len(vectors) == len(corpus)
        rate = len(corpus) / percentile(seconds, 0.5)
        print(f"sentence-transformers batch {batch_size}: {rate:.1f} sentences/s", file=sys.stderr)
        throughput.append({"batch_size": batch_size, "sentences_per_second": rate})

    latencies = []
    for i in range(args.latency_samples):
        sentence = corpus[i % len(corpus)]
        started = time.perf_counter()
        model.encode([sentence], batch_size=1, convert_to_numpy=True)
        latencies.append((time.perf_counter() - started) * 1e3)
    return {
        "library": f"sentence-transformers {sentence_transformers.__version__} "
        f"(torch {torch.__version__})",
        "threads": torch.get_num_threads(),
        "throughput": throughput,
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p95_ms": percentile(latencies, 0.95),
    }


def measure_kai(corpus_path: Path, args: argparse.Namespace) -> dict:
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "kai" / "target"))
    env = dict(os.environ, CARGO_TARGET_DIR=str(target), RAYON_NUM_THREADS=str(args.threads))
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "kai-benches"],
        cwd=ROOT, env=env, check=True,
    )
    command = [
        str(target / "release" / "bench-text-embed"),
        "--corpus", str(corpus_path),
        "--batch-sizes", ",".join(map(str, args.batch_sizes)),
        "--repeats", str(args.repeats),
        "--latency-samples", str(args.latency_samples),
    ]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    sys.stderr.write(output.stderr)
    return json.loads(output.stdout)


def table(kai: dict, peer: dict, sentences: int, args: argparse.Namespace) -> str:
    lines = [
        f"Corpus: {sentences} sentences; {args.threads} threads each; "
        f"median of {args.repeats} passes; latency over {args.latency_samples} single sentences.",
        f"Peer: {peer['library']}. Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs.",
        "",
        "| measure | kai | sentence-transformers | kai / peer |",
        "| --- | ---: | ---: | ---: |",
    ]
    for ours, theirs in zip(kai["throughput"], peer["throughput"]):
        a, b = ours["sentences_per_second"], theirs["sentences_per_second"]
        lines.append(
            f"| throughput, batch {ours['batch_size']} (sentences/s) | {a:.1f} | {b:.1f} "
            f"| {a / b:.2f} |"
        )
    for key, label in (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95")):
        a, b = kai[key], peer[key]
        lines.append(
            f"| single-sentence latency {label} (ms) | {a:.2f} | {b:.2f} "
            f"| {a / b:.2f} (lower is faster) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 8, 32, 128])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--corpus", type=Path, default=ROOT / "benches" / "data" / "sentences.txt")
    args = parser.parse_args()

    corpus = args.corpus.read_text(encoding="utf-8").splitlines()
    kai = measure_kai(args.corpus, args)
    peer = measure_peer(corpus, args)
    print(table(kai, peer, len(corpus), args))


if __name__ == "__main__":
    main()
