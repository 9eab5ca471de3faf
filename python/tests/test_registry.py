import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

import kai

from conftest import model_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Two wood materials, so a wood material has a neighbour of its own type, and four
# other types.
CATALOG_IDS = [
    "red-brown-plank-floor",
    "olive-stained-planks",
    "grey-fieldstone-wall",
    "beach-pebbles",
    "red-brick-white-mortar",
    "cracked-concrete-slabs",
]


@pytest.fixture
def registry(tmp_path):
    return kai.Registry(tmp_path / "store")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    for name in (kai.DEFAULT_TEXT_MODEL, kai.DEFAULT_IMAGE_MODEL):
        if not (model_dir() / name).is_dir():
            pytest.skip(f"{name} not fetched; run `python3 models/fetch.py`")
    records = json.loads((EXAMPLES / "catalog" / "catalog.json").read_text())
    chosen = [record for record in records if record["id"] in CATALOG_IDS]
    assert len(chosen) == len(CATALOG_IDS), "a sample catalog record was renamed"
    folder = tmp_path_factory.mktemp("catalog")
    (folder / "images").mkdir()
    for record in chosen:
        for image in record["images"]:
            shutil.copy(EXAMPLES / "catalog" / image, folder / image)
    (folder / "catalog.json").write_text(json.dumps(chosen))
    catalog = kai.Catalog(tmp_path_factory.mktemp("store"))
    report = catalog.import_folder(folder)
    assert report.failed == ()
    return catalog


def material_type_of(catalog, material_id):
    return catalog.get(material_id).material_type


# Sets and versions


def test_list_shows_shipped_sets(registry):
    sets = registry.list()
    assert [s.name for s in sets] == ["enterprise", "premium", "standard"]
    assert all(isinstance(s, kai.SetSummary) for s in sets)
    assert all(s.version == 1 and s.versions == 1 and s.scope is None for s in sets)


def test_get_current_and_by_version(registry):
    first = registry.get("standard")
    assert isinstance(first, kai.ParameterSet)
    assert first.version == 1
    assert first.values["recognition.top_k"] == 5
    registry.set("standard", {"recognition.top_k": 7}, author="ana")
    assert registry.get("standard").values["recognition.top_k"] == 7
    assert registry.get("standard", version=1) == first


def test_get_unknown_set_or_version(registry):
    with pytest.raises(kai.NotFoundError, match="nonexistent"):
        registry.get("nonexistent")
    with pytest.raises(LookupError):
        registry.get("nonexistent")
    with pytest.raises(kai.NotFoundError, match="version 9"):
        registry.get("standard", version=9)


def test_set_changes_only_given_values(registry):
    before = registry.get("premium")
    written = registry.set(
        "premium", {"recognition.top_k": 8, "quality.max_noise": 4}, author="ana", note="why"
    )
    assert written.version == 2
    assert written.author == "ana"
    assert written.note == "why"
    assert written.values["recognition.top_k"] == 8
    # An int given for a float parameter is stored as a float.
    assert written.values["quality.max_noise"] == 4.0
    assert isinstance(written.values["quality.max_noise"], float)
    changed = {"recognition.top_k", "quality.max_noise"}
    for name, value in before.values.items():
        if name not in changed:
            assert written.values[name] == value, name


def test_set_author_defaults_to_login_name(registry):
    written = registry.set("premium", {"recognition.top_k": 6})
    assert written.author not in ("", None)


def test_set_rejects_unknown_parameter(registry):
    with pytest.raises(kai.InvalidInputError, match="recognition.nope") as raised:
        registry.set("premium", {"recognition.nope": 1})
    assert "not in the schema" in str(raised.value)


def test_set_rejects_value_out_of_range(registry):
    with pytest.raises(kai.InvalidInputError) as raised:
        registry.set("premium", {"quality.max_highlights_clipped": 1.5})
    message = str(raised.value)
    assert "quality.max_highlights_clipped" in message
    assert "1.5" in message
    assert "maximum" in message


def test_set_rejects_wrong_types(registry):
    with pytest.raises(kai.InvalidInputError, match="recognition.top_k"):
        registry.set("premium", {"recognition.top_k": "eight"})
    # bool is a subclass of int in Python, but not an int parameter value.
    with pytest.raises(kai.InvalidInputError, match="recognition.top_k"):
        registry.set("premium", {"recognition.top_k": True})
    with pytest.raises(kai.InvalidInputError, match="recognition.top_k"):
        registry.set("premium", {"recognition.top_k": 2.5})
    with pytest.raises(kai.InvalidInputError, match="list"):
        registry.set("premium", {"recognition.top_k": [8]})
    with pytest.raises(kai.InvalidInputError, match="64-bit"):
        registry.set("premium", {"recognition.top_k": 2**70})
    with pytest.raises(ValueError):
        registry.set("premium", {})
    assert registry.get("premium").version == 1


