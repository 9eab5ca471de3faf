#!/usr/bin/env python3
"""Write sentences.txt: 1,200 material descriptions of varied length for the text
embedding benchmark.

The sentences are assembled from fixed word lists with a seeded random generator, so the
file is the same on every run. Lengths range from three words to long paragraphs of about
300 words (over 256 word pieces), roughly the spread of product titles, catalog entries
and full specification texts.
"""

import random
from pathlib import Path

MATERIALS = [
    "oak", "walnut", "ash", "maple", "teak", "bamboo", "cork", "pine", "birch", "cherry",
    "marble", "granite", "slate", "limestone", "travertine", "basalt", "quartzite", "onyx",
    "porcelain", "ceramic", "terracotta", "terrazzo", "concrete", "brick", "glass",
    "stainless steel", "brass", "copper", "aluminium", "zinc", "Corten steel", "linen",
    "wool", "velvet", "leather", "jute", "sisal", "vinyl", "linoleum", "laminate",
]
FORMS = [
    "floor tiles", "wall panels", "planks", "parquet", "cladding", "countertop",
    "backsplash", "veneer", "mosaic", "slabs", "upholstery fabric", "curtains", "rug",
    "roof tiles", "sheet", "worktop", "skirting boards", "stair treads",
]
FINISHES = [
    "polished", "honed", "brushed", "matte", "glossy", "oiled", "lacquered", "sandblasted",
    "flamed", "tumbled", "hand-scraped", "smoked", "bleached", "patinated", "waxed",
    "textured", "satin", "raw", "weathered", "antique",
]
COLOURS = [
    "warm grey", "off-white", "charcoal", "honey", "deep green", "terracotta red",
    "sand", "ivory", "midnight blue", "natural", "black", "cream", "rust", "taupe",
]
CLAUSES = [
    "suitable for underfloor heating",
    "rated for heavy commercial traffic",
    "with a slip resistance class of R10",
    "which needs sealing every two years",
    "supplied in boxes covering 1.5 square metres",
    "with rectified edges for narrow joints",
    "sourced from certified sustainable forests",
    "that resists stains from coffee and red wine",
    "installed with a flexible cement-based adhesive",
    "with a wear layer of four millimetres",
    "that develops a patina over the first months",
    "tested for frost resistance in exterior use",
    "with low emissions of volatile organic compounds",
    "available in lengths up to two metres",
    "which can be sanded and refinished several times",
]


def sentence(rng: random.Random) -> str:
    kind = rng.random()
    material = rng.choice(MATERIALS)
    form = rng.choice(FORMS)
    if kind < 0.25:
        return f"{rng.choice(FINISHES)} {material} {form}"
    head = (
        f"{rng.choice(FINISHES).capitalize()} {rng.choice(COLOURS)} {material} {form}"
    )
    if kind < 0.7:
        clauses = rng.sample(CLAUSES, rng.randint(1, 3))
        return f"{head}, {', '.join(clauses)}."
    paragraphs = []
    for _ in range(rng.randint(3, 16)):
        clauses = rng.sample(CLAUSES, rng.randint(1, 3))
        paragraphs.append(
            f"{rng.choice(FINISHES).capitalize()} {rng.choice(COLOURS)} "
            f"{rng.choice(MATERIALS)} {rng.choice(FORMS)}, {', '.join(clauses)}."
        )
    return f"{head}. " + " ".join(paragraphs)


def main() -> None:
    rng = random.Random(20261204)
    lines = [sentence(rng) for _ in range(1200)]
    out = Path(__file__).resolve().parent / "sentences.txt"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    words = sorted(len(line.split()) for line in lines)
    print(f"wrote {out}: {len(lines)} sentences, words min {words[0]}, "
          f"median {words[len(words) // 2]}, max {words[-1]}")


if __name__ == "__main__":
    main()
