"""The parameter registry: typed schemas, versioned parameter sets, results and suggestions.

A parameter set has a name (``standard``, ``premium``, ``enterprise``, …) and an optional
scope (a material type such as ``wood``, or a collection id). Every change writes a new
immutable version that contains every parameter's value. Results record how a set version
performed on a catalog material, and :meth:`Registry.suggest` picks the version that did
best on similar materials.

>>> registry = kai.Registry("kai-data")
>>> written = registry.set("premium", {"recognition.top_k": 8}, author="ana")
>>> registry.diff("premium", written.version - 1, written.version)
[ValueChange(parameter='recognition.top_k', from_value=5, to_value=8)]
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from kai import _kai
from kai._util import plain

if TYPE_CHECKING:
    from kai.catalog import Catalog

__all__ = [
    "Evidence",
    "ParamSpec",
    "ParameterSet",
    "PurgeReport",
    "Registry",
    "Resolution",
    "ResultRecord",
    "SchemaReport",
    "SetSummary",
    "Suggestion",
    "ValueChange",
    "VersionRef",
]

ParamValue = Union[bool, int, float, str]


def _values_repr(values: Mapping[str, ParamValue]) -> str:
    return f"<{len(values)} values>"


@dataclass(frozen=True)
class VersionRef:
    """A set version, identified by set name, scope and version."""

    name: str
    scope: str | None
    version: int

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> VersionRef:
        return cls(name=data["name"], scope=data.get("scope"), version=data["version"])


@dataclass(frozen=True)
class ParameterSet:
    """One immutable version of a parameter set, with every parameter's value."""

    name: str
    scope: str | None
    version: int
    values: dict[str, ParamValue] = field(repr=False)
    author: str
    note: str
    created_at: str
    """When the version was written, RFC 3339 in UTC."""

    def __repr__(self) -> str:
        return (
            f"ParameterSet(name={self.name!r}, scope={self.scope!r}, version={self.version}, "
            f"values={_values_repr(self.values)}, author={self.author!r}, note={self.note!r}, "
            f"created_at={self.created_at!r})"
        )

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ParameterSet:
        return cls(
            name=data["name"],
            scope=data.get("scope"),
            version=data["version"],
            values=dict(data["values"]),
            author=data["author"],
            note=data["note"],
            created_at=data["createdAt"],
        )


@dataclass(frozen=True)
class SetSummary:
    """The current state of one set, as :meth:`Registry.list` returns it."""

    name: str
    scope: str | None
    version: int
    versions: int
    """Versions kept; purged versions are not counted."""
    updated_at: str

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> SetSummary:
        return cls(
            name=data["name"],
            scope=data.get("scope"),
            version=data["version"],
            versions=data["versions"],
            updated_at=data["updatedAt"],
        )


@dataclass(frozen=True)
class ValueChange:
    """A parameter whose value differs between two versions; ``None`` where absent."""

    parameter: str
    from_value: ParamValue | None
    to_value: ParamValue | None

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ValueChange:
        return cls(parameter=data["parameter"], from_value=data.get("from"), to_value=data.get("to"))


@dataclass(frozen=True)
class Resolution:
    """The set version that applies to a material or scope, and how it was found.

    ``values`` contains every parameter of the schema: parameters added after the version
    was written take their defaults. ``tried`` lists the scopes looked up before the
    unscoped set, and ``fallback`` is true when none of them had a version.
    """

    name: str
    scope: str | None
    version: int
    values: dict[str, ParamValue] = field(repr=False)
    tried: tuple[str, ...]
    fallback: bool
    material_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"Resolution(name={self.name!r}, scope={self.scope!r}, version={self.version}, "
            f"values={_values_repr(self.values)}, tried={self.tried!r}, "
            f"fallback={self.fallback!r}, material_id={self.material_id!r})"
        )

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Resolution:
        return cls(
            name=data["name"],
            scope=data.get("scope"),
            version=data["version"],
            values=dict(data["values"]),
            tried=tuple(data["tried"]),
            fallback=data["fallback"],
            material_id=data.get("materialId"),
        )


