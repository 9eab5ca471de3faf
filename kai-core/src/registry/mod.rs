//! The parameter registry: typed schemas of the parameters kai analyses materials with,
//! immutable versions of named parameter sets, their history, results recorded per
//! material, and suggestions drawn from similar materials.
//!
//! A set has a name (`standard`, `premium`, `enterprise`, …) and an optional scope (a
//! material type such as `wood`, or a collection id). Every change writes a new version
//! that contains every parameter's value. Older versions stay readable until the retention
//! period (`PARAM_HISTORY_RETENTION_DAYS`) ends, except the current version and versions
//! that recorded results refer to, which are never purged.
//!
//! The registry lives in the store folder's SQLite file by default, or in PostgreSQL
//! ([`crate::db::StorageConfig`]). A new registry starts with the shipped schema
//! (recognition and image-quality parameters) and the three sets above.
//!
//! ```no_run
//! use kai_core::registry::{Registry, WriteOptions};
//!
//! let registry = Registry::from_env(std::path::Path::new("kai-data"))?;
//! let values = registry.parse_assignments(&["recognition.top_k=8"])?;
//! let written = registry.set("premium", None, &values, &WriteOptions::by("ana"))?;
//! println!("premium is now at version {}", written.version);
//! # Ok::<(), kai_core::Error>(())
//! ```

mod postgres;
mod results;
mod schema;
mod set;
mod settings;
mod sqlite;
mod storage;
mod suggest;
mod typed;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use postgres::PgRegistry;
pub use results::ResultInput;
pub use schema::{
    MAX_NAME_LEN, MAX_PARAMETERS, MAX_SCHEMA_FILE_BYTES, MAX_STRING_LEN, ParamSpec, ParamType,
    ParamValue, Schema, check_name,
};
pub use set::{
    NewResult, NewVersion, ParameterSet, RegistryDump, ResultRecord, SetSummary, ValueChange,
    Values, VersionRef, diff,
};
pub use settings::RegistrySettings;
pub use sqlite::SqliteRegistry;
pub use storage::{BuildVersion, RegistryStorage};
pub use suggest::{Evidence, SuggestOptions, SuggestTarget, Suggestion};
pub use typed::{pipeline_options, quality_thresholds, recognize_options, sfm_options};

use serde::Serialize;

use crate::catalog::Catalog;
use crate::db::{Backend, Millis, PgPool, StorageConfig, now_millis};
use crate::error::{Error, Result};

/// Maximum length of an author or note, in bytes.
pub const MAX_TEXT_BYTES: usize = 2000;
/// Maximum number of metrics in one result.
pub const MAX_METRICS: usize = 100;
/// Maximum number of results in one [`Registry::record_batch`] call.
pub const MAX_BATCH_RESULTS: usize = 100_000;
/// Maximum length of a material id, in bytes.
pub const MAX_MATERIAL_ID_BYTES: usize = 256;

/// A source of the current time in milliseconds since the Unix epoch. Tests inject one
/// to write versions "in the past".
pub type Clock = Arc<dyn Fn() -> Millis + Send + Sync>;

/// Computes a new version's values from the current version and the unscoped base.
type ValuesFrom<'a> =
    &'a mut dyn FnMut(Option<&ParameterSet>, Option<&ParameterSet>) -> Result<Values>;

/// The author, note and expected version of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// The version the writer read; the write fails with [`Error::Conflict`] when the set
    /// has moved on. `Some(0)` expects the set not to exist yet. `None` reads and writes
    /// in one transaction.
    pub expect_version: Option<u32>,
    /// Who writes.
    pub author: String,
    /// Why.
    pub note: String,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self::by("unknown")
    }
}

impl WriteOptions {
    /// Returns options for `author` with no note and no expected version.
    pub fn by(author: impl Into<String>) -> Self {
        Self {
            expect_version: None,
            author: author.into(),
            note: String::new(),
        }
    }

