#!/usr/bin/env python3
"""Compare kai's vector index with FAISS, hnswlib and usearch in one run.

The driver generates one clustered data set with a seeded numpy generator. Points are
drawn from Gaussian clusters in a 64-dimensional latent space, mapped to 384 dimensions
by a random matrix, perturbed by isotropic noise and scaled to unit length. The data so
has a lower intrinsic dimension than its size, as text embeddings do. The driver writes
the vectors, the queries and the exact top-10 neighbours of each query (cosine, computed
with numpy) as raw little-endian files to a temporary folder. kai runs as the release
binary `bench-vector-search` on those files. Each peer runs in its own Python
subprocess, so resident memory is measured per library. Every library uses the same
number of threads.

Measured: exact search (FAISS IndexFlatIP) one query at a time and in a batch, against
the memory read bandwidth that kai's binary measures in the same run; HNSW build time
(m 16, ef_construction 200) and memory; recall@10 and queries per second over a sweep
of ef_search, from which the throughput at recall 0.95 and 0.99 is read; filtered
search on 10 % and 1 % of the vectors; save and load times.

Set up the peer environment once with ``benches/setup-peers.sh``, then:

    ~/.cache/kai/peers/bin/python benches/vector_search.py --threads 2

It prints Markdown tables with the ratios (kai / peer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("faiss", "hnswlib", "usearch")
# The filters kai's binary applies, by the same rule on ids: collection `c4` is
# `id % 10 == 4`, the tag `rare` is `id % 100 == 3`.
FILTERS = {"collection": (0.1, lambda ids: ids % 10 == 4), "rare": (0.01, lambda ids: ids % 100 == 3)}


def generate(args: argparse.Namespace, folder: Path) -> None:
    """Writes base.f32, queries.f32 and the ground truth files to `folder`."""
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, args.latent), dtype=np.float32)
    lift = rng.standard_normal((args.latent, args.dimension), dtype=np.float32)
    lift /= np.sqrt(args.latent)

    def draw(count: int, generator: np.random.Generator) -> np.ndarray:
        labels = generator.integers(0, args.clusters, count)
        latent = centres[labels] + args.spread * generator.standard_normal(
            (count, args.latent), dtype=np.float32)
        vectors = latent @ lift + args.noise * generator.standard_normal(
            (count, args.dimension), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.astype("<f4")

    base = draw(args.count, rng)
    queries = draw(args.queries, np.random.default_rng(args.seed + 1))
    base.tofile(folder / "base.f32")
    queries.tofile(folder / "queries.f32")

    ids = np.arange(args.count)
    masks = {"": np.ones(args.count, dtype=bool)}
    masks.update({name: rule(ids) for name, (_, rule) in FILTERS.items()})
    for name, mask in masks.items():
        allowed = np.flatnonzero(mask)
        truth = np.empty((args.queries, args.k), dtype="<u4")
        for start in range(0, args.queries, 100):
            scores = queries[start:start + 100] @ base[allowed].T
            top = np.argpartition(-scores, args.k, axis=1)[:, :args.k]
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
            truth[start:start + 100] = allowed[np.take_along_axis(top, order, axis=1)]
        truth.tofile(folder / (f"gt_{name}.u32" if name else "gt.u32"))


def load_data(folder: Path, args: argparse.Namespace):
    base = np.fromfile(folder / "base.f32", dtype="<f4").reshape(-1, args.dimension)
    queries = np.fromfile(folder / "queries.f32", dtype="<f4").reshape(-1, args.dimension)

    def truth(name: str) -> np.ndarray:
        return np.fromfile(folder / name, dtype="<u4").reshape(-1, args.k)

    return base, queries, truth


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(row[row >= 0].tolist()) & set(expected.tolist()))
               for row, expected in zip(found, truth))
    return hits / truth.size


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fastest(repeats: int, search):
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        found = search()
        elapsed = time.perf_counter() - started
        if elapsed < best:
            best, result = elapsed, found
    return best, result


class Faiss:
    def __init__(self, args):
        import faiss
        self.faiss = faiss
        faiss.omp_set_num_threads(args.threads)
        self.version = f"FAISS {faiss.__version__} (faiss-cpu)"

    def exact(self, base):
        index = self.faiss.IndexFlatIP(base.shape[1])
        index.add(base)
        return lambda queries, k: index.search(queries, k)[1]

    def build(self, base, args):
        index = self.faiss.IndexHNSWFlat(base.shape[1], args.m, self.faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = args.ef_construction
        index.add(base)
        self.index = index

    def search(self, queries, k, ef, allowed=None):
        params = self.faiss.SearchParametersHNSW()
        params.efSearch = ef
        if allowed is not None:
            bits = np.packbits(allowed, bitorder="little")
            params.sel = self.faiss.IDSelectorBitmap(len(allowed), self.faiss.swig_ptr(bits))
            self._bits = bits  # The selector reads the array during the search.
        return self.index.search(queries, k, params=params)[1]

    def save(self, path):
        self.faiss.write_index(self.index, str(path))

    def load(self, path):
        self.index = self.faiss.read_index(str(path))


class Hnswlib:
    def __init__(self, args):
        import hnswlib
        self.hnswlib = hnswlib
        self.threads = args.threads
        self.version = f"hnswlib {getattr(hnswlib, '__version__', '0.8.0')}"

    def build(self, base, args):
        index = self.hnswlib.Index(space="ip", dim=base.shape[1])
        index.init_index(max_elements=len(base), M=args.m, ef_construction=args.ef_construction,
                         random_seed=100)
        index.add_items(base, np.arange(len(base)), num_threads=self.threads)
        self.index, self.count = index, len(base)

    def search(self, queries, k, ef, allowed=None):
        self.index.set_ef(ef)
        if allowed is None:
            return self.index.knn_query(queries, k=k, num_threads=self.threads)[0].astype(np.int64)
        # hnswlib calls a Python function per candidate, under the GIL.
        accept = allowed.__getitem__
        return self.index.knn_query(queries, k=k, num_threads=self.threads,
                                    filter=accept)[0].astype(np.int64)

    def save(self, path):
        self.index.save_index(str(path))

    def load(self, path):
        index = self.hnswlib.Index(space="ip", dim=self.index.dim)
        index.load_index(str(path), max_elements=self.count)
        self.index = index


class Usearch:
    def __init__(self, args):
        import usearch
        from usearch.index import Index
        self.Index = Index
        self.threads = args.threads
        self.version = f"usearch {usearch.__version__}"

    def build(self, base, args):
        index = self.Index(ndim=base.shape[1], metric="ip", dtype="f32", connectivity=args.m,
                           expansion_add=args.ef_construction)
        index.add(np.arange(len(base)), base, threads=self.threads)
        self.index = index

    def search(self, queries, k, ef, allowed=None):
        if allowed is not None:
            return None
        self.index.expansion_search = ef
        return self.index.search(queries, k, threads=self.threads).keys.astype(np.int64)

    def save(self, path):
        self.index.save(str(path))

    def load(self, path):
        self.index = self.Index.restore(str(path))


def measure_peer(name: str, folder: Path, args: argparse.Namespace) -> dict:
    """Runs in a subprocess: builds, sweeps, filters, saves and loads one peer."""
    base, queries, truth = load_data(folder, args)
    peer = {"faiss": Faiss, "hnswlib": Hnswlib, "usearch": Usearch}[name](args)
    report = {"library": peer.version}
    gt = truth("gt.u32")

    if hasattr(peer, "exact"):
        search = peer.exact(base)
        single = min(args.single_queries, len(queries))
        started = time.perf_counter()
        for row in range(single):
            search(queries[row:row + 1], args.k)
        report["exact_single_qps"] = single / (time.perf_counter() - started)
        seconds, found = fastest(args.repeats, lambda: search(queries, args.k))
        report["exact_batch_qps"] = len(queries) / seconds
        report["exact_recall"] = recall(found, gt)
        del search

    before = resident_bytes()
    started = time.perf_counter()
    peer.build(base, args)
    report["hnsw_build_s"] = time.perf_counter() - started
    report["hnsw_rss_bytes"] = resident_bytes() - before
    print(f"{name}: build {report['hnsw_build_s']:.1f} s", file=sys.stderr, flush=True)

    sweep = []
    for ef in args.ef:
        seconds, found = fastest(args.repeats, lambda: peer.search(queries, args.k, ef))
        point = {"ef": ef, "recall": recall(found, gt), "qps": len(queries) / seconds}
        print(f"{name}: ef {ef}: recall {point['recall']:.4f}, {point['qps']:.0f} q/s",
              file=sys.stderr, flush=True)
        sweep.append(point)
    report["sweep"] = sweep

    filter_ef = next((p["ef"] for p in sweep if p["recall"] >= 0.95), 64)
    filtered = []
    ids = np.arange(len(base))
    for filter_name, (fraction, rule) in FILTERS.items():
        allowed = rule(ids)
        repeats = 1 if name == "hnswlib" else args.repeats
        seconds, found = fastest(repeats, lambda: peer.search(queries, args.k, filter_ef, allowed))
        if found is None:
            continue
        filtered.append({"name": filter_name, "fraction": fraction, "ef": filter_ef,
                         "recall": recall(found, truth(f"gt_{filter_name}.u32")),
                         "qps": len(queries) / seconds})
    report["filtered"] = filtered

    path = folder / f"{name}.index"
    started = time.perf_counter()
    peer.save(path)
    report["save_s"] = time.perf_counter() - started
    report["file_bytes"] = path.stat().st_size
    started = time.perf_counter()
    peer.load(path)
    report["load_s"] = time.perf_counter() - started
    path.unlink()
    return report


def measure_kai(folder: Path, args: argparse.Namespace) -> dict:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    env = dict(os.environ, CARGO_TARGET_DIR=str(target), RAYON_NUM_THREADS=str(args.threads))
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "kai-benches",
         "--bin", "bench-vector-search"],
        cwd=ROOT, env=env, check=True,
    )
    command = [
        str(target / "release" / "bench-vector-search"),
        "--data", str(folder),
        "--dimension", str(args.dimension),
        "--k", str(args.k),
        "--m", str(args.m),
        "--ef-construction", str(args.ef_construction),
        "--ef", ",".join(map(str, args.ef)),
        "--single-queries", str(args.single_queries),
        "--repeats", str(args.repeats),
    ]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    sys.stderr.write(output.stderr)
    return json.loads(output.stdout)


def at_recall(report: dict, target: float) -> tuple[float, int] | None:
    """Returns the best throughput among sweep points at or above `target` recall."""
    points = [p for p in report.get("sweep", []) if p["recall"] >= target]
    if not points:
        return None
    best = max(points, key=lambda p: p["qps"])
    return best["qps"], best["ef"]


def tables(kai: dict, peers: dict, args: argparse.Namespace) -> str:
    names = list(peers)
    bandwidth = kai["bandwidth_gb_per_s"] * 1e9
    per_query = kai["exact_bytes_per_query"]
    floor_qps = bandwidth / per_query

    def cell(value, fmt):
        return "—" if value is None else format(value, fmt)

    rows = []

    def row(label, ours, theirs, fmt, lower_is_better=False):
        ratios = []
        for value in theirs:
            if ours is None or value in (None, 0):
                ratios.append("—")
            else:
                note = " (lower is better)" if lower_is_better else ""
                ratios.append(f"{ours / value:.2f}{note}")
        rows.append(f"| {label} | {cell(ours, fmt)} | "
                    + " | ".join(cell(v, fmt) for v in theirs) + " | " + " | ".join(ratios) + " |")

    def get(report, key):
        return report.get(key)

    row("exact, one query at a time (q/s)", kai["exact_single_qps"],
        [get(peers[n], "exact_single_qps") for n in names], ".1f")
    row("exact, share of the bandwidth floor", kai["exact_single_qps"] / floor_qps,
        [None if get(peers[n], "exact_single_qps") is None
         else peers[n]["exact_single_qps"] / floor_qps for n in names], ".2f")
    row(f"exact, batch of {kai['queries']} (q/s)", kai["exact_batch_qps"],
        [get(peers[n], "exact_batch_qps") for n in names], ".0f")
    row("HNSW build (s)", kai["hnsw_build_s"], [peers[n]["hnsw_build_s"] for n in names], ".1f",
        lower_is_better=True)
    row("HNSW resident memory growth (MiB)", (kai["hnsw_rss_bytes"] or 0) / 2**20,
        [peers[n]["hnsw_rss_bytes"] / 2**20 for n in names], ".0f", lower_is_better=True)
    for target in (0.95, 0.99):
        reached = [at_recall(report, target) for report in [kai, *(peers[n] for n in names)]]
        cells = ["—" if r is None else f"{r[0]:.0f} (ef {r[1]})" for r in reached]
        ratios = ["—" if reached[0] is None or r is None else f"{reached[0][0] / r[0]:.2f}"
                  for r in reached[1:]]
        rows.append(f"| HNSW q/s at recall@10 ≥ {target} | " + " | ".join(cells) + " | "
                    + " | ".join(ratios) + " |")
    for filter_name, (fraction, _) in FILTERS.items():
        def point(report):
            return next((p for p in report.get("filtered", []) if p["name"] == filter_name), None)
        ours = point(kai)
        theirs = [point(peers[n]) for n in names]
        label = f"filtered {fraction:.0%}"
        row(f"{label}: recall@10", ours and ours["recall"], [t and t["recall"] for t in theirs],
            ".3f")
        row(f"{label}: q/s", ours and ours["qps"], [t and t["qps"] for t in theirs], ".0f")
    row("save (s)", kai["save_s"], [peers[n]["save_s"] for n in names], ".2f",
        lower_is_better=True)
    row("load (s)", kai["load_s"], [peers[n]["load_s"] for n in names], ".2f",
        lower_is_better=True)
    row("file size (MiB)", kai["file_bytes"] / 2**20, [peers[n]["file_bytes"] / 2**20 for n in names],
        ".0f", lower_is_better=True)

    header = ("| measure | kai | " + " | ".join(names) + " | "
              + " | ".join(f"kai / {n}" for n in names) + " |")
    lines = [
        f"Data: {kai['vectors']:,} × {kai['dimension']} unit vectors, {kai['queries']} queries, "
        f"k = {args.k}, {args.threads} threads each. Read bandwidth "
        f"{kai['bandwidth_gb_per_s']:.1f} GB/s, so one exact query ({per_query / 1e6:.1f} MB) "
        f"has a floor of {floor_qps:.1f} q/s.",
        "Peers: " + "; ".join(peers[n]["library"] for n in names) + ". Machine: "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs.",
        "",
        header,
        "| --- | ---: | " + " | ".join(["---:"] * (2 * len(names))) + " |",
        *rows,
        "",
        "Sweep (recall@10 / q/s):",
        "",
        "| ef_search | kai | " + " | ".join(names) + " |",
        "| ---: | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for position, ef in enumerate(args.ef):
        cells = []
        for report in [kai, *(peers[n] for n in names)]:
            p = report["sweep"][position]
            cells.append(f"{p['recall']:.3f} / {p['qps']:.0f}")
        lines.append(f"| {ef} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--latent", type=int, default=64,
                        help="dimension of the latent space the clusters live in")
    parser.add_argument("--spread", type=float, default=1.0,
                        help="standard deviation of a cluster in the latent space")
    parser.add_argument("--noise", type=float, default=0.1,
                        help="standard deviation of the isotropic noise per component")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")],
                        default=[10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512])
    parser.add_argument("--single-queries", type=int, default=200,
                        help="queries searched one at a time for exact search")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peers", type=lambda s: s.split(","), default=list(PEERS))
    parser.add_argument("--peer", choices=PEERS, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.peer:
        print(json.dumps(measure_peer(args.peer, args.data, args)))
        return

    with tempfile.TemporaryDirectory(prefix="kai-vector-bench-") as temporary:
        folder = Path(temporary)
        started = time.perf_counter()
        generate(args, folder)
        print(f"data written in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        kai = measure_kai(folder, args)
        peers = {}
        for name in args.peers:
            command = [sys.executable, __file__, *sys.argv[1:], "--peer", name, "--data",
                       str(folder)]
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            output = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
            sys.stderr.write(output.stderr)
            peers[name] = json.loads(output.stdout)
    print(tables(kai, peers, args))


if __name__ == "__main__":
    main()
