import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import model_dir
from PIL import Image, ImageFilter

import kai

PHOTOS = Path(__file__).resolve().parents[2] / "kai-core" / "tests" / "fixtures" / "photos"
JPEG = PHOTOS / "coffee.jpg"
PNG = PHOTOS / "brick.png"


@pytest.fixture(scope="module")
def image_embedder() -> kai.ImageEmbedder:
    if not any((model_dir() / "efficientnet-lite0").glob("*.pth")):
        pytest.skip("efficientnet-lite0 not fetched; run `python3 models/fetch.py`")
    return kai.ImageEmbedder()


def open_image(path: Path) -> Image.Image:
    """Return a decoded PIL image with its file closed."""
    with Image.open(path) as image:
        image.load()
        return image.copy()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def rgb_png(tmp_path: Path) -> Path:
    """Write coffee.jpg as a lossless RGB PNG, so decoders agree pixel for pixel."""
    path = tmp_path / "coffee.png"
    open_image(JPEG).convert("RGB").save(path)
    return path


def test_embed_one_image_returns_vector(image_embedder):
    vector = image_embedder.embed(str(JPEG))
    assert vector.shape == (1280,)
    assert vector.dtype == np.float32
    assert vector.flags["C_CONTIGUOUS"]
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_embed_list_returns_matrix(image_embedder):
    vectors = image_embedder.embed([str(JPEG), str(PNG), str(JPEG)])
    assert vectors.shape == (3, 1280)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert cosine(vectors[0], vectors[1]) < 0.9


def test_embed_tuple_and_empty_list(image_embedder):
    assert image_embedder.embed((str(JPEG),)).shape == (1, 1280)
    assert image_embedder.embed([]).shape == (0, 1280)


def test_path_like_and_bytes_match_path(image_embedder):
    expected = image_embedder.embed(str(JPEG))
    np.testing.assert_array_equal(image_embedder.embed(JPEG), expected)
    np.testing.assert_array_equal(image_embedder.embed(JPEG.read_bytes()), expected)


def test_pil_and_numpy_of_jpeg_close_to_path(image_embedder):
    # PIL's JPEG decoder and kai's differ by rounding, so vectors differ slightly.
    expected = image_embedder.embed(str(JPEG))
    pil = open_image(JPEG)
    assert cosine(image_embedder.embed(pil), expected) >= 0.999
    assert cosine(image_embedder.embed(np.asarray(pil.convert("RGB"))), expected) >= 0.999


def test_png_inputs_match_path_exactly(image_embedder, tmp_path):
    path = rgb_png(tmp_path)
    expected = image_embedder.embed(str(path))
    pil = open_image(path)
    for name, image in [
        ("bytes", path.read_bytes()),
        ("PIL", pil),
        ("numpy RGB", np.asarray(pil)),
        ("numpy non-contiguous", np.asarray(pil)[:, ::-1][:, ::-1]),
    ]:
        np.testing.assert_array_equal(image_embedder.embed(image), expected, err_msg=name)


def test_grey_inputs_match_grey_png(image_embedder, tmp_path):
    path = tmp_path / "grey.png"
    grey = open_image(JPEG).convert("L")
    grey.save(path)
    expected = image_embedder.embed(str(path))
    pixels = np.asarray(grey)
    np.testing.assert_array_equal(image_embedder.embed(grey), expected)
    np.testing.assert_array_equal(image_embedder.embed(pixels), expected)
    np.testing.assert_array_equal(image_embedder.embed(pixels[:, :, None]), expected)


