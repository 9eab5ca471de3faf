#!/usr/bin/env python3
"""kai's main job on the sample catalog, from Python.

The script fetches the models and imports ``examples/catalog`` into an embedded store.
It recognizes the query photos of ``examples/queries`` (altered copies and new photos,
none of them catalog files) and reports the top-1 and top-5 accuracy of the material
type against ``expected.json``. Last, it searches the catalog by text. It mirrors ``examples/quickstart.rs``.

Install the ``kai-materials`` wheel (built from ``python/`` with ``maturin build``), then
run from anywhere::

    python3 examples/python/quickstart.py [--store DIR]

The store goes to ``--store``, else ``KAI_DATA_DIR``, else ``./kai-data``; a second run
skips unchanged records.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import kai

EXAMPLES = Path(__file__).resolve().parent.parent


def fetch_models() -> None:
    for name in (kai.DEFAULT_TEXT_MODEL, kai.DEFAULT_IMAGE_MODEL):
        report = kai.fetch_model(name)
        if report.downloaded:
            print(f"fetched {report.name} into {report.path}")


def import_catalog(catalog: kai.Catalog) -> None:
    report = catalog.import_folder(EXAMPLES / "catalog")
    print(
        f"imported the sample catalog into {catalog.root}: {len(report.created)} created, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged, "
        f"{len(report.failed)} failed"
    )
    for failure in report.failed:
        print(f"  failed: {failure}")
    calibration = catalog.calibration()
    if calibration.accuracy is not None and calibration.expected_calibration_error is not None:
        print(
            f"class confidence: temperature {calibration.temperature:.4f} fitted on "
            f"{calibration.samples} held-out catalog images (accuracy "
            f"{calibration.accuracy:.2f}, expected calibration error "
            f"{calibration.expected_calibration_error:.3f})"
        )


def recognize_queries(catalog: kai.Catalog, folder: Path) -> None:
    """Recognize every query photo and print each result and the accuracies."""
    expected = json.loads((folder / "expected.json").read_text())
    top1 = top5 = material_top1 = with_source = 0
    print(f"\nrecognizing {len(expected)} query photos (not catalog files):")
    for query in expected:
        result = catalog.recognize(folder / query["file"], top_k=5)
        types = [c.material_type for c in result.classes]
        rank = types.index(query["materialType"]) if query["materialType"] in types else None
        top1 += rank == 0
        top5 += rank is not None and rank < 5
        source = query.get("sourceId")
        if source is not None:
            with_source += 1
            material_top1 += bool(result.materials) and result.materials[0].id == source
        best = result.classes[0]
        nearest = result.materials[0].id if result.materials else "-"
        print(
            f"  {query['file']:<40} expected {query['materialType']:<9} got "
            f"{best.material_type:<9} ({best.confidence * 100:>3.0f}%) nearest {nearest}"
        )
    n = max(len(expected), 1)
    print(
        f"material type accuracy: top-1 {100 * top1 / n:.1f}% ({top1}/{len(expected)}), "
        f"top-5 {100 * top5 / n:.1f}% ({top5}/{len(expected)})"
    )
    if with_source:
        print(f"altered copies matched to their source material: {material_top1}/{with_source}")


def search(catalog: kai.Catalog, text: str) -> None:
    print(f'\nsearch: "{text}"')
    for rank, hit in enumerate(catalog.search(text, top_k=5), start=1):
        print(f"  {rank}. {hit.id:<28} {hit.material_type:<10} {hit.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store folder [default: KAI_DATA_DIR, else ./kai-data]")
    args = parser.parse_args()

    fetch_models()
    catalog = kai.Catalog(args.store)
    import_catalog(catalog)
    recognize_queries(catalog, EXAMPLES / "queries")
    search(catalog, "weathered wooden planks")


if __name__ == "__main__":
    main()
