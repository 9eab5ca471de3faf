import threading
import time

import numpy as np
import pytest

import kai


def test_embed_returns_float32_matrix(embedder):
    vectors = embedder.embed(["oak parquet flooring", "solid wood floor boards", "steel sink"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_embed_empty_list(embedder):
    assert embedder.embed([]).shape == (0, 384)


def test_properties_and_repr(embedder):
    assert embedder.name == "all-minilm-l6-v2"
    assert embedder.dimension == 384
    assert embedder.max_sequence_length == 256
    assert "all-minilm-l6-v2" in repr(embedder)


def test_gil_released_during_embedding(embedder):
    texts = [f"reclaimed brick wall number {i} " * 8 for i in range(256)]
    counter = 0
    done = threading.Event()

    def count():
        nonlocal counter
        while not done.is_set():
            counter += 1
            time.sleep(0)

    thread = threading.Thread(target=count)
    thread.start()
    before = counter
    embedder.embed(texts)
    during = counter - before
    done.set()
    thread.join()
    assert during > 100, f"the counting thread ran only {during} times during the call"


def test_missing_model_raises_model_not_found(tmp_path):
    with pytest.raises(kai.ModelNotFoundError, match="kai models fetch all-minilm-l6-v2"):
        kai.TextEmbedder(model_dir=tmp_path)


def test_unknown_model_is_lookup_error(tmp_path):
    with pytest.raises(LookupError, match="no-such-model"):
        kai.TextEmbedder("no-such-model", model_dir=tmp_path)


def test_invalid_device_is_value_error():
    with pytest.raises(ValueError, match="KAI_DEVICE"):
        kai.TextEmbedder(device="tpu")


def test_zero_batch_size_is_invalid_input(embedder):
    with pytest.raises(kai.InvalidInputError, match="batch_size"):
        kai.TextEmbedder(batch_size=0)


def test_single_text_gives_one_vector(embedder):
    single = embedder.embed("oak parquet flooring")
    batch = embedder.embed(["oak parquet flooring"])
    assert single.shape == (384,)
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, batch[0], atol=1e-6)


def test_non_text_input_is_rejected(embedder):
    with pytest.raises(TypeError):
        embedder.embed([1, 2])


def test_image_model_is_not_a_text_model():
    if not any(m.name == "efficientnet-lite0" and m.ready for m in kai.list_models()):
        pytest.skip("efficientnet-lite0 not fetched; run `python3 models/fetch.py`")
    with pytest.raises(kai.InvalidInputError, match="not a text embedding model"):
        kai.TextEmbedder("efficientnet-lite0")