@dataclass(frozen=True)
class Evidence:
    """A recorded result on a similar material that supports a suggestion."""

    material_id: str
    similarity: float
    """Cosine similarity of the material to the target."""
    set: VersionRef
    value: float
    """The metric's value in the result."""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Evidence:
        return cls(
            material_id=data["materialId"],
            similarity=data["similarity"],
            set=VersionRef._from_json(data["set"]),
            value=data["value"],
        )


@dataclass(frozen=True)
class Suggestion:
    """A suggested set version, or the default set when no evidence qualified.

    ``score`` is the similarity-weighted mean of the metric over the evidence for the
    suggested version, ``None`` for the fallback. ``evidence`` lists the results behind
    the suggestion for every candidate version, most similar first, at most 50.
    """

    set: VersionRef
    metric: str
    score: float | None
    fallback: bool
    reason: str
    evidence: tuple[Evidence, ...] = field(repr=False)
    values: dict[str, ParamValue] = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"Suggestion(set={self.set!r}, metric={self.metric!r}, score={self.score!r}, "
            f"fallback={self.fallback!r}, reason={self.reason!r}, "
            f"evidence=<{len(self.evidence)} results>, values={_values_repr(self.values)})"
        )

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Suggestion:
        return cls(
            set=VersionRef._from_json(data["set"]),
            metric=data["metric"],
            score=data.get("score"),
            fallback=data["fallback"],
            reason=data["reason"],
            evidence=tuple(Evidence._from_json(item) for item in data["evidence"]),
            values=dict(data["values"]),
        )


@dataclass(frozen=True)
class ResultRecord:
    """The metrics that a set version achieved on one material."""

    set: str
    scope: str | None
    version: int
    material_id: str
    metrics: dict[str, float]
    recorded_at: str

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ResultRecord:
        return cls(
            set=data["set"],
            scope=data.get("scope"),
            version=data["version"],
            material_id=data["materialId"],
            metrics=dict(data["metrics"]),
            recorded_at=data["recordedAt"],
        )


@dataclass(frozen=True)
class PurgeReport:
    """The versions a purge deleted; versions written before ``cutoff`` were considered."""

    cutoff: str
    purged: tuple[VersionRef, ...]

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> PurgeReport:
        return cls(
            cutoff=data["cutoff"],
            purged=tuple(VersionRef._from_json(item) for item in data["purged"]),
        )