    /// Sets the expected current version.
    #[must_use]
    pub fn expecting(mut self, version: u32) -> Self {
        self.expect_version = Some(version);
        self
    }

    /// Sets the note.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    fn validate(&self) -> Result<()> {
        for (name, text) in [("author", &self.author), ("note", &self.note)] {
            // One line each, so a note cannot forge lines of `kai params history`.
            if let Some(c) = text.chars().find(|c| c.is_control()) {
                return Err(Error::invalid(
                    name,
                    format!("contains the control character {c:?}; write it on one line"),
                ));
            }
            if text.len() > MAX_TEXT_BYTES {
                return Err(Error::invalid(
                    name,
                    format!("has {} bytes, more than {MAX_TEXT_BYTES}", text.len()),
                ));
            }
        }
        Ok(())
    }
}

/// The set version that applies to a material or scope, and how it was found.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    /// The material resolved for, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub material_id: Option<String>,
    /// The set name.
    pub name: String,
    /// The scope of the set version used, `None` for the unscoped set.
    pub scope: Option<String>,
    /// The version used.
    pub version: u32,
    /// Every parameter's value.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = std::collections::BTreeMap<String, ParamValue>)
    )]
    pub values: Values,
    /// The scopes tried, in order, before the unscoped set.
    pub tried: Vec<String>,
    /// Whether no scoped set matched and the unscoped set was used.
    pub fallback: bool,
}

/// The outcome of a purge.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeReport {
    /// Versions written before this time were considered, RFC 3339 in UTC.
    pub cutoff: String,
    /// The versions deleted.
    pub purged: Vec<VersionRef>,
}

/// The outcome of applying a schema.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaReport {
    /// Parameters that were new.
    pub added: Vec<String>,
    /// Parameters whose definition changed.
    pub changed: Vec<String>,
    /// Parameters given with the same definition.
    pub unchanged: Vec<String>,
}

