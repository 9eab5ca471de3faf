//! Index configuration: exact or HNSW, the HNSW parameters and the compaction rule.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest `m` accepted. Lists of more links only slow the search down, and the index
/// file bounds every list by it.
pub const MAX_M: usize = 256;

/// The largest `ef_construction` and `ef_search` accepted.
pub const MAX_EF: usize = 100_000;

/// The structure behind a [`VectorIndex`](super::VectorIndex) and when it compacts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexConfig {
    /// Exact scan or HNSW graph.
    pub kind: IndexKind,
    /// The fraction of removed vectors at which the index compacts itself (see
    /// [`VectorIndex::compact`](super::VectorIndex::compact)), from 0 (exclusive) to 1.
    /// Removed vectors keep their memory until then, and under HNSW they still route
    /// searches through the graph.
    pub max_deleted_fraction: f32,
}

/// The search structure of an index.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum IndexKind {
    /// Every search compares the query with every vector. Results are exact; time grows
    /// linearly with the number of vectors.
    Exact,
    /// A hierarchical navigable small world graph (Malkov and Yashunin, 2016): approximate
    /// results in time that grows about logarithmically.
    Hnsw(HnswConfig),
}

/// The parameters of an HNSW graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HnswConfig {
    /// Links per node on the upper layers; layer 0 keeps up to `2 * m`. More links raise
    /// recall and memory use.
    pub m: usize,
    /// Candidates kept while linking a new vector. Higher builds a better graph, slower.
    pub ef_construction: usize,
    /// Candidates kept while searching (at least `k`). Higher raises recall, slower.
    pub ef_search: usize,
    /// Seed of the generator that draws node levels, so builds are reproducible.
    pub seed: u64,
}

impl Default for HnswConfig {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 200,
            ef_search: 64,
            seed: 0x5eed_cafe,
        }
    }
}

impl Default for IndexKind {
    fn default() -> Self {
        IndexKind::Hnsw(HnswConfig::default())
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            kind: IndexKind::default(),
            max_deleted_fraction: 0.25,
        }
    }
}

impl IndexConfig {
    /// Returns the configuration of an exact index.
    pub fn exact() -> Self {
        Self {
            kind: IndexKind::Exact,
            ..Self::default()
        }
    }

    /// Returns the configuration of an HNSW index with `hnsw`'s parameters.
    pub fn hnsw(hnsw: HnswConfig) -> Self {
        Self {
            kind: IndexKind::Hnsw(hnsw),
            ..Self::default()
        }
    }

    /// Returns the HNSW parameters, or `None` for an exact index.
    pub fn hnsw_config(&self) -> Option<&HnswConfig> {
        match &self.kind {
            IndexKind::Exact => None,
            IndexKind::Hnsw(hnsw) => Some(hnsw),
        }
    }

    /// Checks every parameter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the first parameter out of range.
    pub fn validate(&self) -> Result<()> {
        let fraction = self.max_deleted_fraction;
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::invalid(
                "max_deleted_fraction",
                format!("{fraction} is outside (0, 1]"),
            ));
        }
        match &self.kind {
            IndexKind::Exact => Ok(()),
            IndexKind::Hnsw(hnsw) => hnsw.validate(),
        }
    }
}

impl HnswConfig {
    /// Checks every parameter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the first parameter out of range.
    pub fn validate(&self) -> Result<()> {
        if !(2..=MAX_M).contains(&self.m) {
            return Err(Error::invalid(
                "m",
                format!("{} is outside 2..={MAX_M}; 16 suits most data", self.m),
            ));
        }
        if !(self.m..=MAX_EF).contains(&self.ef_construction) {
            return Err(Error::invalid(
                "ef_construction",
                format!(
                    "{} is outside m..={MAX_EF} (m is {}); 200 suits most data",
                    self.ef_construction, self.m
                ),
            ));
        }
        validate_ef_search(self.ef_search)
    }
}

/// Checks an `ef_search` value.
pub(crate) fn validate_ef_search(ef_search: usize) -> Result<()> {
    if (1..=MAX_EF).contains(&ef_search) {
        Ok(())
    } else {
        Err(Error::invalid(
            "ef_search",
            format!("{ef_search} is outside 1..={MAX_EF}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        IndexConfig::default().validate().unwrap();
        IndexConfig::exact().validate().unwrap();
        assert_eq!(IndexConfig::default().hnsw_config().unwrap().m, 16);
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let cases = [
            (
                HnswConfig {
                    m: 1,
                    ..HnswConfig::default()
                },
                "m",
            ),
            (
                HnswConfig {
                    m: 100_000,
                    ..HnswConfig::default()
                },
                "m",
            ),
            (
                HnswConfig {
                    ef_construction: 4,
                    ..HnswConfig::default()
                },
                "ef_construction",
            ),
            (
                HnswConfig {
                    ef_search: 0,
                    ..HnswConfig::default()
                },
                "ef_search",
            ),
        ];
        for (hnsw, name) in cases {
            let err = IndexConfig::hnsw(hnsw).validate().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput { name: got, .. } if got == name),
                "{hnsw:?}: {err}"
            );
        }
        let config = IndexConfig {
            max_deleted_fraction: 0.0,
            ..IndexConfig::exact()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max_deleted_fraction"), "{err}");
    }

    #[test]
    fn serde_names_are_stable() {
        let json = serde_json::to_string(&IndexConfig::default()).unwrap();
        assert!(json.contains(r#""type":"hnsw""#), "{json}");
        let parsed: IndexConfig =
            serde_json::from_str(r#"{"kind":{"type":"hnsw","m":8}}"#).unwrap();
        let hnsw = parsed.hnsw_config().unwrap();
        assert_eq!(hnsw.m, 8);
        assert_eq!(hnsw.ef_construction, 200);
        let exact: IndexConfig = serde_json::from_str(r#"{"kind":{"type":"exact"}}"#).unwrap();
        assert_eq!(exact.kind, IndexKind::Exact);
    }
}
