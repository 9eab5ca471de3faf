//! Metadata attached to each vector, filters over it, and their interned form.
//!
//! The index stores each distinct string once and keeps small integer codes per vector,
//! so checking a filter against a vector compares integers.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The maximum length of a metadata string, in bytes.
pub const MAX_METADATA_STRING_BYTES: usize = 1024;

/// The maximum number of tags on one vector or in one filter.
pub const MAX_TAGS: usize = 256;

/// Fields of a vector that searches can filter on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// The material type, for example `wood` or `stone`.
    pub material_type: Option<String>,
    /// The collection (catalog, supplier line) the vector belongs to.
    pub collection: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

/// A condition on [`Metadata`]: every field that is set must match, and every listed tag
/// must be present. The default filter matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    /// The material type the vector must have.
    pub material_type: Option<String>,
    /// The collection the vector must belong to.
    pub collection: Option<String>,
    /// Tags the vector must all have.
    pub tags: Vec<String>,
}

impl Filter {
    /// Returns whether `metadata` satisfies the filter.
    pub fn matches(&self, metadata: &Metadata) -> bool {
        let field_matches = |wanted: &Option<String>, actual: &Option<String>| match wanted {
            None => true,
            Some(wanted) => actual.as_ref() == Some(wanted),
        };
        field_matches(&self.material_type, &metadata.material_type)
            && field_matches(&self.collection, &metadata.collection)
            && self.tags.iter().all(|tag| metadata.tags.contains(tag))
    }

    /// Returns whether the filter has no condition, so it matches every vector.
    pub fn is_empty(&self) -> bool {
        self.material_type.is_none() && self.collection.is_none() && self.tags.is_empty()
    }

    /// Checks string lengths and the tag count.
    pub(crate) fn validate(&self) -> Result<()> {
        check_strings(
            "filter",
            self.material_type.as_deref(),
            self.collection.as_deref(),
            &self.tags,
        )
    }
}

impl Metadata {
    /// Checks string lengths and the tag count.
    pub(crate) fn validate(&self, name: &str) -> Result<()> {
        check_strings(
            name,
            self.material_type.as_deref(),
            self.collection.as_deref(),
            &self.tags,
        )
    }
}

fn check_strings(
    name: &str,
    material_type: Option<&str>,
    collection: Option<&str>,
    tags: &[String],
) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid(
            name,
            format!("has {} tags; the maximum is {MAX_TAGS}", tags.len()),
        ));
    }
    let fields = [("material_type", material_type), ("collection", collection)];
    let tag_fields = tags.iter().map(|tag| ("tag", Some(tag.as_str())));
    for (field, value) in fields.into_iter().chain(tag_fields) {
        if let Some(value) = value
            && value.len() > MAX_METADATA_STRING_BYTES
        {
            return Err(Error::invalid(
                name,
                format!(
                    "{field} is {} bytes long; the maximum is {MAX_METADATA_STRING_BYTES}",
                    value.len()
                ),
            ));
        }
    }
    Ok(())
}

/// The code of an absent optional field.
pub(crate) const NO_CODE: u32 = u32::MAX;

/// [`Metadata`] with each string replaced by its code in the [`MetadataTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodedMetadata {
    pub(crate) material_type: u32,
    pub(crate) collection: u32,
    pub(crate) tags: Box<[u32]>,
}

/// A [`Filter`] compiled against one [`MetadataTable`].
#[derive(Debug, Clone)]
pub(crate) struct CompiledFilter {
    material_type: Option<u32>,
    collection: Option<u32>,
    tags: Vec<u32>,
    /// An upper bound on the live vectors that match, from per-string counts.
    pub(crate) max_matches: usize,
}

impl CompiledFilter {
    #[inline]
    pub(crate) fn matches(&self, metadata: &CodedMetadata) -> bool {
        self.material_type
            .is_none_or(|code| code == metadata.material_type)
            && self
                .collection
                .is_none_or(|code| code == metadata.collection)
            && self.tags.iter().all(|tag| metadata.tags.contains(tag))
    }
}

