import dataclasses
import fcntl
import json
import os
import shutil
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import model_dir
from PIL import Image

import kai

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PHOTOS = Path(__file__).resolve().parents[2] / "kai-core" / "tests" / "fixtures" / "photos"
QUERIES = EXAMPLES / "queries"

# Three materials of each of four types from the sample catalog.
SUBSET = [
    "red-brown-plank-floor",
    "olive-stained-planks",
    "dark-knotty-boards",
    "red-persian-medallion-rug",
    "red-prayer-rug",
    "orange-medallion-rug",
    "red-brick-white-mortar",
    "dark-red-brick",
    "grey-mossy-brick",
    "perforated-steel-sheet",
    "riveted-steel-panels",
    "grey-sheet-metal",
]
TYPES = ["brick", "carpet", "metal", "wood"]


def require_models():
    folder = model_dir()
    if not any((folder / "efficientnet-lite0").glob("*.pth")):
        pytest.skip("efficientnet-lite0 not fetched; run `python3 models/fetch.py`")
    if not (folder / "all-minilm-l6-v2" / "model.safetensors").is_file():
        pytest.skip("all-minilm-l6-v2 not fetched; run `python3 models/fetch.py`")


def write_catalog(folder: Path, ids: list[str], extra: list[dict] = ()) -> Path:
    """Copy the records `ids` of the sample catalog and their images into `folder`."""
    records = json.loads((EXAMPLES / "catalog" / "catalog.json").read_text())
    chosen = [record for record in records if record["id"] in ids]
    (folder / "images").mkdir(parents=True)
    for record in chosen:
        for image in record["images"]:
            shutil.copy(EXAMPLES / "catalog" / image, folder / image)
    (folder / "catalog.json").write_text(json.dumps(chosen + list(extra)))
    return folder


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A store with the subset imported, plus one record whose image is missing."""
    require_models()
    folder = write_catalog(
        tmp_path_factory.mktemp("catalog"),
        SUBSET,
        [{"id": "broken", "name": "Broken", "materialType": "wood", "images": ["images/no.jpg"]}],
    )
    store = tmp_path_factory.mktemp("store")
    catalog = kai.Catalog(store)
    calls = []
    report = catalog.import_folder(folder, progress=lambda done, total: calls.append((done, total)))
    total = len(SUBSET) + 1
    assert calls == [(done, total) for done in range(1, total + 1)]
    return catalog, report, folder


@pytest.fixture(scope="module")
def catalog(imported) -> kai.Catalog:
    return imported[0]


@pytest.fixture
def writable(catalog, tmp_path) -> kai.Catalog:
    """A copy of the imported store, for tests that change it."""
    copy = tmp_path / "store"
    shutil.copytree(catalog.root, copy)
    return kai.Catalog(copy)


def test_import_report(imported):
    _, report, _ = imported
    assert isinstance(report, kai.ImportReport)
    assert sorted(report.created) == sorted(SUBSET)
    assert report.updated == ()
    assert report.unchanged == ()
    assert isinstance(report.calibration, kai.Calibration)
    assert report.calibration.samples == len(SUBSET)


def test_import_lists_failed_record(imported):
    _, report, _ = imported
    assert len(report.failed) == 1
    failure = report.failed[0]
    assert isinstance(failure, kai.RecordError)
    assert failure.record == "broken"
    assert "no.jpg" in failure.message


def test_reimport_skips_unchanged(imported, writable):
    _, _, folder = imported
    report = writable.import_folder(folder)
    assert sorted(report.unchanged) == sorted(SUBSET)
    assert report.created == ()
    assert report.calibration is None


def test_import_missing_catalog_file_is_invalid(writable, tmp_path):
    with pytest.raises(kai.InvalidInputError, match="catalog"):
        writable.import_folder(tmp_path / "empty")


def test_search_by_text(catalog):
    hits = catalog.search("red brick wall", top_k=3)
    assert len(hits) == 3
    assert all(isinstance(hit, kai.SearchHit) for hit in hits)
    assert [hit.material_type for hit in hits] == ["brick"] * 3
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)


def test_search_by_image_kinds(catalog):
    photo = QUERIES / "altered-red-persian-medallion-rug.jpg"
    expected = catalog.search(image=photo, top_k=3)
    assert expected[0].id == "red-persian-medallion-rug"
    assert catalog.search(image=str(photo), top_k=3) == expected
    assert catalog.search(image=photo.read_bytes(), top_k=3) == expected
    with Image.open(photo) as pil:
        assert catalog.search(image=pil, top_k=1)[0].id == "red-persian-medallion-rug"


def test_search_filters(catalog):
    carpets = catalog.search("red", material_type="Carpet", top_k=20)
    assert carpets
    assert {hit.material_type for hit in carpets} == {"carpet"}
    tagged = catalog.search("brick", tags=["Grimy"], top_k=20)
    assert [hit.id for hit in tagged] == ["dark-red-brick"]
    assert catalog.search("brick", tags="grimy", top_k=20) == tagged
    collection = catalog.search("grey", collection="supertuxkart-tracks", top_k=20)
    assert {hit.id for hit in collection} == {"grey-sheet-metal", "olive-stained-planks"}
    assert catalog.search("brick", collection="no-such-collection") == []


def test_search_pages(catalog):
    six = catalog.search("red", top_k=6)
    assert catalog.search("red", top_k=3, offset=3) == six[3:]


def test_search_weights(catalog):
    keyword_only = catalog.search("perforated", weights={"text": 0, "image": 0}, top_k=1)
    assert keyword_only[0].id == "perforated-steel-sheet"
    with pytest.raises(kai.InvalidInputError, match="weights.keyword"):
        catalog.search("steel", weights={"keyword": -1})
    with pytest.raises(kai.InvalidInputError, match="rankConstant"):
        catalog.search("steel", weights={"rank_constant": -1})
    with pytest.raises(kai.InvalidInputError, match="rank_constant: must be a finite number"):
        catalog.search("steel", weights={"rank_constant": float("nan")})


def test_search_invalid_queries(catalog):
    with pytest.raises(kai.InvalidInputError, match="text, an image"):
        catalog.search()
    with pytest.raises(kai.InvalidInputError, match="top_k"):
        catalog.search("steel", top_k=0)
    with pytest.raises(kai.InvalidInputError, match="uint8"):
        catalog.search(image=np.zeros((64, 64, 3), dtype=np.float64))


@pytest.mark.parametrize(
    ("query", "material", "material_type"),
    [
        ("altered-red-persian-medallion-rug.jpg", "red-persian-medallion-rug", "carpet"),
        ("altered-perforated-steel-sheet.jpg", "perforated-steel-sheet", "metal"),
        ("altered-red-brick-white-mortar.jpg", "red-brick-white-mortar", "brick"),
        ("altered-red-brown-plank-floor.jpg", "red-brown-plank-floor", "wood"),
    ],
)
def test_recognize_query_photos(catalog, query, material, material_type):
    recognition = catalog.recognize(QUERIES / query, top_k=3)
    assert isinstance(recognition, kai.Recognition)
    assert recognition.materials[0].id == material
    assert recognition.classes[0].material_type == material_type
    assert not recognition.unknown


def test_recognition_fields(catalog):
    recognition = catalog.recognize(QUERIES / "altered-perforated-steel-sheet.jpg", top_k=2)
    assert len(recognition.materials) == 2
    assert isinstance(recognition.materials[0], kai.MaterialMatch)
    assert sorted(c.material_type for c in recognition.classes) == TYPES
    assert isinstance(recognition.classes[0], kai.ClassConfidence)
    assert abs(sum(c.confidence for c in recognition.classes) - 1.0) < 1e-4
    assert recognition.classified_by == "neighbours"
    assert recognition.processing_time_ms > 0
    assert isinstance(recognition.quality, kai.QualityReport)
    assert repr(recognition).startswith("Recognition(materials=(MaterialMatch(id=")


def test_recognize_unrelated_photo_is_unknown(catalog):
    assert catalog.recognize(PHOTOS / "rocket.jpg").unknown


def test_recognize_input_kinds_agree(catalog):
    photo = QUERIES / "altered-red-brown-plank-floor.jpg"
    expected = catalog.recognize(photo).materials
    assert catalog.recognize(photo.read_bytes()).materials == expected
    with Image.open(photo) as pil:
        assert catalog.recognize(pil).materials[0].id == expected[0].id


def test_recognize_with_hint(catalog):
    photo = QUERIES / "altered-red-brick-white-mortar.jpg"
    plain = catalog.recognize(photo, top_k=3)
    hinted = catalog.recognize(photo, top_k=3, hint="dark red bricks with dark mortar")
    assert hinted.materials[0].material_type == "brick"
    assert [m.score for m in hinted.materials] != [m.score for m in plain.materials]


def test_recognize_rejects_small_photo_and_bad_options(catalog):
    with pytest.raises(kai.InvalidInputError, match="shorter side"):
        catalog.recognize(np.full((32, 32, 3), 128, dtype=np.uint8))
    photo = QUERIES / "altered-red-brick-white-mortar.jpg"
    with pytest.raises(kai.InvalidInputError, match="top_k"):
        catalog.recognize(photo, top_k=0)
    with pytest.raises(kai.InvalidInputError, match="hint_weight"):
        catalog.recognize(photo, hint_weight=2.0)


def test_recognize_empty_catalog_is_not_found(tmp_path):
    require_models()
    with pytest.raises(kai.NotFoundError, match="no images") as caught:
        kai.Catalog(tmp_path).recognize(QUERIES / "altered-red-brick-white-mortar.jpg")
    assert isinstance(caught.value, LookupError)


def test_get_material(catalog):
    material = catalog.get("dark-red-brick")
    assert isinstance(material, kai.Material)
    assert material.material_type == "brick"
    assert material.version == 1
    assert "running bond" in material.tags
    assert isinstance(material.tags, tuple)
    assert material.properties["pattern"] == "running bond"
    assert isinstance(material.created_at, datetime)
    assert material.created_at.tzinfo is not None
    image = material.images[0]
    assert isinstance(image, kai.ImageRef)
    assert (image.width, image.height) == (256, 256)
    assert catalog.image_path(image).is_file()
    assert catalog.image_path(image.path) == catalog.image_path(image)
    assert repr(material).startswith("Material(id='dark-red-brick', name='Dark red brick'")


def test_get_unknown_is_none(catalog):
    assert catalog.get("no-such-material") is None


def test_list_materials(catalog):
    everything = catalog.list()
    assert [m.id for m in everything] == sorted(SUBSET)
    woods = catalog.list(material_type="WOOD")
    assert {m.material_type for m in woods} == {"wood"}
    assert len(woods) == 3
    assert [m.id for m in catalog.list(offset=2, limit=3)] == sorted(SUBSET)[2:5]
    assert [m.id for m in catalog.list(tags=["knots", "Olive"])] == ["olive-stained-planks"]
    in_collection = catalog.list(collection="supertuxkart-tracks")
    assert [m.id for m in in_collection] == ["grey-sheet-metal", "olive-stained-planks"]
    assert catalog.list(collection="no-such-collection") == []


def test_material_types_and_calibration(catalog):
    assert catalog.material_types() == TYPES
    calibration = catalog.calibration()
    assert calibration.samples == len(SUBSET)
    assert 0 < calibration.temperature


def test_update_with_snake_case_keys(writable):
    record = writable.get("dark-red-brick").to_record()
    del record["materialType"]
    record["material_type"] = "Brick"
    record["name"] = "Sooty red brick"
    updated = writable.update(record)
    assert updated.name == "Sooty red brick"
    assert updated.version == 2
    assert updated.images == writable.get("dark-red-brick").images
    history = writable.history("dark-red-brick")
    assert [(v.version, v.change) for v in history] == [(1, "created"), (2, "updated")]
    assert history[1].record["name"] == "Sooty red brick"
    assert isinstance(history[1].changed_at, datetime)
    assert repr(history[0]).startswith("MaterialVersion(version=1, change='created'")


def test_update_from_material(writable):
    material = writable.get("grey-sheet-metal")
    updated = writable.update(dataclasses.replace(material, tags=("grey", "sheet")))
    assert updated.tags == ("grey", "sheet")
    assert updated.version == material.version + 1


def test_update_with_new_image(writable, tmp_path):
    Image.open(QUERIES / "altered-red-brick-white-mortar.jpg").save(tmp_path / "new.png")
    record = writable.get("grey-mossy-brick").to_record()
    record["images"] = ["new.png"]
    updated = writable.update(record, image_folder=tmp_path)
    assert len(updated.images) == 1
    assert updated.images[0].path.endswith(".png")
    assert writable.search(image=tmp_path / "new.png", top_k=1)[0].id == "grey-mossy-brick"


def test_restore_version_from_history(writable):
    original = writable.get("red-prayer-rug")
    writable.update({**original.to_record(), "name": "Renamed rug"})
    restored = writable.update(
        writable.history("red-prayer-rug")[0].record, writable.root / "images"
    )
    assert restored.name == original.name
    assert restored.version == 3


def test_update_errors(writable):
    with pytest.raises(kai.NotFoundError, match="nope") as caught:
        writable.update({"id": "nope", "name": "Nope", "materialType": "wood"})
    assert isinstance(caught.value, LookupError)
    with pytest.raises(kai.InvalidInputError, match="colour"):
        writable.update({"id": "dark-red-brick", "name": "X", "materialType": "brick", "colour": 1})
    with pytest.raises(kai.InvalidInputError, match="name"):
        writable.update({"id": "dark-red-brick", "name": " ", "materialType": "brick"})
    assert writable.get("dark-red-brick").version == 1


def test_delete_material(writable):
    assert writable.delete("olive-stained-planks") is True
    assert writable.get("olive-stained-planks") is None
    assert writable.delete("olive-stained-planks") is False
    assert "olive-stained-planks" not in [hit.id for hit in writable.search("olive", top_k=20)]
    history = writable.history("olive-stained-planks")
    assert [v.change for v in history] == ["created", "deleted"]


def test_history_of_unknown_is_empty(catalog):
    assert catalog.history("no-such-material") == []


def test_write_while_store_locked_is_conflict(writable):
    lock = open(writable.root / "write.lock", "a+")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(kai.ConflictError, match="another writer"):
            writable.delete("dark-red-brick")
        # Reads do not take the write lock.
        assert writable.get("dark-red-brick") is not None
        assert writable.search("brick", top_k=1)
    finally:
        lock.close()
    assert writable.delete("dark-red-brick") is True


def test_train_head_and_recognize_with_it(writable):
    head = writable.train_head()
    assert isinstance(head, kai.DomainHead)
    assert head.domain == "material-type"
    assert head.label == "materialType"
    assert head.material_type is None
    assert head.classes == tuple(TYPES)
    assert head.image_model == "efficientnet-lite0"
    assert head.dimension == 1280
    assert head.heldout_images > 0
    assert 0.0 <= head.heldout_accuracy <= 1.0
    assert writable.heads() == [head]
    assert repr(head).startswith("DomainHead(domain='material-type', label='materialType'")
    recognition = writable.recognize(QUERIES / "altered-perforated-steel-sheet.jpg")
    assert recognition.classified_by == "head"


def test_train_property_head(writable):
    head = writable.train_head("finish", label="property:finish")
    assert head.label == "property:finish"
    assert len(head.classes) >= 2
    assert [h.domain for h in writable.heads()] == ["finish"]


def test_train_head_invalid_label(writable):
    with pytest.raises(kai.InvalidInputError, match="label"):
        writable.train_head("colours", label="colour")


def test_reindex(writable):
    calls = []
    assert writable.reindex(progress=lambda done, total: calls.append((done, total))) == len(SUBSET)
    assert calls[-1] == (len(SUBSET), len(SUBSET))
    assert writable.search("red brick wall", top_k=1)[0].material_type == "brick"
    reopened = kai.Catalog.open_for_reindex(writable.root)
    assert reopened.reindex() == len(SUBSET)


def test_progress_exception_does_not_stop_import(imported, tmp_path, monkeypatch):
    _, _, folder = imported

    def fail(done, total):
        raise RuntimeError("progress bar closed")

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    catalog = kai.Catalog(tmp_path / "store")
    report = catalog.import_folder(folder, progress=fail)
    assert sorted(report.created) == sorted(SUBSET)
    assert len(reported) == len(SUBSET) + 1
    assert str(reported[0].exc_value) == "progress bar closed"


def test_gil_released_during_reindex(writable):
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
    writable.reindex()
    during = counter - before
    done.set()
    thread.join()
    assert during > 100, f"the counting thread ran only {during} times during the call"


def test_missing_models_raise_model_not_found(tmp_path, imported):
    _, _, folder = imported
    catalog = kai.Catalog(tmp_path / "store", model_dir=tmp_path / "models")
    with pytest.raises(kai.ModelNotFoundError):
        catalog.import_folder(folder)


def test_catalog_repr_and_properties(catalog):
    assert repr(catalog) == f'Catalog(store="{catalog.root}")'
    assert catalog.root.is_dir()
    assert catalog.database is None


def test_invalid_database_url_is_invalid_input(tmp_path):
    with pytest.raises(kai.InvalidInputError, match="database_url"):
        kai.Catalog(tmp_path, database_url="mysql://localhost/kai")


def test_postgres_backend(tmp_path):
    url = os.environ.get("KAI_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("KAI_REQUIRE_POSTGRES"):
            pytest.fail("KAI_REQUIRE_POSTGRES is set but KAI_TEST_DATABASE_URL is not")
        pytest.skip("no PostgreSQL server; run `python3 scripts/postgres.py start`")
    require_models()
    # The server's database is shared with other tests, so the records get unique ids and
    # a collection of their own, and every check filters on that collection.
    suffix = uuid.uuid4().hex[:12]
    collection = f"py-{suffix}"
    folder = write_catalog(tmp_path / "catalog", SUBSET[:6])
    records = json.loads((folder / "catalog.json").read_text())
    for record in records:
        record["id"] = f"{record['id']}-{suffix}"
        record["collectionId"] = collection
    (folder / "catalog.json").write_text(json.dumps(records))

    catalog = kai.Catalog(tmp_path / "store", database_url=url)
    assert catalog.database is not None
    assert catalog.database.startswith("postgres")
    report = catalog.import_folder(folder)
    assert len(report.created) == 6
    assert report.failed == ()

    listed = catalog.list(collection=collection)
    assert sorted(m.id for m in listed) == sorted(r["id"] for r in records)
    hits = catalog.search("persian medallion rug", collection=collection, top_k=3)
    assert hits[0].id == f"red-persian-medallion-rug-{suffix}"
    assert catalog.delete(f"red-prayer-rug-{suffix}") is True
    assert len(catalog.list(collection=collection)) == 5
    # Records and vectors live in the database, not in the store folder.
    assert not (tmp_path / "store" / "kai.db").exists()


def test_progress_callback_cannot_reenter_its_catalog(writable, imported):
    _, _, folder = imported
    seen = []

    def progress(done, total):
        try:
            writable.get(SUBSET[0])
        except kai.ConflictError as err:
            seen.append(str(err))

    writable.reindex(progress=progress)
    assert seen, "the callback ran"
    assert "progress callback" in seen[0]
    # The catalog works again once the call has returned.
    assert writable.get(SUBSET[0]) is not None
    with pytest.raises(TypeError, match="progress must be a callable"):
        writable.import_folder(folder, progress=5)


def test_search_long_query_and_weights(catalog):
    hits = catalog.search("brick " * 200_000, top_k=3)
    assert len(hits) <= 3
    with pytest.raises(kai.InvalidInputError, match="bogus"):
        catalog.search("brick", weights={"bogus": 1.0})
    assert catalog.search("brick", top_k=np.int64(2)) is not None


def test_negative_counts_name_the_argument(catalog):
    with pytest.raises(kai.InvalidInputError, match="top_k"):
        catalog.search("brick", top_k=-1)
    with pytest.raises(kai.InvalidInputError, match="limit"):
        catalog.list(limit=-1)
    with pytest.raises(kai.InvalidInputError, match="batch_size"):
        kai.TextEmbedder(batch_size=-1)
    registry = kai.Registry(catalog.root)
    with pytest.raises(kai.InvalidInputError, match="version"):
        registry.get("standard", version=-1)
    with pytest.raises(kai.InvalidInputError, match="expect_version"):
        registry.set("standard", {"recognition.top_k": 5}, expect_version=-2)