def test_rgba_composited_over_white_like_files(image_embedder, tmp_path):
    rgba = open_image(JPEG).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, rgba.width, dtype=np.uint8), (rgba.height, 1))
    rgba.putalpha(Image.fromarray(alpha))
    path = tmp_path / "transparent.png"
    rgba.save(path)
    expected = image_embedder.embed(str(path))
    np.testing.assert_array_equal(image_embedder.embed(rgba), expected)
    np.testing.assert_array_equal(image_embedder.embed(np.asarray(rgba)), expected)
    opaque = image_embedder.embed(open_image(JPEG).convert("RGB"))
    assert cosine(expected, opaque) < 0.99


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((32, 32, 3), dtype=np.float32), "uint8"),
        (np.zeros((32, 32, 2), dtype=np.uint8), "shape"),
        (np.zeros((2, 32, 32, 3), dtype=np.uint8), "shape"),
        (np.zeros((0, 32, 3), dtype=np.uint8), "no pixels"),
        (b"", "empty"),
        (b"not an image at all", "format"),
        (12, "int is not an image"),
    ],
    ids=["float", "two-channels", "four-dims", "empty-array", "empty-bytes", "garbage", "int"],
)
def test_bad_image_raises_invalid_input(image_embedder, image, message):
    with pytest.raises(kai.InvalidInputError, match=message) as caught:
        image_embedder.embed(image)
    assert isinstance(caught.value, ValueError)


