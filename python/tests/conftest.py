import os
from pathlib import Path

import pytest

import kai


def model_dir() -> Path:
    configured = os.environ.get("MODEL_DIR")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kai" / "models"


@pytest.fixture(scope="session")
def embedder() -> kai.TextEmbedder:
    if not (model_dir() / "all-minilm-l6-v2" / "model.safetensors").is_file():
        pytest.skip("all-minilm-l6-v2 not fetched; run `python3 models/fetch.py`")
    return kai.TextEmbedder()