def test_set_rejects_bad_names_and_notes(registry):
    with pytest.raises(kai.InvalidInputError, match="set name"):
        registry.set("two words", {"recognition.top_k": 8})
    with pytest.raises(kai.InvalidInputError, match="note"):
        registry.set("premium", {"recognition.top_k": 8}, note="line one\nline two")


def test_stale_expect_version_conflicts(registry):
    registry.set("premium", {"recognition.top_k": 8}, expect_version=1)
    with pytest.raises(kai.ConflictError, match="version 2, not 1"):
        registry.set("premium", {"recognition.top_k": 9}, expect_version=1)
    with pytest.raises(kai.ConflictError):
        registry.rollback("premium", 1, expect_version=1)
    assert registry.get("premium").values["recognition.top_k"] == 8


def test_expect_version_zero_creates_only_new_sets(registry):
    created = registry.set("trial", {"recognition.top_k": 3}, expect_version=0)
    assert created.version == 1
    with pytest.raises(kai.ConflictError):
        registry.set("trial", {"recognition.top_k": 4}, expect_version=0)


def test_history_diff_and_rollback(registry):
    registry.set("premium", {"recognition.top_k": 8})
    registry.set("premium", {"recognition.top_k": 9, "recognition.hint_weight": 0.5})
    history = registry.history("premium")
    assert [s.version for s in history] == [1, 2, 3]

    changes = registry.diff("premium", 1, 3)
    assert changes == [
        kai.ValueChange("recognition.hint_weight", 0.3, 0.5),
        kai.ValueChange("recognition.top_k", 5, 9),
    ]
    assert registry.diff("premium", 2, 2) == []

    rolled = registry.rollback("premium", 1, author="ana")
    assert rolled.version == 4
    assert rolled.values == history[0].values
    assert rolled.note == "rollback to version 1"
    with pytest.raises(kai.NotFoundError, match="version 17"):
        registry.rollback("premium", 17)
    with pytest.raises(kai.NotFoundError):
        registry.diff("premium", 1, 17)
    with pytest.raises(kai.NotFoundError):
        registry.history("nonexistent")


def test_scoped_set_starts_from_unscoped(registry):
    registry.set("premium", {"recognition.top_k": 8})
    wood = registry.set("premium", {"recognition.hint_weight": 0.6}, scope="Wood")
    assert wood.scope == "wood"
    assert wood.version == 1
    assert wood.values["recognition.top_k"] == 8
    assert registry.get("premium", scope="wood") == wood
    assert registry.history("premium", scope="wood") == [wood]
    with pytest.raises(kai.InvalidInputError, match="scope"):
        registry.get("premium", scope=" ")


def test_resolve_scopes_falls_back_to_unscoped(registry):
    registry.set("premium", {"recognition.top_k": 6}, scope="wood")

    found = registry.resolve_scopes(["metal", "Wood"], set="premium")
    assert isinstance(found, kai.Resolution)
    assert (found.scope, found.version, found.fallback) == ("wood", 1, False)
    assert found.tried == ("metal", "wood")
    assert found.values["recognition.top_k"] == 6

    fallback = registry.resolve_scopes(["metal"], set="premium")
    assert fallback.scope is None
    assert fallback.fallback is True
    assert fallback.tried == ("metal",)

    default = registry.resolve_scopes([])
    assert default.name == "standard"
    assert default.fallback is False
    with pytest.raises(kai.NotFoundError, match="nonexistent"):
        registry.resolve_scopes([], set="nonexistent")


def test_default_set_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFAULT_PARAMETER_SET", "premium")
    assert kai.Registry(tmp_path).resolve_scopes([]).name == "premium"
    assert kai.Registry(tmp_path, default_set="enterprise").resolve_scopes([]).name == "enterprise"


# Results, purging, settings


def test_record_result(registry):
    registry.set("premium", {"recognition.top_k": 8})
    record = registry.record("premium", "oak-floor", {"accuracy": 0.93, "count": 3})
    assert isinstance(record, kai.ResultRecord)
    assert (record.set, record.version, record.material_id) == ("premium", 2, "oak-floor")
    assert record.metrics == {"accuracy": 0.93, "count": 3.0}
    older = registry.record("premium", "oak-floor", {"accuracy": 0.8}, version=1)
    assert older.version == 1


