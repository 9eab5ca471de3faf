//! Reading a catalog folder: `catalog.json` (a list of records) or `catalog.csv` (one row
//! per image), with per-record errors so one bad row does not stop an import.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::record::MaterialInput;
use crate::error::{Error, Result};

/// Largest catalog file read, in bytes.
pub const MAX_CATALOG_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A record that could not be read, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    /// The record's id when it could be read, else its position (`#3`, `line 7`).
    pub record: String,
    /// The reason the record was rejected.
    pub message: String,
}

/// The records of a catalog folder, in file order, and the ones that failed to parse.
#[derive(Debug, Clone, Default)]
pub struct CatalogSource {
    /// The folder that image paths are relative to.
    pub root: PathBuf,
    /// Records that parsed, in file order.
    pub records: Vec<MaterialInput>,
    /// Records that did not parse.
    pub errors: Vec<RecordError>,
}

/// Reads `catalog.json`, or else `catalog.csv`, from `folder`.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] when the folder has neither file, or when the file as a
/// whole is unreadable (not a JSON list, no header row). Single bad records go to
/// [`CatalogSource::errors`] instead.
pub fn read_catalog(folder: &Path) -> Result<CatalogSource> {
    let json = folder.join("catalog.json");
    let csv = folder.join("catalog.csv");
    let mut source = if json.is_file() {
        read_json(&read_bounded(&json)?)?
    } else if csv.is_file() {
        read_csv(&read_bounded(&csv)?)?
    } else {
        return Err(Error::invalid(
            "catalog folder",
            format!(
                "{} has neither catalog.json nor catalog.csv",
                folder.display()
            ),
        ));
    };
    source.root = folder.to_path_buf();
    mark_duplicates(&mut source);
    Ok(source)
}

