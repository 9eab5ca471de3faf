//! The storage interface of the registry, so SQLite and PostgreSQL serve one
//! [`super::Registry`].

use super::schema::Schema;
use super::set::{
    NewResult, NewVersion, ParameterSet, RegistryDump, ResultRecord, SetSummary, VersionRef,
};
use crate::db::Millis;
use crate::error::Result;

/// Builds the next version of a set from its current version (`None` when the set is new)
/// and the current unscoped version of the same name (the base of a new scoped set).
pub type BuildVersion<'a> =
    &'a mut dyn FnMut(Option<&ParameterSet>, Option<&ParameterSet>) -> Result<NewVersion>;

/// The storage backend of the registry. Scopes are stored as `''` for "every material".
pub trait RegistryStorage: Send + Sync {
    /// Returns the schema.
    fn schema(&self) -> Result<Schema>;

    /// Inserts or replaces the definitions in `schema` in one transaction, after `check`
    /// accepted the current version of every set under the merged schema.
    fn apply_schema(
        &self,
        schema: &Schema,
        now: Millis,
        check: &dyn Fn(&Schema, &[ParameterSet]) -> Result<()>,
    ) -> Result<()>;

    /// Lists every set's current version, by name and scope.
    fn list(&self) -> Result<Vec<SetSummary>>;

    /// Returns version `version` of a set, or its current version for `None`.
    fn get(&self, name: &str, scope: &str, version: Option<u32>) -> Result<Option<ParameterSet>>;

    /// Returns every kept version of a set, oldest first.
    fn history(&self, name: &str, scope: &str) -> Result<Vec<ParameterSet>>;

    /// Writes the next version of a set in one transaction: reads the current version,
    /// fails with [`crate::Error::Conflict`] when `expect` is given and differs from it (0
    /// expects no set), builds the new version with `build`, and inserts it. Concurrent
    /// writers to the same set are serialised, so none is lost.
    fn write(
        &self,
        name: &str,
        scope: &str,
        expect: Option<u32>,
        build: BuildVersion<'_>,
    ) -> Result<ParameterSet>;

    /// Records `results` in one transaction, all or none.
    ///
    /// Fails with [`crate::Error::NotFound`] naming the first set version that does not
    /// exist.
    fn record(&self, results: &[NewResult], now: Millis) -> Result<()>;

    /// Returns every result recorded on the given materials.
    fn results_for(&self, material_ids: &[String]) -> Result<Vec<ResultRecord>>;

    /// Returns every material id that has a recorded result.
    fn materials_with_results(&self) -> Result<Vec<String>>;

    /// Deletes, in one transaction, the versions written before `before` that are neither
    /// current nor referenced by a result; returns what was deleted.
    fn purge(&self, before: Millis) -> Result<Vec<VersionRef>>;

    /// Returns everything stored, for copying to another backend.
    fn dump(&self) -> Result<RegistryDump>;

    /// Replaces the shipped contents of an empty registry with `dump`, in one transaction.
    /// Fails with [`crate::Error::Conflict`] when the registry has results or sets that
    /// were changed after their shipped first version.
    fn load(&self, dump: &RegistryDump) -> Result<()>;
}