def test_record_rejects_bad_results(registry):
    with pytest.raises(kai.InvalidInputError, match="metric accuracy"):
        registry.record("premium", "oak-floor", {"accuracy": float("nan")})
    with pytest.raises(kai.InvalidInputError, match="metrics"):
        registry.record("premium", "oak-floor", {})
    with pytest.raises(kai.InvalidInputError, match="material id"):
        registry.record("premium", " ", {"accuracy": 1})
    with pytest.raises(kai.NotFoundError, match="version 5"):
        registry.record("premium", "oak-floor", {"accuracy": 1}, version=5)
    with pytest.raises(TypeError):
        registry.record("premium", "oak-floor", {"accuracy": "high"})


def test_record_batch_rejects_bad_results(registry):
    good = {"set": "premium", "version": 1, "material_id": "oak-floor", "metrics": {"score": 1}}
    with pytest.raises(kai.InvalidInputError, match="metric score"):
        registry.record_batch([good, {**good, "metrics": {"score": float("inf")}}])
    with pytest.raises(kai.NotFoundError, match="version 9"):
        registry.record_batch([good, {**good, "version": 9}])
    with pytest.raises(KeyError):
        registry.record_batch([{"set": "premium"}])
    registry.record_batch([])


def test_purge_keeps_recent_versions(registry):
    registry.set("premium", {"recognition.top_k": 8})
    report = registry.purge()
    assert isinstance(report, kai.PurgeReport)
    assert report.purged == ()
    assert report.cutoff.endswith("Z")
    assert [s.version for s in registry.history("premium")] == [1, 2]


def test_settings_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMILARITY_THRESHOLD", "0.9")
    monkeypatch.setenv("PARAM_HISTORY_RETENTION_DAYS", "7")
    registry = kai.Registry(tmp_path)
    assert registry.similarity_threshold == pytest.approx(0.9)
    assert registry.retention_days == 7
    assert kai.Registry(tmp_path, similarity_threshold=0.5).similarity_threshold == 0.5


def test_invalid_settings_name_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMILARITY_THRESHOLD", "high")
    with pytest.raises(kai.InvalidInputError, match="SIMILARITY_THRESHOLD"):
        kai.Registry(tmp_path)
    monkeypatch.delenv("SIMILARITY_THRESHOLD")
    with pytest.raises(kai.InvalidInputError, match="SIMILARITY_THRESHOLD"):
        kai.Registry(tmp_path, similarity_threshold=1.5)
    with pytest.raises(kai.InvalidInputError, match="PARAM_HISTORY_RETENTION_DAYS"):
        kai.Registry(tmp_path, retention_days=0)


def test_invalid_database_url(tmp_path):
    with pytest.raises(kai.InvalidInputError, match="database_url"):
        kai.Registry(tmp_path, database_url="mysql://localhost/kai")


def test_postgres_backend(tmp_path):
    url = os.environ.get("KAI_TEST_DATABASE_URL")
    if not url:
        if os.environ.get("KAI_REQUIRE_POSTGRES"):
            pytest.fail("KAI_REQUIRE_POSTGRES is set but KAI_TEST_DATABASE_URL is not")
        pytest.skip("no PostgreSQL server; run `python3 scripts/postgres.py start`")
    registry = kai.Registry(tmp_path, database_url=url)
    name = f"py-{uuid.uuid4().hex[:12]}"
    written = registry.set(name, {"recognition.top_k": 4}, expect_version=0)
    assert written.version == 1
    with pytest.raises(kai.ConflictError):
        registry.set(name, {"recognition.top_k": 5}, expect_version=0)
    assert registry.get(name).values["recognition.top_k"] == 4
    assert name in {s.name for s in registry.list()}
    # The registry lives in the database, not in the store folder.
    assert not (tmp_path / "kai.db").exists()


# Schema


def test_schema_lists_definitions(registry):
    schema = registry.schema()
    top_k = schema["recognition.top_k"]
    assert isinstance(top_k, kai.ParamSpec)
    assert top_k.type == "int"
    assert top_k.default == 5
    assert set(registry.get("standard").values) == set(schema)


SCHEMA_TOML = """
[parameters."segmentation.mode"]
type = "enum"
allowed = ["fast", "accurate"]
default = "fast"
description = "How carefully photos are split into regions."

[parameters."segmentation.max_regions"]
type = "int"
min = 1
max = 64
default = 16
"""


