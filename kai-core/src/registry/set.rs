//! Parameter sets: immutable versions, summaries, differences and recorded results.

use std::collections::BTreeMap;

use serde::Serialize;

use super::schema::ParamValue;
use crate::db::Millis;

/// The values a set version gives, by parameter name.
pub type Values = BTreeMap<String, ParamValue>;

/// One immutable version of a parameter set.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSet {
    /// The set name, such as `standard`.
    pub name: String,
    /// The material type or domain the set applies to; `None` for every material.
    pub scope: Option<String>,
    /// The version, counting from 1 per name and scope.
    pub version: u32,
    /// Every parameter's value.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = std::collections::BTreeMap<String, ParamValue>)
    )]
    pub values: Values,
    /// The author of the version.
    pub author: String,
    /// The reason for the version.
    pub note: String,
    /// When the version was written, RFC 3339 in UTC.
    pub created_at: String,
    /// When the version was written, in milliseconds since the Unix epoch.
    #[serde(skip)]
    pub created_millis: Millis,
}

/// The current state of one set, for listings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetSummary {
    /// The set name.
    pub name: String,
    /// The scope, `None` for every material.
    pub scope: Option<String>,
    /// The current version.
    pub version: u32,
    /// How many versions are kept (purged ones not counted).
    pub versions: u32,
    /// When the current version was written, RFC 3339 in UTC.
    pub updated_at: String,
}

/// A new version to write, built from the current one.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    /// Every parameter's value.
    pub values: Values,
    /// The author.
    pub author: String,
    /// The reason.
    pub note: String,
    /// When, in milliseconds since the Unix epoch.
    pub created_millis: Millis,
}

impl ParameterSet {
    /// Returns the version's contents for writing it again, as a copy between backends
    /// does.
    pub(crate) fn to_new_version(&self) -> NewVersion {
        NewVersion {
            values: self.values.clone(),
            author: self.author.clone(),
            note: self.note.clone(),
            created_millis: self.created_millis,
        }
    }
}

/// The stored keys of set versions written by a copy, by name, stored scope and version.
pub(crate) type CopiedKeys = BTreeMap<(String, String, u32), i64>;

/// Returns the stored key of the set version that `result` refers to in a copy.
pub(crate) fn copied_key(keys: &CopiedKeys, result: &ResultRecord) -> crate::Result<i64> {
    let scope = result.scope.as_deref().unwrap_or("").to_owned();
    keys.get(&(result.set.clone(), scope, result.version))
        .copied()
        .ok_or_else(|| {
            crate::Error::Storage(format!(
                "a result references version {} of `{}`, which the copy lacks",
                result.version, result.set
            ))
        })
}

impl NewVersion {
    /// Returns the stored version `version` of the set `name` in `scope` (`""` for none).
    pub fn into_set(self, name: &str, scope: &str, version: u32) -> ParameterSet {
        ParameterSet {
            name: name.to_owned(),
            scope: scope_of(scope.to_owned()),
            version,
            values: self.values,
            author: self.author,
            note: self.note,
            created_at: crate::db::rfc3339(self.created_millis),
            created_millis: self.created_millis,
        }
    }
}

/// One parameter whose value differs between two versions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueChange {
    /// The parameter.
    pub parameter: String,
    /// Its value in the first version, `None` when absent there.
    pub from: Option<ParamValue>,
    /// Its value in the second version, `None` when absent there.
    pub to: Option<ParamValue>,
}

/// Returns the parameters whose values differ from `a` to `b`, by name.
pub fn diff(a: &Values, b: &Values) -> Vec<ValueChange> {
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| a.get(*name) != b.get(*name))
        .map(|name| ValueChange {
            parameter: name.clone(),
            from: a.get(name).cloned(),
            to: b.get(name).cloned(),
        })
        .collect()
}

/// The metrics that a set version achieved on one material.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultRecord {
    /// The set name.
    pub set: String,
    /// The set's scope.
    pub scope: Option<String>,
    /// The set version that produced the result.
    pub version: u32,
    /// The material id.
    pub material_id: String,
    /// Metric values by name, such as `accuracy` or `qualityScore`.
    pub metrics: BTreeMap<String, f64>,
    /// When it was recorded, RFC 3339 in UTC.
    pub recorded_at: String,
}

/// A result to record: the set version, the material and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct NewResult {
    /// The set version that produced the result.
    pub set: VersionRef,
    /// The material id.
    pub material_id: String,
    /// Metric values by name.
    pub metrics: BTreeMap<String, f64>,
}

/// A set version identified by name, scope and version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRef {
    /// The set name.
    pub name: String,
    /// The scope, `None` for every material.
    pub scope: Option<String>,
    /// The version.
    pub version: u32,
}

/// Everything a registry holds, for copying it to another backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryDump {
    /// The schema.
    pub schema: super::schema::Schema,
    /// Every kept version of every set.
    pub versions: Vec<ParameterSet>,
    /// Every recorded result.
    pub results: Vec<(ResultRecord, Millis)>,
}

/// Turns a stored scope (`''` for none) into the public form.
pub(crate) fn scope_of(stored: String) -> Option<String> {
    (!stored.is_empty()).then_some(stored)
}
