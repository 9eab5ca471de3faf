import dataclasses
import fcntl
import hashlib
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


def stored_files(catalog: kai.Catalog) -> set[Path]:
    """Return every file under the store's images folder."""
    return {path for path in (catalog.root / "images").rglob("*") if path.is_file()}


def pixels(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Return a query photo as a uint8 RGB array, resized to `size` (width, height) if given."""
    with Image.open(QUERIES / name) as photo:
        rgb = photo.convert("RGB")
    return np.asarray(rgb.resize(size) if size else rgb)


NEW_RECORD = {
    "id": "dark-walnut-boards",
    "name": "Dark walnut boards",
    "material_type": "Wood",
    "tags": ("dark", "planks"),
    "description": "Dark brown boards with straight grain.",
    "properties": {"finish": "oiled"},
}


def test_create_from_image_kinds(writable):
    files_before = stored_files(writable)
    array = pixels("heldout-blue-field-rug.jpg")
    with Image.open(QUERIES / "heldout-yellow-pictorial-rug.jpg") as pil:
        created = writable.create(
            NEW_RECORD,
            [
                QUERIES / "heldout-dark-brown-planks.jpg",
                str(QUERIES / "heldout-weathered-plank.jpg"),
                (QUERIES / "altered-olive-stained-planks.jpg").read_bytes(),
                pil,
                array,
            ],
        )

    assert isinstance(created, kai.Material)
    assert created.id == "dark-walnut-boards"
    assert created.material_type == "wood"
    assert created.tags == ("dark", "planks")
    assert created.version == 1
    assert len(created.images) == 5

    # Paths and bytes are stored as they are; arrays and PIL images as PNG.
    original_bytes = (QUERIES / "heldout-dark-brown-planks.jpg").read_bytes()
    first = created.images[0]
    assert first.sha256 == hashlib.sha256(original_bytes).hexdigest()
    assert writable.image_path(first).read_bytes() == original_bytes
    assert created.images[3].path.endswith(".png")
    assert created.images[4].path.endswith(".png")
    assert (created.images[4].height, created.images[4].width) == array.shape[:2]

    assert len(stored_files(writable) - files_before) == 5
    assert writable.get("dark-walnut-boards") == created
    assert [(v.version, v.change) for v in writable.history("dark-walnut-boards")] == [
        (1, "created")
    ]
    hits = writable.search(image=QUERIES / "heldout-weathered-plank.jpg", top_k=1)
    assert hits[0].id == "dark-walnut-boards"


def test_create_from_json_text_without_images(writable):
    record = json.dumps({"id": "bare-plaster", "name": "Bare plaster", "materialType": "plaster"})
    created = writable.create(record)
    assert created.name == "Bare plaster"
    assert created.images == ()
    assert "plaster" in writable.material_types()


def test_create_bad_image_leaves_store_unchanged(writable):
    files_before = stored_files(writable)
    good = QUERIES / "heldout-dark-brown-planks.jpg"
    cases = [
        ([good, b"not an image"], r"images\[1\]"),
        ([good, good.read_bytes()[:2000]], r"images\[1\]"),
        ([3.5], r"images\[0\]: a value of type float is not an image"),
        ([good, np.zeros((8, 8, 3), dtype=np.float32)], r"images\[1\]: an array of dtype float32"),
        ([QUERIES / "expected.json"], r"images\[0\] \(.*expected\.json\)"),
    ]
    for images, message in cases:
        with pytest.raises(kai.InvalidInputError, match=message):
            writable.create(NEW_RECORD, images)
    with pytest.raises(kai.StorageError, match="no-such-photo.jpg"):
        writable.create(NEW_RECORD, [good, QUERIES / "no-such-photo.jpg"])
    assert writable.get("dark-walnut-boards") is None
    assert writable.history("dark-walnut-boards") == []
    assert stored_files(writable) == files_before
    assert len(writable.list()) == len(SUBSET)


def test_create_rejects_single_image_and_record_images(writable):
    photo = QUERIES / "heldout-dark-brown-planks.jpg"
    with pytest.raises(TypeError, match="list of images"):
        writable.create(NEW_RECORD, photo)
    with pytest.raises(TypeError, match="list of images"):
        writable.create(NEW_RECORD, np.zeros((64, 64, 3), dtype=np.uint8))
    with pytest.raises(kai.InvalidInputError, match="not a stored image"):
        writable.create({**NEW_RECORD, "images": ["images/dark-red-brick.jpg"]}, [photo])
    with pytest.raises(kai.InvalidInputError, match="over the limit of 64"):
        writable.create(NEW_RECORD, [photo] * 65)
    assert writable.get("dark-walnut-boards") is None


def test_create_existing_id_is_conflict(writable):
    existing = writable.get("dark-red-brick")
    with pytest.raises(kai.ConflictError, match="dark-red-brick"):
        writable.create(
            {**existing.to_record(), "name": "Second"}, [QUERIES / "heldout-grey-brick-wall.jpg"]
        )
    assert writable.get("dark-red-brick") == existing


def test_replace_fields_and_images(writable):
    original = writable.get("grey-mossy-brick")
    record = {**original.to_record(), "name": "Mossy grey brick"}

    renamed = writable.replace(record)
    assert renamed.name == "Mossy grey brick"
    assert renamed.version == original.version + 1
    assert renamed.images == original.images

    new_photo = QUERIES / "heldout-grey-brick-wall.jpg"
    swapped = writable.replace(record, [new_photo], expect_version=renamed.version)
    assert swapped.version == renamed.version + 1
    assert len(swapped.images) == 1
    assert swapped.images[0].sha256 == hashlib.sha256(new_photo.read_bytes()).hexdigest()
    assert writable.search(image=new_photo, top_k=1)[0].id == "grey-mossy-brick"

    extra = pixels("altered-red-brick-white-mortar.jpg")
    kept_and_added = writable.replace({**record, "images": swapped.images}, [extra])
    assert kept_and_added.version == swapped.version + 1
    assert [image.path for image in kept_and_added.images][:1] == [swapped.images[0].path]
    assert len(kept_and_added.images) == 2
    assert kept_and_added.images[1].path.endswith(".png")

    history = writable.history("grey-mossy-brick")
    assert [v.change for v in history] == ["created", "updated", "updated", "updated"]


def test_replace_stale_version_is_conflict(writable):
    original = writable.get("red-prayer-rug")
    files_before = stored_files(writable)
    with pytest.raises(kai.ConflictError) as caught:
        writable.replace(
            {**original.to_record(), "name": "Stale"},
            [QUERIES / "heldout-blue-field-rug.jpg"],
            expect_version=original.version + 1,
        )
    assert "red-prayer-rug" in str(caught.value)
    assert writable.get("red-prayer-rug") == original
    assert stored_files(writable) == files_before
    current = writable.replace(
        dataclasses.replace(original, name="Current"), expect_version=np.int64(original.version)
    )
    assert current.name == "Current"


def test_replace_bad_image_leaves_material_unchanged(writable):
    original = writable.get("riveted-steel-panels")
    files_before = stored_files(writable)
    record = {**original.to_record(), "name": "Changed"}
    with pytest.raises(kai.InvalidInputError, match=r"images\[1\]"):
        writable.replace(record, [QUERIES / "heldout-rusted-metal-sheet.jpg", b"\x89PNG\r\n"])
    with pytest.raises(kai.InvalidInputError, match="not a stored image"):
        writable.replace({**record, "images": ["images/no-such-image.jpg"]})
    with pytest.raises(kai.InvalidInputError, match="expect_version"):
        writable.replace(record, expect_version=-1)
    assert writable.get("riveted-steel-panels") == original
    assert len(writable.history("riveted-steel-panels")) == 1
    assert stored_files(writable) == files_before


def test_replace_unknown_id_is_not_found(writable):
    with pytest.raises(kai.NotFoundError, match="no-such-material"):
        writable.replace({"id": "no-such-material", "name": "X", "materialType": "wood"})
    assert writable.get("no-such-material") is None


BATCH_QUERIES = [
    "altered-red-persian-medallion-rug.jpg",
    "altered-perforated-steel-sheet.jpg",
    "altered-red-brick-white-mortar.jpg",
    "altered-red-brown-plank-floor.jpg",
    "heldout-rusted-metal-sheet.jpg",
]


def assert_same_recognition(batch: kai.Recognition, alone: kai.Recognition):
    assert [m.id for m in batch.materials] == [m.id for m in alone.materials]
    for got, expected in zip(batch.materials, alone.materials, strict=True):
        assert got.score == pytest.approx(expected.score, abs=1e-4)
    assert [c.material_type for c in batch.classes] == [c.material_type for c in alone.classes]
    for got, expected in zip(batch.classes, alone.classes, strict=True):
        assert got.confidence == pytest.approx(expected.confidence, abs=1e-4)
    assert batch.unknown == alone.unknown
    assert batch.classified_by == alone.classified_by
    assert batch.quality.passed == alone.quality.passed
    assert batch.quality.score == pytest.approx(alone.quality.score, abs=1e-4)


def test_recognize_batch_matches_recognize(catalog):
    photos = [QUERIES / name for name in BATCH_QUERIES]
    small = np.full((32, 32, 3), 128, dtype=np.uint8)
    batch = [photos[0], photos[1].read_bytes(), small, *photos[2:]]
    results = catalog.recognize_batch(batch, top_k=3, return_exceptions=True)
    assert len(results) == len(batch)
    assert isinstance(results[2], kai.InvalidInputError)
    assert "images[2]" in str(results[2])
    assert "shorter side" in str(results[2])
    recognized = [result for index, result in enumerate(results) if index != 2]
    for photo, result in zip(photos, recognized, strict=True):
        assert isinstance(result, kai.Recognition)
        assert_same_recognition(result, catalog.recognize(photo, top_k=3))


def test_recognize_batch_with_hint_matches_recognize(catalog):
    photos = [QUERIES / name for name in BATCH_QUERIES[:3]]
    hint = "dark red bricks with dark mortar"
    results = catalog.recognize_batch(photos, top_k=4, hint=hint, hint_weight=0.5)
    for photo, result in zip(photos, results, strict=True):
        alone = catalog.recognize(photo, top_k=4, hint=hint, hint_weight=0.5)
        assert_same_recognition(result, alone)


def test_recognize_batch_errors_per_photo(catalog):
    photo = QUERIES / "altered-red-brick-white-mortar.jpg"
    batch = [photo, b"not an image", photo, 7, QUERIES / "no-such-photo.jpg"]
    results = catalog.recognize_batch(batch, return_exceptions=True)
    assert isinstance(results[0], kai.Recognition)
    assert isinstance(results[1], kai.InvalidInputError)
    assert "images[1]" in str(results[1])
    assert isinstance(results[2], kai.Recognition)
    assert isinstance(results[3], kai.InvalidInputError)
    assert "images[3]: a value of type int is not an image" in str(results[3])
    assert isinstance(results[4], kai.StorageError)
    assert "no-such-photo.jpg" in str(results[4])
    # Without return_exceptions, the first failure in input order is raised.
    with pytest.raises(kai.InvalidInputError, match=r"images\[1\]"):
        catalog.recognize_batch(batch)


def test_recognize_batch_over_one_core_call(catalog):
    # 64 photos go to the core per call; photos 64 and 65 fall into a second call.
    photo = QUERIES / "altered-perforated-steel-sheet.jpg"
    batch = [b"x"] * 64 + [photo, photo.read_bytes()]
    results = catalog.recognize_batch(batch, return_exceptions=True)
    assert len(results) == 66
    assert all(isinstance(result, kai.InvalidInputError) for result in results[:64])
    assert "images[63]" in str(results[63])
    alone = catalog.recognize(photo)
    assert_same_recognition(results[64], alone)
    assert_same_recognition(results[65], alone)


def test_recognize_batch_from_4d_array(catalog):
    names = BATCH_QUERIES[:2]
    arrays = [pixels(name, (160, 120)) for name in names]
    results = catalog.recognize_batch(np.stack(arrays))
    for array, result in zip(arrays, results, strict=True):
        assert_same_recognition(result, catalog.recognize(array))


def test_recognize_batch_whole_batch_errors(catalog, tmp_path):
    photo = QUERIES / "altered-red-brick-white-mortar.jpg"
    assert catalog.recognize_batch([]) == []
    with pytest.raises(TypeError, match="list of images"):
        catalog.recognize_batch(photo)
    with pytest.raises(kai.InvalidInputError, match="top_k"):
        catalog.recognize_batch([photo], top_k=0, return_exceptions=True)
    with pytest.raises(kai.InvalidInputError, match="top_k"):
        catalog.recognize_batch([], top_k=0)
    with pytest.raises(kai.NotFoundError, match="no images"):
        kai.Catalog(tmp_path).recognize_batch([photo], return_exceptions=True)


def test_gil_released_during_recognize_batch(catalog):
    photos = [QUERIES / name for name in BATCH_QUERIES] * 2
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
    catalog.recognize_batch(photos)
    during = counter - before
    done.set()
    thread.join()
    assert during > 100, f"the counting thread ran only {during} times during the call"


def test_postgres_create_and_replace(tmp_path):
    url = os.environ.get("KAI_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("KAI_REQUIRE_POSTGRES"):
            pytest.fail("KAI_REQUIRE_POSTGRES is set but KAI_TEST_DATABASE_URL is not")
        pytest.skip("no PostgreSQL server; run `python3 scripts/postgres.py start`")
    require_models()
    # The database is shared with other tests, so the id and collection are unique.
    suffix = uuid.uuid4().hex[:12]
    record = {**NEW_RECORD, "id": f"walnut-{suffix}", "collection_id": f"py-{suffix}"}
    catalog = kai.Catalog(tmp_path / "store", database_url=url)
    created = catalog.create(record, [QUERIES / "heldout-dark-brown-planks.jpg"])
    assert created.version == 1
    assert len(created.images) == 1

    with pytest.raises(kai.InvalidInputError, match=r"images\[0\]"):
        catalog.replace(record, [b"not an image"])
    with pytest.raises(kai.ConflictError):
        catalog.replace({**record, "name": "Stale"}, expect_version=2)
    assert catalog.get(record["id"]) == created

    replaced = catalog.replace(
        {**record, "name": "Walnut"}, [QUERIES / "heldout-weathered-plank.jpg"], expect_version=1
    )
    assert replaced.version == 2
    assert replaced.name == "Walnut"
    assert replaced.images[0].sha256 != created.images[0].sha256
    hits = catalog.search(
        image=QUERIES / "heldout-weathered-plank.jpg", collection=f"py-{suffix}", top_k=1
    )
    assert hits[0].id == record["id"]
    with pytest.raises(kai.ConflictError):
        catalog.create(record)
    assert catalog.delete(record["id"]) is True