def test_apply_schema_from_toml_file(registry, tmp_path):
    path = tmp_path / "schema.toml"
    path.write_text(SCHEMA_TOML)
    report = registry.apply_schema(path)
    assert isinstance(report, kai.SchemaReport)
    assert report.added == ("segmentation.max_regions", "segmentation.mode")
    assert report.changed == ()
    assert registry.schema()["segmentation.mode"].allowed == ("fast", "accurate")

    written = registry.set("premium", {"segmentation.mode": "accurate"})
    assert written.values["segmentation.mode"] == "accurate"
    with pytest.raises(kai.InvalidInputError, match="allowed values fast, accurate"):
        registry.set("premium", {"segmentation.mode": "slow"})
    # Sets written before the schema change get the defaults when resolved.
    assert registry.resolve_scopes([]).values["segmentation.max_regions"] == 16

    again = registry.apply_schema(str(path))
    assert again.unchanged == ("segmentation.max_regions", "segmentation.mode")


def test_apply_schema_from_dict(registry):
    report = registry.apply_schema(
        {"parameters": {"recognition.top_k": {"type": "int", "min": 1, "max": 50, "default": 5}}}
    )
    assert report.changed == ("recognition.top_k",)
    assert registry.schema()["recognition.top_k"].max == 50

    spec = dataclasses.replace(registry.schema()["recognition.top_k"], description="Top k.")
    report = registry.apply_schema({"parameters": {"recognition.top_k": spec}})
    assert report.changed == ("recognition.top_k",)
    assert registry.schema()["recognition.top_k"].description == "Top k."

    # The whole schema, as returned, applies without changes.
    report = registry.apply_schema({"parameters": registry.schema()})
    assert report.changed == ()
    assert len(report.unchanged) == len(registry.schema())


def test_apply_schema_rejects_current_values(registry):
    registry.set("premium", {"recognition.hint_weight": 0.9})
    narrower = {"type": "float", "min": 0, "max": 0.5, "default": 0.3}
    with pytest.raises(kai.InvalidInputError, match="premium") as raised:
        registry.apply_schema({"parameters": {"recognition.hint_weight": narrower}})
    assert "change the set first" in str(raised.value)
    assert registry.schema()["recognition.hint_weight"].max != 0.5


def test_apply_schema_rejects_bad_input(registry, tmp_path):
    with pytest.raises(kai.InvalidInputError, match="parameters"):
        registry.apply_schema({"recognition.top_k": {"type": "int", "default": 5}})
    with pytest.raises(kai.InvalidInputError, match="schema"):
        registry.apply_schema({"parameters": {"x.y": {"type": "colour", "default": 1}}})
    broken = tmp_path / "broken.toml"
    broken.write_text("[parameters\n")
    with pytest.raises(kai.InvalidInputError, match="broken.toml"):
        registry.apply_schema(broken)
    with pytest.raises(kai.NotFoundError, match="missing.toml"):
        registry.apply_schema(tmp_path / "missing.toml")


# Results as dataclasses


def test_dataclass_reprs(registry):
    written = registry.set("premium", {"recognition.top_k": 8}, author="ana")
    text = repr(written)
    assert text.startswith("ParameterSet(name='premium', scope=None, version=2, ")
    assert f"values=<{len(written.values)} values>" in text
    assert "author='ana'" in text
    assert repr(registry.diff("premium", 1, 2)[0]) == (
        "ValueChange(parameter='recognition.top_k', from_value=5, to_value=8)"
    )
    assert repr(kai.VersionRef("premium", None, 2)) == (
        "VersionRef(name='premium', scope=None, version=2)"
    )
    assert "fallback=False" in repr(registry.resolve_scopes([]))
    assert repr(registry).startswith("Registry(default_set='standard'")
    with pytest.raises(dataclasses.FrozenInstanceError):
        written.version = 3


# With a catalog: resolving for materials and suggestions


def test_resolve_for_material(registry, catalog):
    wood_id = "red-brown-plank-floor"
    wood = material_type_of(catalog, wood_id)
    registry.set("premium", {"recognition.top_k": 9}, scope=wood)

    found = registry.resolve(wood_id, catalog, set="premium")
    assert found.material_id == wood_id
    assert found.scope == wood
    assert found.fallback is False
    assert found.values["recognition.top_k"] == 9

    stone = registry.resolve("grey-fieldstone-wall", catalog, set="premium")
    assert stone.fallback is True
    assert stone.scope is None
    assert stone.tried[0] == material_type_of(catalog, "grey-fieldstone-wall")

    assert registry.resolve(wood_id, catalog).name == "standard"
    with pytest.raises(kai.NotFoundError, match="no-such-material"):
        registry.resolve("no-such-material", catalog)