/// The parameter registry over one storage backend.
pub struct Registry {
    storage: Box<dyn RegistryStorage>,
    settings: RegistrySettings,
    clock: Clock,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the registry configured by the environment (`KAI_DATABASE_URL`,
    /// `PARAM_STORAGE_TYPE`, `PARAM_DB_CONNECTION` and the settings' variables) for the
    /// store folder `root`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming a malformed variable and
    /// [`Error::Storage`] when the database cannot be opened.
    pub fn from_env(root: &Path) -> Result<Self> {
        Self::open(
            root,
            &StorageConfig::from_env()?,
            RegistrySettings::from_env()?,
        )
    }

    /// Opens the registry of the store folder `root` on the backend `config` names.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database cannot be opened or migrated.
    pub fn open(root: &Path, config: &StorageConfig, settings: RegistrySettings) -> Result<Self> {
        let storage: Box<dyn RegistryStorage> = match config.registry_backend(root) {
            Backend::Sqlite(path) => {
                std::fs::create_dir_all(root)
                    .map_err(|err| Error::io("cannot create", root, err))?;
                Box::new(SqliteRegistry::open(&path)?)
            }
            Backend::Postgres(url) => Box::new(PgRegistry::new(PgPool::open(&url)?)),
        };
        Ok(Self::with_storage(storage, settings))
    }

    /// Uses `storage` with `settings`.
    pub fn with_storage(storage: Box<dyn RegistryStorage>, settings: RegistrySettings) -> Self {
        Self {
            storage,
            settings,
            clock: Arc::new(now_millis),
        }
    }

    /// Replaces the clock that stamps versions and results and that purges measure from.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Returns the settings.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    /// Returns the storage backend.
    pub fn storage(&self) -> &dyn RegistryStorage {
        self.storage.as_ref()
    }

    /// Returns the schema.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database fails.
    pub fn schema(&self) -> Result<Schema> {
        self.storage.schema()
    }

    /// Adds or replaces the definitions in `schema`. Parameters the schema does not
    /// mention keep their definitions.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when a definition is inconsistent, or when the
    /// current version of a set contains a value that the new definition rejects (naming
    /// the set, the parameter and the value). Nothing is changed then.
    pub fn apply_schema(&self, schema: &Schema) -> Result<SchemaReport> {
        schema.validate()?;
        let before = self.storage.schema()?;
        let check = |merged: &Schema, current: &[ParameterSet]| -> Result<()> {
            if merged.parameters.len() > MAX_PARAMETERS {
                return Err(Error::invalid(
                    "schema",
                    format!("would define more than {MAX_PARAMETERS} parameters"),
                ));
            }
            for set in current {
                for (name, value) in &set.values {
                    if let Some(spec) = schema.parameters.get(name) {
                        spec.check(name, value).map_err(|err| {
                            Error::invalid(
                                format!("schema of {name}"),
                                format!(
                                    "version {} of set `{}`{} holds a value the new definition \
                                     rejects ({err}); change the set first",
                                    set.version,
                                    set.name,
                                    scope_label(set.scope.as_deref())
                                ),
                            )
                        })?;
                    }
                }
            }
            Ok(())
        };
        self.storage.apply_schema(schema, (self.clock)(), &check)?;
        let mut report = SchemaReport {
            added: Vec::new(),
            changed: Vec::new(),
            unchanged: Vec::new(),
        };
        for (name, spec) in &schema.parameters {
            match before.parameters.get(name) {
                None => report.added.push(name.clone()),
                Some(old) if old != spec => report.changed.push(name.clone()),
                Some(_) => report.unchanged.push(name.clone()),
            }
        }
        Ok(report)
    }

    /// Parses `KEY=VALUE` assignments with the schema's types.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for an assignment without `=`, an unknown
    /// parameter, or a value that breaks its parameter's rule.
    pub fn parse_assignments(&self, assignments: &[&str]) -> Result<Values> {
        let schema = self.storage.schema()?;
        let mut values = Values::new();
        for assignment in assignments {
            let Some((key, raw)) = assignment.split_once('=') else {
                return Err(Error::invalid(
                    "assignment",
                    format!("`{assignment}` is not KEY=VALUE"),
                ));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(Error::invalid(
                    "assignment",
                    format!("`{assignment}` has no parameter name before `=`"),
                ));
            }
            let value = schema.spec(key)?.parse(key, raw)?;
            if values.insert(key.to_owned(), value).is_some() {
                return Err(Error::invalid(
                    format!("parameter {key}"),
                    "is given twice; give each parameter once",
                ));
            }
        }
        Ok(values)
    }

    /// Lists every set's current version.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database fails.
    pub fn list(&self) -> Result<Vec<SetSummary>> {
        self.storage.list()
    }

    /// Returns version `version` of a set (its current version for `None`) as it was
    /// written. Parameters added to the schema later are absent from it, unless their
    /// migration filled in the shipped tiers (as `0003_recon` does); [`Registry::resolve`]
    /// fills the rest with their defaults.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] naming the set and version.
    pub fn get(
        &self,
        name: &str,
        scope: Option<&str>,
        version: Option<u32>,
    ) -> Result<ParameterSet> {
        let scope = normalize_scope(scope)?;
        check_name("set name", name)?;
        self.storage
            .get(name, &scope, version)?
            .ok_or_else(|| self.not_found(name, &scope, version))
    }

    /// Returns every kept version of a set, oldest first.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] when the set has no version.
    pub fn history(&self, name: &str, scope: Option<&str>) -> Result<Vec<ParameterSet>> {
        let scope = normalize_scope(scope)?;
        check_name("set name", name)?;
        let history = self.storage.history(name, &scope)?;
        if history.is_empty() {
            return Err(self.not_found(name, &scope, None));
        }
        Ok(history)
    }

    /// Writes a new version of a set with `changes` applied to its current values. A new
    /// scoped set starts from the unscoped set of the same name, a new set from the
    /// schema's defaults.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for an unknown parameter or a value that breaks
    /// its rule, and [`Error::Conflict`] when `options.expect_version` is not the
    /// current version.
    pub fn set(
        &self,
        name: &str,
        scope: Option<&str>,
        changes: &Values,
        options: &WriteOptions,
    ) -> Result<ParameterSet> {
        if changes.is_empty() {
            return Err(Error::invalid(
                "changes",
                "give at least one parameter value (KEY=VALUE)",
            ));
        }
        let schema = self.storage.schema()?;
        let changes = schema.check_values(changes)?;
        self.write(name, scope, options, &mut |current, base| {
            let mut values = current
                .or(base)
                .map_or_else(|| schema.defaults(), |set| set.values.clone());
            values.extend(changes.clone());
            Ok(values)
        })
    }

    /// Writes a new version equal to version `to` of a set.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] when version `to` does not exist (or was purged), and
    /// [`Error::Conflict`] as [`Registry::set`].
    pub fn rollback(
        &self,
        name: &str,
        scope: Option<&str>,
        to: u32,
        options: &WriteOptions,
    ) -> Result<ParameterSet> {
        let target = self.get(name, scope, Some(to))?;
        let mut options = options.clone();
        if options.note.is_empty() {
            options.note = format!("rollback to version {to}");
        }
        let schema = self.storage.schema()?;
        let values = schema.check_values(&target.values)?;
        self.write(name, scope, &options, &mut |_, _| Ok(values.clone()))
    }

    fn write(
        &self,
        name: &str,
        scope: Option<&str>,
        options: &WriteOptions,
        values: ValuesFrom<'_>,
    ) -> Result<ParameterSet> {
        check_name("set name", name)?;
        let scope = normalize_scope(scope)?;
        options.validate()?;
        let now = (self.clock)();
        let written = self.storage.write(
            name,
            &scope,
            options.expect_version,
            &mut |current, base| {
                Ok(NewVersion {
                    values: values(current, base)?,
                    author: options.author.clone(),
                    note: options.note.clone(),
                    created_millis: now,
                })
            },
        )?;
        // Retention is enforced on every write, so no separate job is needed. A failure
        // here does not undo the write, which has already committed.
        if let Err(err) = self.purge() {
            tracing::warn!(error = %err, "purging the parameter history failed");
        }
        Ok(written)
    }

    /// Returns the parameters whose values differ between versions `a` and `b` of a set.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] when either version does not exist.
    pub fn diff(
        &self,
        name: &str,
        scope: Option<&str>,
        a: u32,
        b: u32,
    ) -> Result<Vec<ValueChange>> {
        let first = self.get(name, scope, Some(a))?;
        let second = self.get(name, scope, Some(b))?;
        Ok(diff(&first.values, &second.values))
    }

    /// Records how version `version` (the current one for `None`) of a set performed on
    /// `material_id`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for no metrics, a bad metric name or a value that
    /// is not finite, and [`Error::NotFound`] for an unknown set version.
    pub fn record(
        &self,
        name: &str,
        scope: Option<&str>,
        version: Option<u32>,
        material_id: &str,
        metrics: &BTreeMap<String, f64>,
    ) -> Result<ResultRecord> {
        let set = self.get(name, scope, version)?;
        let result = NewResult {
            set: VersionRef {
                name: set.name,
                scope: set.scope,
                version: set.version,
            },
            material_id: material_id.to_owned(),
            metrics: metrics.clone(),
        };
        let now = (self.clock)();
        self.record_many(std::slice::from_ref(&result), now)?;
        Ok(ResultRecord {
            set: result.set.name,
            scope: result.set.scope,
            version: result.set.version,
            material_id: result.material_id,
            metrics: result.metrics,
            recorded_at: crate::db::rfc3339(now),
        })
    }

    /// Records many results in one transaction, all or none, for evaluation runs that
    /// score a set on a whole catalog. Each names its set version exactly.
    ///
    /// # Errors
    ///
    /// As [`Registry::record`], naming the first bad result; nothing is recorded then.
    pub fn record_batch(&self, results: &[NewResult]) -> Result<()> {
        self.record_many(results, (self.clock)())
    }

    fn record_many(&self, results: &[NewResult], now: Millis) -> Result<()> {
        if results.len() > MAX_BATCH_RESULTS {
            return Err(Error::invalid(
                "results",
                format!(
                    "a batch of {} results is more than {MAX_BATCH_RESULTS}",
                    results.len()
                ),
            ));
        }
        for result in results {
            check_material_id(&result.material_id)?;
            check_metrics(&result.metrics)?;
        }
        self.storage.record(results, now)
    }

    /// Resolves the set named `set` (the default set for `None`) for the first of
    /// `scopes` that has a version of it, else its unscoped version.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] when the set has no unscoped version either.
    pub fn resolve(&self, set: Option<&str>, scopes: &[&str]) -> Result<Resolution> {
        let name = set.unwrap_or(&self.settings.default_set);
        check_name("set name", name)?;
        let mut tried = Vec::new();
        for scope in scopes.iter().filter(|s| !s.trim().is_empty()) {
            let scope = normalize_scope(Some(scope))?;
            if tried.contains(&scope) {
                continue;
            }
            tried.push(scope.clone());
            if let Some(found) = self.storage.get(name, &scope, None)? {
                return self.resolution(found, tried, false);
            }
        }
        let found = self.storage.get(name, "", None)?.ok_or_else(|| {
            let mut err = self.not_found(name, "", None);
            if set.is_none()
                && let Error::NotFound { hint, .. } = &mut err
            {
                hint.push_str(" (named by DEFAULT_PARAMETER_SET)");
            }
            err
        })?;
        let fallback = !tried.is_empty();
        self.resolution(found, tried, fallback)
    }

    /// Resolves the set named `set` (the default set for `None`) for a catalog material:
    /// its material type first, then its collection, then the unscoped set.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] for an unknown material or set.
    pub fn resolve_for_material(
        &self,
        catalog: &Catalog,
        material_id: &str,
        set: Option<&str>,
    ) -> Result<Resolution> {
        let material = catalog.get(material_id)?.ok_or_else(|| Error::NotFound {
            what: "material",
            name: material_id.to_owned(),
            hint: String::new(),
        })?;
        let mut scopes = vec![material.material_type.as_str()];
        if let Some(collection) = &material.collection_id {
            scopes.push(collection);
        }
        let mut resolution = self.resolve(set, &scopes)?;
        resolution.material_id = Some(material.id);
        Ok(resolution)
    }

    fn resolution(
        &self,
        set: ParameterSet,
        tried: Vec<String>,
        fallback: bool,
    ) -> Result<Resolution> {
        let mut values = set.values;
        self.fill_defaults(&mut values)?;
        Ok(Resolution {
            material_id: None,
            name: set.name,
            scope: set.scope,
            version: set.version,
            values,
            tried,
            fallback,
        })
    }

    /// Deletes superseded versions older than the retention period, except versions
    /// that recorded results refer to.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the database fails.
    pub fn purge(&self) -> Result<PurgeReport> {
        let cutoff = (self.clock)() - Millis::from(self.settings.retention_days) * 86_400_000;
        let purged = self.storage.purge(cutoff)?;
        Ok(PurgeReport {
            cutoff: crate::db::rfc3339(cutoff),
            purged,
        })
    }

    /// Copies everything this registry contains into `target`, which must contain nothing
    /// but the shipped schema and sets, or exactly this registry from an earlier copy.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Conflict`] when `target` already contains changes or results.
    pub fn copy_to(&self, target: &Registry) -> Result<RegistryDump> {
        let dump = sorted(self.storage.dump()?);
        // A target that already contains exactly this registry is a finished earlier copy.
        // The backends list rows in their own collation, hence the sort.
        if sorted(target.storage.dump()?) != dump {
            target.storage.load(&dump)?;
        }
        Ok(dump)
    }

    fn fill_defaults(&self, values: &mut Values) -> Result<()> {
        for (name, spec) in self.storage.schema()?.parameters {
            values.entry(name).or_insert(spec.default);
        }
        Ok(())
    }

    fn not_found(&self, name: &str, scope: &str, version: Option<u32>) -> Error {
        let what = match version {
            Some(v) => format!("{name} version {v}"),
            None => name.to_owned(),
        };
        Error::NotFound {
            what: "parameter set",
            name: format!("{what}{}", scope_label(Some(scope))),
            hint: "; `kai params list` shows the sets".to_owned(),
        }
    }
}

/// Puts a dump's versions and results in one order, whatever the backend's collation.
fn sorted(mut dump: RegistryDump) -> RegistryDump {
    dump.versions
        .sort_by(|a, b| (&a.name, &a.scope, a.version).cmp(&(&b.name, &b.scope, b.version)));
    dump.results.sort_by(|a, b| {
        (a.1, &a.0.material_id, &a.0.set, &a.0.scope, a.0.version).cmp(&(
            b.1,
            &b.0.material_id,
            &b.0.set,
            &b.0.scope,
            b.0.version,
        ))
    });
    dump
}

/// Lower-cases and checks a scope; `None` means every material (stored as `""`).
fn normalize_scope(scope: Option<&str>) -> Result<String> {
    let Some(scope) = scope else {
        return Ok(String::new());
    };
    let scope = scope.trim().to_lowercase();
    if scope.is_empty() {
        return Err(Error::invalid(
            "scope",
            "is empty; leave the scope out for the set that applies to every material",
        ));
    }
    check_name("scope", &scope)?;
    Ok(scope)
}

fn scope_label(scope: Option<&str>) -> String {
    match scope {
        Some(s) if !s.is_empty() => format!(" (scope {s})"),
        _ => String::new(),
    }
}

fn check_metrics(metrics: &BTreeMap<String, f64>) -> Result<()> {
    if metrics.is_empty() || metrics.len() > MAX_METRICS {
        return Err(Error::invalid(
            "metrics",
            format!(
                "give 1 to {MAX_METRICS} metrics (NAME=NUMBER), got {}",
                metrics.len()
            ),
        ));
    }
    for (metric, value) in metrics {
        check_name("metric name", metric)?;
        if !value.is_finite() {
            return Err(Error::invalid(
                format!("metric {metric}"),
                format!("{value} is not a finite number"),
            ));
        }
    }
    Ok(())
}

fn check_material_id(id: &str) -> Result<()> {
    if id.trim().is_empty() || id.len() > MAX_MATERIAL_ID_BYTES {
        return Err(Error::invalid(
            "material id",
            format!(
                "must be 1 to {MAX_MATERIAL_ID_BYTES} bytes, got {}",
                id.len()
            ),
        ));
    }
    Ok(())
}

/// Fails with [`Error::Conflict`] when the writer expected another version than the
/// current one.
pub(crate) fn check_expected(
    name: &str,
    scope: &str,
    expect: Option<u32>,
    current: u32,
) -> Result<()> {
    match expect {
        Some(expected) if expected != current => Err(Error::Conflict(format!(
            "parameter set `{name}`{} is at version {current}, not {expected}; read it again \
             and retry",
            scope_label(Some(scope))
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn version_not_found(set: &VersionRef) -> Error {
    Error::NotFound {
        what: "parameter set",
        name: format!(
            "{} version {}{}",
            set.name,
            set.version,
            scope_label(set.scope.as_deref())
        ),
        hint: String::new(),
    }
}

/// Rejects a copy into a registry that already contains changes or results.
pub(crate) fn check_loadable(changed_versions: i64, results: i64) -> Result<()> {
    if changed_versions > 0 || results > 0 {
        return Err(Error::Conflict(format!(
            "the target registry already contains {changed_versions} changed set versions and \
             {results} results; copy into a new database"
        )));
    }
    Ok(())
}