def test_truncated_jpeg_raises_invalid_input(image_embedder):
    data = JPEG.read_bytes()
    with pytest.raises(kai.InvalidInputError):
        image_embedder.embed(data[: len(data) // 2])


def test_bad_image_in_list_raises(image_embedder):
    with pytest.raises(kai.InvalidInputError):
        image_embedder.embed([str(JPEG), b"garbage"])


def test_missing_file_raises_storage_error(image_embedder, tmp_path):
    missing = tmp_path / "missing.jpg"
    with pytest.raises(kai.StorageError, match="missing.jpg") as caught:
        image_embedder.embed(missing)
    assert isinstance(caught.value, OSError)


def test_pixel_limit_applies_to_arrays(image_embedder, monkeypatch):
    monkeypatch.setenv("KAI_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(kai.InvalidInputError, match="KAI_MAX_IMAGE_PIXELS"):
        image_embedder.embed(np.zeros((100, 100, 3), dtype=np.uint8))


def test_classify_returns_ranked_predictions(image_embedder):
    predictions = image_embedder.classify(str(JPEG), top_k=3)
    assert len(predictions) == 3
    assert all(isinstance(p, kai.Prediction) for p in predictions)
    scores = [p.score for p in predictions]
    assert scores == sorted(scores, reverse=True)
    assert 0.0 < scores[0] <= 1.0
    assert "espresso" in predictions[0].label or "cup" in predictions[0].label
    assert repr(predictions[0]).startswith("Prediction(label=")


def test_classify_list_gives_one_list_per_image(image_embedder):
    labels = image_embedder.classify([str(JPEG), str(PNG)], top_k=2)
    assert [len(row) for row in labels] == [2, 2]


def test_embed_and_classify_matches_embed(image_embedder):
    vectors, labels = image_embedder.embed_and_classify([str(JPEG), str(PNG)], top_k=1)
    np.testing.assert_allclose(vectors, image_embedder.embed([str(JPEG), str(PNG)]), atol=1e-6)
    assert len(labels) == 2


def test_properties_and_repr(image_embedder):
    assert image_embedder.name == "efficientnet-lite0"
    assert image_embedder.dimension == 1280
    assert image_embedder.num_classes == 1000
    assert repr(image_embedder) == "ImageEmbedder(model='efficientnet-lite0', dimension=1280)"


def test_gil_released_during_image_batch(image_embedder):
    data = JPEG.read_bytes()
    images = [data] * 48
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
    image_embedder.embed(images)
    during = counter - before
    done.set()
    thread.join()
    assert during > 100, f"the counting thread ran only {during} times during the call"


def test_missing_model_raises_model_not_found(tmp_path):
    with pytest.raises(kai.ModelNotFoundError, match="efficientnet-lite0"):
        kai.ImageEmbedder(model_dir=tmp_path)


def test_batch_size_out_of_range_is_invalid(image_embedder):
    for batch_size in (0, 129):
        with pytest.raises(kai.InvalidInputError, match="batch_size"):
            kai.ImageEmbedder(batch_size=batch_size)


def test_small_batches_give_same_vectors(image_embedder):
    images = [str(JPEG), str(PNG), str(JPEG)]
    batched = image_embedder.embed(images)
    one_by_one = kai.ImageEmbedder(batch_size=1).embed(images)
    np.testing.assert_allclose(one_by_one, batched, atol=1e-5)


def test_quality_report_fields():
    report = kai.assess_quality(str(JPEG))
    assert isinstance(report, kai.QualityReport)
    assert (report.width, report.height) == open_image(JPEG).size
    assert report.passed
    assert report.reasons == ()
    assert 0.5 <= report.score <= 1.0
    assert report.sharpness > 50
    assert repr(report).startswith("QualityReport(width=")


def test_quality_same_for_every_input_kind(tmp_path):
    path = rgb_png(tmp_path)
    expected = kai.assess_quality(str(path))
    pil = open_image(path)
    for image in (path, path.read_bytes(), pil, np.asarray(pil)):
        assert kai.assess_quality(image) == expected


def test_quality_flags_blur_and_low_resolution():
    blurred = open_image(JPEG).convert("RGB").filter(ImageFilter.GaussianBlur(4))
    report = kai.assess_quality(blurred)
    assert not report.passed
    assert "blurry" in report.reasons
    assert report.score < 0.5

    small = kai.assess_quality(str(JPEG), min_short_side=5000)
    assert small.reasons == ("low_resolution",)
    assert not small.passed


def test_quality_thresholds_object_and_overrides():
    defaults = kai.QualityThresholds.default()
    assert defaults.min_short_side == 224
    assert defaults.min_sharpness == 50.0
    strict = defaults.replace(min_sharpness=1e9)
    assert "blurry" in kai.assess_quality(str(JPEG), strict).reasons
    relaxed = kai.assess_quality(str(JPEG), strict, min_sharpness=0.0)
    assert relaxed.passed


def test_quality_unknown_threshold_is_type_error():
    with pytest.raises(TypeError, match="min_sharpnes"):
        kai.assess_quality(str(JPEG), min_sharpnes=10)


def test_quality_invalid_threshold_names_field():
    with pytest.raises(kai.InvalidInputError, match="max_shadows_clipped"):
        kai.assess_quality(str(JPEG), max_shadows_clipped=2.0)
    with pytest.raises(kai.InvalidInputError, match="max_noise: nan is not a finite number"):
        kai.assess_quality(str(JPEG), max_noise=float("nan"))


def test_quality_bad_image_raises_invalid_input():
    with pytest.raises(kai.InvalidInputError, match="uint8"):
        kai.assess_quality(np.zeros((10, 10), dtype=np.int64))


def test_quality_is_assessed_on_io_bytes():
    buffer = io.BytesIO()
    open_image(JPEG).save(buffer, format="PNG")
    assert kai.assess_quality(buffer.getvalue()).width == open_image(JPEG).width


def test_huge_broadcast_array_is_rejected_before_copying(image_embedder):
    # 900 million pixels that take no memory as a numpy view.
    huge = np.broadcast_to(np.uint8(7), (30000, 30000, 3))
    with pytest.raises(kai.InvalidInputError, match="KAI_MAX_IMAGE_PIXELS"):
        kai.assess_quality(huge)
    with pytest.raises(kai.InvalidInputError, match="dtype float32"):
        image_embedder.embed(np.zeros((8, 8, 3), dtype=np.float32))


def test_numpy_scalars_are_accepted_as_thresholds():
    photo = np.full((256, 256, 3), 128, dtype=np.uint8)
    report = kai.assess_quality(photo, min_sharpness=np.float32(1.5), min_short_side=np.int64(64))
    assert isinstance(report.score, float)