fn read_bounded(path: &Path) -> Result<String> {
    let size = std::fs::metadata(path)
        .map_err(|err| Error::io("cannot read", path, err))?
        .len();
    if size > MAX_CATALOG_FILE_BYTES {
        return Err(Error::invalid(
            "catalog file",
            format!(
                "{} is {size} bytes, over the limit of {MAX_CATALOG_FILE_BYTES}",
                path.display()
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(|err| Error::io("cannot read", path, err))
}

fn read_json(text: &str) -> Result<CatalogSource> {
    let items: Vec<Value> = serde_json::from_str(text).map_err(|err| {
        Error::invalid(
            "catalog.json",
            format!("expected a JSON list of records: {err}"),
        )
    })?;
    let mut source = CatalogSource::default();
    for (index, item) in items.into_iter().enumerate() {
        let label = item
            .get("id")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{}", index + 1), str::to_owned);
        match serde_json::from_value::<MaterialInput>(item) {
            Ok(record) => source.records.push(record),
            Err(err) => source.errors.push(RecordError {
                record: label,
                message: err.to_string(),
            }),
        }
    }
    Ok(source)
}

/// The CSV columns, named as the JSON fields, with `image` for one image path per row.
const CSV_COLUMNS: [&str; 9] = [
    "id",
    "name",
    "materialType",
    "collectionId",
    "manufacturer",
    "tags",
    "description",
    "properties",
    "image",
];

fn read_csv(text: &str) -> Result<CatalogSource> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|err| Error::invalid("catalog.csv", format!("cannot read the header row: {err}")))?
        .clone();
    for header in &headers {
        if !CSV_COLUMNS.contains(&header) {
            return Err(Error::invalid(
                "catalog.csv",
                format!(
                    "unknown column `{header}`; expected some of {}",
                    CSV_COLUMNS.join(", ")
                ),
            ));
        }
    }
    for required in ["id", "name", "materialType"] {
        if !headers.iter().any(|h| h == required) {
            return Err(Error::invalid(
                "catalog.csv",
                format!("the header has no `{required}` column"),
            ));
        }
    }

    let mut source = CatalogSource::default();
    // Rows that share an id add images to one record, at the position of its first row.
    let mut position: HashMap<String, usize> = HashMap::new();
    for (index, row) in reader.records().enumerate() {
        let line = format!("line {}", index + 2);
        let row = match row {
            Ok(row) => row,
            Err(err) => {
                source.errors.push(RecordError {
                    record: line,
                    message: err.to_string(),
                });
                continue;
            }
        };
        let field = |name: &str| -> String {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| row.get(i))
                .unwrap_or_default()
                .to_owned()
        };
        let id = field("id").trim().to_owned();
        let image = field("image").trim().to_owned();
        if let Some(&at) = position.get(&id) {
            if !image.is_empty() {
                source.records[at].images.push(image);
            }
            continue;
        }
        let properties = match field("properties").trim() {
            "" => Map::new(),
            text => match serde_json::from_str::<Map<String, Value>>(text) {
                Ok(map) => map,
                Err(err) => {
                    source.errors.push(RecordError {
                        record: if id.is_empty() { line } else { id },
                        message: format!("properties is not a JSON object: {err}"),
                    });
                    continue;
                }
            },
        };
        let optional = |name: &str| Some(field(name)).filter(|v| !v.trim().is_empty());
        let record = MaterialInput {
            id: id.clone(),
            name: field("name"),
            material_type: field("materialType"),
            collection_id: optional("collectionId"),
            manufacturer: optional("manufacturer"),
            tags: field("tags")
                .split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            description: field("description"),
            properties,
            images: if image.is_empty() {
                Vec::new()
            } else {
                vec![image]
            },
        };
        position.insert(id, source.records.len());
        source.records.push(record);
    }
    Ok(source)
}

/// Moves every record whose id repeats an earlier one to the errors.
fn mark_duplicates(source: &mut CatalogSource) {
    let mut seen = std::collections::HashSet::new();
    let records = std::mem::take(&mut source.records);
    for record in records {
        let id = record.id.trim().to_owned();
        if seen.insert(id.clone()) {
            source.records.push(record);
        } else {
            source.errors.push(RecordError {
                record: id,
                message: "duplicate id: an earlier record of the catalog has it".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_with_one_id_share_a_record() {
        let text = "id,name,materialType,tags,properties,image\n\
                    oak,Oak,wood,brown;matte,\"{\"\"finish\"\": \"\"oiled\"\"}\",a.jpg\n\
                    oak,Oak,wood,,,b.jpg\n\
                    slate,Slate,stone,,not json,c.jpg\n";
        let source = read_csv(text).unwrap();
        assert_eq!(source.records.len(), 1);
        assert_eq!(source.records[0].images, ["a.jpg", "b.jpg"]);
        assert_eq!(source.records[0].tags, ["brown", "matte"]);
        assert_eq!(source.records[0].properties["finish"], "oiled");
        assert_eq!(source.errors.len(), 1);
        assert_eq!(source.errors[0].record, "slate");
        assert!(source.errors[0].message.contains("properties"));
    }

    #[test]
    fn csv_unknown_column_is_rejected() {
        let err = read_csv("id,name,materialType,colour\n").unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let err = read_csv("id,name\n").unwrap_err();
        assert!(err.to_string().contains("materialType"), "{err}");
    }

    #[test]
    fn json_bad_records_are_reported_and_others_kept() {
        let text = r#"[{"id": "oak", "name": "Oak", "materialType": "wood"},
                       {"id": "bad", "name": 5, "materialType": "wood"},
                       {"name": "No id", "materialType": "wood"}]"#;
        let mut source = read_json(text).unwrap();
        mark_duplicates(&mut source);
        assert_eq!(source.records.len(), 1);
        assert_eq!(source.errors[0].record, "bad");
        assert_eq!(source.errors[1].record, "#3");
        assert!(read_json("{}").is_err());
    }

    #[test]
    fn duplicates_keep_the_first() {
        let text = r#"[{"id": "oak", "name": "Oak", "materialType": "wood"},
                       {"id": "oak", "name": "Oak 2", "materialType": "wood"}]"#;
        let mut source = read_json(text).unwrap();
        mark_duplicates(&mut source);
        assert_eq!(source.records.len(), 1);
        assert_eq!(source.records[0].name, "Oak");
        assert!(source.errors[0].message.contains("duplicate id"));
    }
}