/// The field of a string count.
#[derive(Debug, Clone, Copy)]
enum Field {
    MaterialType = 0,
    Collection = 1,
    Tag = 2,
}

/// The coded metadata of every slot, the string table and, per string, how many live
/// vectors use it in each field.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetadataTable {
    strings: Vec<String>,
    codes: HashMap<String, u32>,
    live_counts: Vec<[u32; 3]>,
    rows: Vec<CodedMetadata>,
}

impl MetadataTable {
    /// Appends the metadata of a new live slot.
    pub(crate) fn push(&mut self, metadata: &Metadata) {
        let material_type = self.intern_optional(metadata.material_type.as_deref());
        let collection = self.intern_optional(metadata.collection.as_deref());
        let tags = metadata.tags.iter().map(|tag| self.intern(tag)).collect();
        let row = CodedMetadata {
            material_type,
            collection,
            tags,
        };
        self.count(&row, 1);
        self.rows.push(row);
    }

    /// Marks the slot's metadata as no longer live, for the match estimates.
    pub(crate) fn retire(&mut self, slot: u32) {
        let row = self.rows[slot as usize].clone();
        self.count(&row, -1);
    }

    pub(crate) fn row(&self, slot: u32) -> &CodedMetadata {
        &self.rows[slot as usize]
    }

    pub(crate) fn rows(&self) -> &[CodedMetadata] {
        &self.rows
    }

    pub(crate) fn strings(&self) -> &[String] {
        &self.strings
    }

    /// Returns the metadata of `slot` as strings.
    pub(crate) fn decode(&self, slot: u32) -> Metadata {
        let row = &self.rows[slot as usize];
        let text = |code: u32| (code != NO_CODE).then(|| self.strings[code as usize].clone());
        Metadata {
            material_type: text(row.material_type),
            collection: text(row.collection),
            tags: row
                .tags
                .iter()
                .map(|&code| self.strings[code as usize].clone())
                .collect(),
        }
    }

    /// Compiles `filter`, or returns `None` when it names a string no vector has, so
    /// nothing can match. `live` is the number of live vectors.
    pub(crate) fn compile(&self, filter: &Filter, live: usize) -> Option<CompiledFilter> {
        let mut max_matches = live;
        let mut lookup = |text: &str, field: Field| {
            let code = *self.codes.get(text)?;
            let count = self.live_counts[code as usize][field as usize] as usize;
            max_matches = max_matches.min(count);
            Some(code)
        };
        let material_type = match &filter.material_type {
            Some(text) => Some(lookup(text, Field::MaterialType)?),
            None => None,
        };
        let collection = match &filter.collection {
            Some(text) => Some(lookup(text, Field::Collection)?),
            None => None,
        };
        let tags = filter
            .tags
            .iter()
            .map(|tag| lookup(tag, Field::Tag))
            .collect::<Option<Vec<u32>>>()?;
        Some(CompiledFilter {
            material_type,
            collection,
            tags,
            max_matches,
        })
    }

    /// Rebuilds the table from a string list and coded rows read from a file, with every
    /// row counted as live except those flagged in `deleted`.
    pub(crate) fn from_parts(
        strings: Vec<String>,
        rows: Vec<CodedMetadata>,
        deleted: &[bool],
    ) -> Self {
        let codes = strings
            .iter()
            .enumerate()
            .map(|(code, text)| (text.clone(), code as u32))
            .collect();
        let mut table = Self {
            live_counts: vec![[0; 3]; strings.len()],
            strings,
            codes,
            rows: Vec::new(),
        };
        for (row, &is_deleted) in rows.iter().zip(deleted) {
            if !is_deleted {
                table.count(row, 1);
            }
        }
        table.rows = rows;
        table
    }

    fn intern_optional(&mut self, text: Option<&str>) -> u32 {
        text.map_or(NO_CODE, |text| self.intern(text))
    }

    fn intern(&mut self, text: &str) -> u32 {
        if let Some(&code) = self.codes.get(text) {
            return code;
        }
        let code = self.strings.len() as u32;
        self.strings.push(text.to_owned());
        self.codes.insert(text.to_owned(), code);
        self.live_counts.push([0; 3]);
        code
    }