def test_suggest_falls_back_without_results(registry, catalog):
    suggestion = registry.suggest("red-brown-plank-floor", catalog)
    assert isinstance(suggestion, kai.Suggestion)
    assert suggestion.fallback is True
    assert suggestion.score is None
    assert suggestion.set.name == "standard"
    assert suggestion.evidence == ()
    assert "score" in suggestion.reason


def test_suggest_from_similar_materials(tmp_path, monkeypatch, catalog):
    # Every other material counts as similar, so the results decide alone.
    monkeypatch.setenv("SIMILARITY_THRESHOLD", "-1")
    registry = kai.Registry(tmp_path)
    registry.set("premium", {"recognition.top_k": 8})
    registry.record("premium", "olive-stained-planks", {"score": 0.9})
    registry.record("standard", "grey-fieldstone-wall", {"score": 0.4})

    best = registry.suggest("red-brown-plank-floor", catalog)
    assert best.fallback is False
    assert best.set == kai.VersionRef("premium", None, 2)
    assert best.values["recognition.top_k"] == 8
    assert best.score == pytest.approx(0.9)
    assert {e.material_id for e in best.evidence} == {"olive-stained-planks", "grey-fieldstone-wall"}
    assert all(isinstance(e, kai.Evidence) for e in best.evidence)
    assert "evidence=<2 results>" in repr(best)

    lowest = registry.suggest("red-brown-plank-floor", catalog, lower_is_better=True)
    assert lowest.set == kai.VersionRef("standard", None, 1)

    # The target's own results are not evidence.
    own = registry.suggest("olive-stained-planks", catalog)
    assert "olive-stained-planks" not in {e.material_id for e in own.evidence}

    # At a threshold no other material reaches, nothing counts.
    strict = kai.Registry(tmp_path, similarity_threshold=1.0)
    assert strict.suggest("red-brown-plank-floor", catalog).fallback is True
    other_metric = registry.suggest("red-brown-plank-floor", catalog, metric="accuracy")
    assert other_metric.fallback is True


def test_suggest_for_embedding(tmp_path, monkeypatch, catalog):
    monkeypatch.setenv("SIMILARITY_THRESHOLD", "-1")
    registry = kai.Registry(tmp_path)
    registry.record("premium", "beach-pebbles", {"score": 0.7})
    vector = kai.TextEmbedder().embed(["rounded grey beach pebbles"])[0]

    from_array = registry.suggest(vector, catalog)
    assert from_array.set.name == "premium"
    assert from_array.fallback is False
    assert registry.suggest(vector.tolist(), catalog) == from_array
    assert registry.suggest(vector.astype(np.float64), catalog) == from_array

    with pytest.raises(kai.InvalidInputError, match="3 dimensions"):
        registry.suggest([0.1, 0.2, 0.3], catalog)
    with pytest.raises(kai.InvalidInputError, match="not a finite number"):
        registry.suggest(np.full(384, np.nan, dtype=np.float32), catalog)
    with pytest.raises(kai.InvalidInputError, match="target"):
        registry.suggest(np.zeros((2, 384), dtype=np.float32), catalog)
    with pytest.raises(kai.NotFoundError, match="no-such-material"):
        registry.suggest("no-such-material", catalog)


def test_record_batch_is_all_or_none(tmp_path, monkeypatch, catalog):
    monkeypatch.setenv("SIMILARITY_THRESHOLD", "-1")
    registry = kai.Registry(tmp_path)
    good = {
        "set": "premium",
        "version": 1,
        "material_id": "olive-stained-planks",
        "metrics": {"score": 0.9},
    }
    bad = {**good, "material_id": "beach-pebbles", "metrics": {"score": float("nan")}}
    with pytest.raises(kai.InvalidInputError):
        registry.record_batch([good, bad])
    assert registry.suggest("red-brown-plank-floor", catalog).fallback is True

    recorded = registry.record("standard", "grey-fieldstone-wall", {"score": 0.4})
    registry.record_batch([good, recorded])
    suggestion = registry.suggest("red-brown-plank-floor", catalog)
    assert suggestion.set == kai.VersionRef("premium", None, 1)
    assert len(suggestion.evidence) == 3