@dataclass(frozen=True)
class SchemaReport:
    """The parameters a schema added, changed, or gave with the same definition."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> SchemaReport:
        return cls(
            added=tuple(data["added"]),
            changed=tuple(data["changed"]),
            unchanged=tuple(data["unchanged"]),
        )


@dataclass(frozen=True)
class ParamSpec:
    """The definition of one parameter.

    ``type`` is ``float``, ``int``, ``bool``, ``enum`` or ``string``. ``min`` and ``max``
    bound numbers, ``allowed`` lists the values of an enum and ``max_length`` limits a
    string in bytes.
    """

    type: str
    default: ParamValue
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] = ()
    max_length: int | None = None
    unit: str | None = None
    description: str = ""

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ParamSpec:
        return cls(
            type=data["type"],
            default=data["default"],
            min=data.get("min"),
            max=data.get("max"),
            allowed=tuple(data.get("allowed", ())),
            max_length=data.get("maxLength"),
            unit=data.get("unit"),
            description=data.get("description", ""),
        )

    def _to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "default": self.default}
        optional = {
            "min": self.min,
            "max": self.max,
            "maxLength": self.max_length,
            "unit": self.unit,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        if self.allowed:
            data["allowed"] = list(self.allowed)
        if self.description:
            data["description"] = self.description
        return data


def _schema_json(schema: Mapping[str, Any]) -> str:
    """Return a schema mapping as JSON; :class:`ParamSpec` values become plain tables."""
    if "parameters" not in schema:
        raise _kai_error(
            "InvalidInputError",
            "schema: a schema mapping needs a 'parameters' table, as in a schema file",
        )
    parameters = schema["parameters"]
    if isinstance(parameters, Mapping):
        parameters = {
            name: spec._to_json() if isinstance(spec, ParamSpec) else spec
            for name, spec in parameters.items()
        }
    return json.dumps({**schema, "parameters": parameters})


def _kai_error(name: str, message: str) -> Exception:
    from kai import errors

    return getattr(errors, name)(message)


def _default_author() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


class Registry:
    """The parameter registry of a store folder, or of a PostgreSQL database.

    ``store`` defaults to ``KAI_DATA_DIR``, else ``./kai-data``. The backend follows the
    environment (``KAI_DATABASE_URL``, ``PARAM_STORAGE_TYPE``, ``PARAM_DB_CONNECTION``)
    unless ``database_url`` puts the registry on PostgreSQL. ``default_set``,
    ``similarity_threshold`` and ``retention_days`` override ``DEFAULT_PARAMETER_SET``,
    ``SIMILARITY_THRESHOLD`` and ``PARAM_HISTORY_RETENTION_DAYS`` and follow their rules.
    A new registry starts with the shipped schema and the sets ``standard``, ``premium``
    and ``enterprise``.

    Every method runs with the GIL released. Errors are :class:`kai.KaiError`
    subclasses: :class:`kai.InvalidInputError` names the parameter, value and rule,
    :class:`kai.NotFoundError` names the set or version, and :class:`kai.ConflictError`
    means ``expect_version`` is no longer the current version.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | None = None,
        *,
        database_url: str | None = None,
        default_set: str | None = None,
        similarity_threshold: float | None = None,
        retention_days: int | None = None,
    ) -> None:
        self._native = _kai.Registry(
            os.fspath(store) if store is not None else None,
            database_url=database_url,
            default_set=default_set,
            similarity_threshold=similarity_threshold,
            retention_days=retention_days,
        )

    @property
    def default_set(self) -> str:
        """The set resolved when none is named."""
        return self._native.default_set

    @property
    def similarity_threshold(self) -> float:
        """The smallest cosine similarity at which results count for suggestions."""
        return self._native.similarity_threshold

    @property
    def retention_days(self) -> int:
        """Days that superseded versions are kept."""
        return self._native.retention_days

    def __repr__(self) -> str:
        return (
            f"Registry(default_set={self.default_set!r}, "
            f"similarity_threshold={self.similarity_threshold:g}, "
            f"retention_days={self.retention_days})"
        )

    def list(self) -> list[SetSummary]:
        """List every set's current version, by name and scope."""
        return [SetSummary._from_json(item) for item in json.loads(self._native.list())]

    def get(
        self, name: str, *, version: int | None = None, scope: str | None = None
    ) -> ParameterSet:
        """Return a version of a set (the current one by default) as it was written."""
        return ParameterSet._from_json(
            json.loads(self._native.get(name, version=version, scope=scope))
        )

    def set(
        self,
        name: str,
        values: Mapping[str, ParamValue],
        *,
        scope: str | None = None,
        expect_version: int | None = None,
        author: str | None = None,
        note: str = "",
    ) -> ParameterSet:
        """Write a new version of a set with ``values`` changed, and return it.

        A new scoped set starts from the unscoped set of the same name, a new set from the
        schema's defaults. ``expect_version`` makes the write fail with
        :class:`kai.ConflictError` unless the set is at that version (0: the set must not
        exist yet). ``author`` defaults to the login name.
        """
        return ParameterSet._from_json(
            json.loads(
                self._native.set(
                    name,
                    {key: plain(value) for key, value in values.items()},
                    scope=scope,
                    expect_version=expect_version,
                    author=author if author is not None else _default_author(),
                    note=note,
                )
            )
        )

    def history(self, name: str, *, scope: str | None = None) -> list[ParameterSet]:
        """List every kept version of a set, oldest first."""
        return [
            ParameterSet._from_json(item)
            for item in json.loads(self._native.history(name, scope=scope))
        ]

    def diff(self, name: str, a: int, b: int, *, scope: str | None = None) -> list[ValueChange]:
        """List the parameters whose values differ between versions ``a`` and ``b``."""
        return [
            ValueChange._from_json(item)
            for item in json.loads(self._native.diff(name, a, b, scope=scope))
        ]

    def rollback(
        self,
        name: str,
        to: int,
        *,
        scope: str | None = None,
        expect_version: int | None = None,
        author: str | None = None,
        note: str = "",
    ) -> ParameterSet:
        """Write a new version equal to version ``to``, and return it.

        The note defaults to "rollback to version N".
        """
        return ParameterSet._from_json(
            json.loads(
                self._native.rollback(
                    name,
                    to,
                    scope=scope,
                    expect_version=expect_version,
                    author=author if author is not None else _default_author(),
                    note=note,
                )
            )
        )

    def record(
        self,
        name: str,
        material_id: str,
        metrics: Mapping[str, float],
        *,
        scope: str | None = None,
        version: int | None = None,
    ) -> ResultRecord:
        """Record the metrics that a set version (the current one by default) achieved on
        a material, such as ``{"accuracy": 0.93}``.
        """
        return ResultRecord._from_json(
            json.loads(
                self._native.record(name, material_id, dict(metrics), scope=scope, version=version)
            )
        )

    def record_batch(self, results: Iterable[ResultRecord | Mapping[str, Any]]) -> None:
        """Record many results in one transaction, all or none, such as the scores of one
        evaluation run over a catalog.

        Each result is a :class:`ResultRecord` or a mapping with the keys ``set``,
        ``version``, ``material_id``, ``metrics`` and optionally ``scope``; it names its
        set version exactly. Nothing is recorded when one result is invalid, and the
        error names it.
        """
        rows = []
        for result in results:
            if isinstance(result, ResultRecord):
                result = dataclasses.asdict(result)
            rows.append(
                (
                    result["set"],
                    result.get("scope"),
                    result["version"],
                    result["material_id"],
                    dict(result["metrics"]),
                )
            )
        self._native.record_batch(rows)

    def resolve(self, material_id: str, catalog: Catalog, *, set: str | None = None) -> Resolution:
        """Resolve a set (the default set unless ``set`` is given) for a catalog material.

        The set's version for the material's type comes first, then the version for its
        collection, then the unscoped set.
        """
        return Resolution._from_json(
            json.loads(self._native.resolve(material_id, catalog._native, set=set))
        )

    def resolve_scopes(self, scopes: Sequence[str], *, set: str | None = None) -> Resolution:
        """Resolve a set for the first of ``scopes`` that has a version of it, else for
        the unscoped set.
        """
        if isinstance(scopes, str):
            scopes = [scopes]
        return Resolution._from_json(json.loads(self._native.resolve_scopes(list(scopes), set=set)))

    def suggest(
        self,
        target: str | np.ndarray | Sequence[float],
        catalog: Catalog,
        *,
        metric: str = "score",
        lower_is_better: bool = False,
    ) -> Suggestion:
        """Suggest the set version that performed best on materials similar to ``target``.

        ``target`` is a catalog material id, or an embedding from the catalog's image or
        text model (distinguished by dimension). Materials count as similar at a cosine
        similarity of at least :attr:`similarity_threshold`. Without results on similar
        materials, the default set is resolved and ``fallback`` is true.
        """
        if isinstance(target, np.ndarray) and target.dtype != np.float32:
            target = target.astype(np.float32)
        return Suggestion._from_json(
            json.loads(
                self._native.suggest(
                    target, catalog._native, metric=metric, lower_is_better=lower_is_better
                )
            )
        )

    def purge(self) -> PurgeReport:
        """Delete superseded versions older than the retention period, except versions
        that recorded results refer to. Every write also purges.
        """
        return PurgeReport._from_json(json.loads(self._native.purge()))

    def schema(self) -> dict[str, ParamSpec]:
        """Return every parameter's definition, by name."""
        data = json.loads(self._native.schema())
        return {name: ParamSpec._from_json(spec) for name, spec in data["parameters"].items()}

    def apply_schema(
        self, schema: str | os.PathLike[str] | Mapping[str, Any]
    ) -> SchemaReport:
        """Add or replace parameter definitions; parameters not mentioned keep theirs.

        ``schema`` is a file (TOML for ``.toml``, else JSON) or a mapping, each with a
        ``parameters`` table whose entries are tables such as ``{"type": "int",
        "default": 5, "min": 1}`` or :class:`ParamSpec` objects. Nothing changes when a
        definition is invalid or rejects a value that a set's current version contains.
        """
        if isinstance(schema, Mapping):
            report = self._native.apply_schema_json(_schema_json(schema))
        else:
            report = self._native.apply_schema_file(os.fspath(schema))
        return SchemaReport._from_json(json.loads(report))