    fn count(&mut self, row: &CodedMetadata, delta: i32) {
        let mut add = |code: u32, field: Field| {
            if code != NO_CODE {
                let count = &mut self.live_counts[code as usize][field as usize];
                *count = count.saturating_add_signed(delta);
            }
        };
        add(row.material_type, Field::MaterialType);
        add(row.collection, Field::Collection);
        for (position, &tag) in row.tags.iter().enumerate() {
            // A tag listed twice on one vector counts once.
            if !row.tags[..position].contains(&tag) {
                add(tag, Field::Tag);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(material_type: &str, collection: &str, tags: &[&str]) -> Metadata {
        Metadata {
            material_type: Some(material_type.to_owned()),
            collection: Some(collection.to_owned()),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn filter_requires_every_condition() {
        let oak = metadata("wood", "floors", &["oak", "oiled"]);
        let filter = |material_type: Option<&str>, tags: &[&str]| Filter {
            material_type: material_type.map(str::to_owned),
            collection: None,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        };
        assert!(Filter::default().matches(&oak));
        assert!(filter(Some("wood"), &["oak"]).matches(&oak));
        assert!(filter(None, &["oak", "oiled"]).matches(&oak));
        assert!(!filter(Some("stone"), &[]).matches(&oak));
        assert!(!filter(None, &["oak", "lacquered"]).matches(&oak));
        assert!(!filter(Some("wood"), &[]).matches(&Metadata::default()));
    }

    #[test]
    fn compiled_filter_agrees_with_filter() {
        let rows = [
            metadata("wood", "floors", &["oak"]),
            metadata("stone", "floors", &["marble", "polished"]),
            metadata("wood", "walls", &["oak", "polished"]),
            Metadata::default(),
        ];
        let mut table = MetadataTable::default();
        for row in &rows {
            table.push(row);
        }
        let filters = [
            Filter::default(),
            Filter {
                material_type: Some("wood".into()),
                ..Filter::default()
            },
            Filter {
                collection: Some("floors".into()),
                tags: vec!["polished".into()],
                ..Filter::default()
            },
            Filter {
                tags: vec!["oak".into(), "polished".into()],
                ..Filter::default()
            },
        ];
        for filter in &filters {
            let compiled = table.compile(filter, rows.len()).unwrap();
            for (slot, row) in rows.iter().enumerate() {
                assert_eq!(
                    compiled.matches(table.row(slot as u32)),
                    filter.matches(row),
                    "{filter:?} on {row:?}"
                );
                assert_eq!(table.decode(slot as u32), *row);
            }
        }
        let unknown = Filter {
            tags: vec!["granite".into()],
            ..Filter::default()
        };
        assert!(table.compile(&unknown, rows.len()).is_none());
    }

    #[test]
    fn match_estimate_follows_live_counts() {
        let mut table = MetadataTable::default();
        for i in 0..10 {
            let material = if i < 3 { "stone" } else { "wood" };
            table.push(&metadata(material, "floors", &["tile", "tile"]));
        }
        let stone = Filter {
            material_type: Some("stone".into()),
            ..Filter::default()
        };
        assert_eq!(table.compile(&stone, 10).unwrap().max_matches, 3);
        table.retire(0);
        assert_eq!(table.compile(&stone, 9).unwrap().max_matches, 2);
        let tile = Filter {
            tags: vec!["tile".into()],
            ..Filter::default()
        };
        assert_eq!(table.compile(&tile, 9).unwrap().max_matches, 9);
    }

    #[test]
    fn oversized_strings_are_rejected() {
        let long = "x".repeat(MAX_METADATA_STRING_BYTES + 1);
        let err = Metadata {
            collection: Some(long),
            ..Metadata::default()
        }
        .validate("metadata")
        .unwrap_err()
        .to_string();
        assert!(err.contains("collection is 1025 bytes long"), "{err}");
        let many = Filter {
            tags: vec!["t".into(); MAX_TAGS + 1],
            ..Filter::default()
        };
        assert!(
            many.validate()
                .unwrap_err()
                .to_string()
                .contains("257 tags")
        );
    }
}
