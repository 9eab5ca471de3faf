import shutil

import pytest

import kai

from conftest import model_dir


def test_list_models_shows_builtin_models():
    models = {model.name: model for model in kai.list_models()}
    text = models[kai.DEFAULT_TEXT_MODEL]
    image = models[kai.DEFAULT_IMAGE_MODEL]
    assert isinstance(text, kai.ModelInfo)
    assert (text.task, text.dimension, text.builtin) == ("text-embedding", 384, True)
    assert (image.task, image.dimension, image.builtin) == ("image-embedding", 1280, True)
    for model in (text, image):
        assert model.state in ("ready", "missing", "corrupt")
        assert model.path.name == model.name
        assert model.license


def test_list_models_of_empty_folder(tmp_path):
    models = kai.list_models(model_dir=tmp_path)
    assert {m.name for m in models} == {kai.DEFAULT_TEXT_MODEL, kai.DEFAULT_IMAGE_MODEL}
    for model in models:
        assert model.state == "missing"
        assert model.ready is False
        assert model.problem_files
        assert model.path.parent == tmp_path
    assert not any(tmp_path.iterdir()), "listing must not create folders"


def test_list_models_flags_corrupt_and_unverified(tmp_path):
    source = model_dir() / kai.DEFAULT_TEXT_MODEL
    if not (source / "model.safetensors").is_file():
        pytest.skip(f"{kai.DEFAULT_TEXT_MODEL} not fetched; run `python3 models/fetch.py`")
    corrupt = tmp_path / kai.DEFAULT_TEXT_MODEL
    shutil.copytree(source, corrupt)
    (corrupt / "config.json").write_text("{}")
    own = tmp_path / "my-bert"
    own.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (own / name).write_bytes(b"{}")

    models = {m.name: m for m in kai.list_models(tmp_path)}
    assert models[kai.DEFAULT_TEXT_MODEL].state == "corrupt"
    assert models[kai.DEFAULT_TEXT_MODEL].problem_files == ("config.json",)
    assert models["my-bert"].state == "unverified"
    assert models["my-bert"].builtin is False
    assert models["my-bert"].dimension is None
    assert models["my-bert"].ready is True


def test_fetch_of_fetched_model_is_a_no_op():
    folder = model_dir() / kai.DEFAULT_TEXT_MODEL
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"{kai.DEFAULT_TEXT_MODEL} not fetched; run `python3 models/fetch.py`")
    modified = {f.name: f.stat().st_mtime_ns for f in folder.iterdir()}
    report = kai.fetch_model(kai.DEFAULT_TEXT_MODEL)
    assert isinstance(report, kai.FetchReport)
    assert report.name == kai.DEFAULT_TEXT_MODEL
    assert report.downloaded is False
    assert report.written == ()
    assert report.path == folder
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir()} == modified


def test_fetch_unknown_model(tmp_path):
    with pytest.raises(kai.NotFoundError, match="no-such-model") as raised:
        kai.fetch_model("no-such-model", model_dir=tmp_path)
    assert kai.DEFAULT_TEXT_MODEL in str(raised.value)
    assert isinstance(raised.value, LookupError)
    assert not any(tmp_path.iterdir())


def test_model_info_repr():
    model = kai.list_models()[0]
    assert repr(model).startswith(f"ModelInfo(name={model.name!r}, state=")
