//! Result recording as the REST API, the CLI and the Node module receive results: each
//! names a catalog material, and a set version or none, which means the current version.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{MAX_BATCH_RESULTS, NewResult, Registry, ResultRecord, VersionRef};
use crate::error::{Error, Result};

/// One result to record: how a set version performed on a catalog material.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultInput {
    /// The set name.
    pub set: String,
    /// The set's scope.
    pub scope: Option<String>,
    /// The set version used, or `None` for the set's current version.
    pub version: Option<u32>,
    /// The catalog material the set was used on.
    pub material_id: String,
    /// Metric values by name, such as `accuracy`.
    pub metrics: BTreeMap<String, f64>,
}

impl Registry {
    /// Records one result after checking that its material exists: `known_material`
    /// returns whether an id is a catalog material. The registry takes a check instead
    /// of the catalog so that callers keep a shared catalog locked only for the lookup.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] for a material `known_material` does not know, and
    /// otherwise the errors of [`Registry::record`].
    pub fn record_result(
        &self,
        input: &ResultInput,
        known_material: impl FnMut(&str) -> Result<bool>,
    ) -> Result<ResultRecord> {
        check_materials(std::slice::from_ref(input), known_material)?;
        self.record(
            &input.set,
            input.scope.as_deref(),
            input.version,
            &input.material_id,
            &input.metrics,
        )
    }

    /// Records many results in one transaction, all or none, after checking that every
    /// material exists. A result without a version takes its set's current version, read
    /// once per set and scope, so a batch cannot mix two current versions of one set.
    /// Returns the number recorded.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for more than [`MAX_BATCH_RESULTS`] results,
    /// [`Error::NotFound`] for the first unknown material or set version, and otherwise
    /// the errors of [`Registry::record_batch`]. Nothing is recorded on any error.
    pub fn record_results(
        &self,
        inputs: Vec<ResultInput>,
        known_material: impl FnMut(&str) -> Result<bool>,
    ) -> Result<usize> {
        // The size is checked first so that an oversized batch costs no lookups.
        if inputs.len() > MAX_BATCH_RESULTS {
            return Err(Error::invalid(
                "results",
                format!(
                    "a batch of {} results is over the maximum of {MAX_BATCH_RESULTS}; \
                     split it into smaller batches",
                    inputs.len()
                ),
            ));
        }
        check_materials(&inputs, known_material)?;
        let results = self.with_versions(inputs)?;
        self.record_batch(&results)?;
        Ok(results.len())
    }

    /// Names each result's set version exactly, reading a set's current version once.
    fn with_versions(&self, inputs: Vec<ResultInput>) -> Result<Vec<NewResult>> {
        let mut current: HashMap<(String, Option<String>), VersionRef> = HashMap::new();
        let mut results = Vec::with_capacity(inputs.len());
        for input in inputs {
            let key = (input.set, input.scope);
            let set = match (input.version, current.get(&key)) {
                (None, Some(known)) => known.clone(),
                (version, _) => {
                    let found = self.get(&key.0, key.1.as_deref(), version)?;
                    let reference = VersionRef {
                        name: found.name,
                        scope: found.scope,
                        version: found.version,
                    };
                    if version.is_none() {
                        current.insert(key, reference.clone());
                    }
                    reference
                }
            };
            results.push(NewResult {
                set,
                material_id: input.material_id,
                metrics: input.metrics,
            });
        }
        Ok(results)
    }
}

/// Returns [`Error::NotFound`] for the first material id that `known_material` rejects,
/// calling it once per id, so results are recorded only for materials that exist.
fn check_materials(
    inputs: &[ResultInput],
    mut known_material: impl FnMut(&str) -> Result<bool>,
) -> Result<()> {
    let mut checked: HashSet<&str> = HashSet::new();
    for input in inputs {
        let id = input.material_id.as_str();
        if !checked.insert(id) {
            continue;
        }
        if !known_material(id)? {
            return Err(Error::NotFound {
                what: "material",
                name: id.to_owned(),
                hint: " (record results only for catalog materials)".to_owned(),
            });
        }
    }
    Ok(())
}
