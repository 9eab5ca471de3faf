//! Material records: what the catalog stores about one material, and the checks a record
//! must pass before it is stored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Longest accepted id, name, type, collection or manufacturer, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// Longest accepted description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

/// Most tags and images one record may have.
pub const MAX_TAGS: usize = 64;

/// Most images one record may have.
pub const MAX_IMAGES: usize = 64;

/// The fields of a material that a caller provides, as in `catalog.json`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaterialInput {
    /// Unique id: letters, digits, `-`, `_` and `.`, but not `.` or `..` alone.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Material class, e.g. `wood` or `stone`; stored in lower case.
    pub material_type: String,
    /// The collection the material belongs to.
    #[serde(default)]
    pub collection_id: Option<String>,
    /// The maker or source of the material.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// Keywords; stored in lower case without duplicates.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free text, searched by keyword and by meaning.
    #[serde(default)]
    pub description: String,
    /// Free-form properties (finish, colour, dimensions, …).
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Image paths, relative to the catalog folder on import.
    #[serde(default)]
    pub images: Vec<String>,
}

/// One stored image of a material.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRef {
    /// Numeric key of the image in the image vector index.
    #[serde(skip)]
    pub key: u64,
    /// Path relative to the store's `images` folder.
    pub path: String,
    /// SHA-256 of the image file.
    pub sha256: String,
    /// Width in pixels, after EXIF orientation.
    pub width: u32,
    /// Height in pixels, after EXIF orientation.
    pub height: u32,
}

/// A stored material.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Material {
    /// Numeric key of the material in the text vector index.
    #[serde(skip)]
    pub key: u64,
    /// Unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Material class, in lower case.
    pub material_type: String,
    /// The collection the material belongs to.
    pub collection_id: Option<String>,
    /// The maker or source of the material.
    pub manufacturer: Option<String>,
    /// Keywords, in lower case.
    pub tags: Vec<String>,
    /// Free text.
    pub description: String,
    /// Free-form properties.
    pub properties: Map<String, Value>,
    /// Stored images, in the order given on import.
    pub images: Vec<ImageRef>,
    /// Version number, 1 for a new record and one more for each update.
    pub version: u32,
    /// Creation time, RFC 3339 in UTC.
    pub created_at: String,
    /// Time of the latest update, RFC 3339 in UTC.
    pub updated_at: String,
}

impl Material {
    /// Returns the text that the text embedding of the material is computed from.
    pub fn embedding_text(&self) -> String {
        embedding_text(
            &self.name,
            &self.material_type,
            &self.tags,
            &self.description,
        )
    }
}

/// Joins the fields that a material's text embedding is computed from.
fn embedding_text(name: &str, material_type: &str, tags: &[String], description: &str) -> String {
    let mut text = format!("{name} ({material_type})");
    if !tags.is_empty() {
        text.push_str(". ");
        text.push_str(&tags.join(", "));
    }
    if !description.is_empty() {
        text.push_str(". ");
        text.push_str(description);
    }
    text
}

impl MaterialInput {
    /// Returns the text that the text embedding of the stored material is computed from;
    /// call it on the [`MaterialInput::normalized`] record.
    pub fn embedding_text(&self) -> String {
        embedding_text(
            &self.name,
            &self.material_type,
            &self.tags,
            &self.description,
        )
    }

    /// Checks every field and returns the record in its stored form: trimmed, type and
    /// tags in lower case, duplicate tags dropped.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the field and the value.
    pub fn normalized(&self) -> Result<Self> {
        let field = |name: &str, reason: String| {
            Error::invalid(format!("material {}: {name}", self.id), reason)
        };
        let id = self.id.clone();
        if id.trim() != id {
            // Trimming would store another id than the one the caller uses in URLs.
            return Err(Error::invalid(
                "material id",
                format!("`{id}` has leading or trailing whitespace; remove it"),
            ));
        }
        if id.is_empty() || id.len() > MAX_FIELD_BYTES {
            return Err(Error::invalid(
                "material id",
                format!("`{id}` must be 1 to {MAX_FIELD_BYTES} bytes"),
            ));
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::invalid(
                "material id",
                format!("`{id}` may contain only letters, digits, `-`, `_` and `.`"),
            ));
        }
        if id == "." || id == ".." {
            // URL paths resolve `.` and `..` segments, so such a material is unreachable.
            return Err(Error::invalid(
                "material id",
                format!("`{id}` is reserved in URL paths; use letters or digits as well"),
            ));
        }
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.len() > MAX_FIELD_BYTES {
            return Err(field(
                "name",
                format!("must be 1 to {MAX_FIELD_BYTES} bytes, got {}", name.len()),
            ));
        }
        let material_type = self.material_type.trim().to_lowercase();
        if material_type.is_empty() || material_type.len() > MAX_FIELD_BYTES {
            return Err(field(
                "materialType",
                format!("`{material_type}` must be 1 to {MAX_FIELD_BYTES} bytes"),
            ));
        }
        let optional = |name: &str, value: &Option<String>| -> Result<Option<String>> {
            match value.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) if v.len() > MAX_FIELD_BYTES => Err(field(
                    name,
                    format!("is {} bytes, over {MAX_FIELD_BYTES}", v.len()),
                )),
                Some(v) => Ok(Some(v.to_owned())),
            }
        };
        let mut tags: Vec<String> = Vec::new();
        for tag in &self.tags {
            let tag = tag.trim().to_lowercase();
            if tag.is_empty() || tag.len() > MAX_FIELD_BYTES {
                return Err(field(
                    "tags",
                    format!("`{tag}` must be 1 to {MAX_FIELD_BYTES} bytes"),
                ));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(field(
                "tags",
                format!("{} tags, over the limit of {MAX_TAGS}", tags.len()),
            ));
        }
        if self.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(field(
                "description",
                format!(
                    "is {} bytes, over {MAX_DESCRIPTION_BYTES}",
                    self.description.len()
                ),
            ));
        }
        if self.images.len() > MAX_IMAGES {
            return Err(field(
                "images",
                format!(
                    "{} images, over the limit of {MAX_IMAGES}",
                    self.images.len()
                ),
            ));
        }
        for image in &self.images {
            let escapes = image.split(['/', '\\']).any(|part| part == "..");
            if image.trim().is_empty()
                || escapes
                || image.starts_with('/')
                || image.starts_with('\\')
            {
                return Err(field(
                    "images",
                    format!("`{image}` must be a relative path inside the catalog folder"),
                ));
            }
        }
        Ok(Self {
            id,
            name,
            material_type,
            collection_id: optional("collectionId", &self.collection_id)?,
            manufacturer: optional("manufacturer", &self.manufacturer)?,
            tags,
            description: self.description.trim().to_owned(),
            properties: self.properties.clone(),
            images: self.images.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> MaterialInput {
        MaterialInput {
            id: "oak-01".into(),
            name: " Oak planks ".into(),
            material_type: "Wood".into(),
            collection_id: Some("".into()),
            manufacturer: None,
            tags: vec!["Brown".into(), "brown".into(), "matte".into()],
            description: "Sawn oak.".into(),
            properties: Map::new(),
            images: vec!["images/oak.jpg".into()],
        }
    }

    #[test]
    fn normalized_trims_and_lowercases() {
        let record = input().normalized().unwrap();
        assert_eq!(record.name, "Oak planks");
        assert_eq!(record.material_type, "wood");
        assert_eq!(record.collection_id, None);
        assert_eq!(record.tags, ["brown", "matte"]);
    }

    #[test]
    fn invalid_fields_are_named() {
        let mut bad = input();
        bad.id = "oak 01".into();
        assert!(
            bad.normalized()
                .unwrap_err()
                .to_string()
                .contains("`oak 01`")
        );
        let mut bad = input();
        bad.name = "  ".into();
        assert!(bad.normalized().unwrap_err().to_string().contains("name"));
        let mut bad = input();
        bad.images = vec!["../secret.jpg".into()];
        assert!(
            bad.normalized()
                .unwrap_err()
                .to_string()
                .contains("../secret.jpg")
        );
        let mut bad = input();
        bad.tags = vec!["".into()];
        assert!(bad.normalized().unwrap_err().to_string().contains("tags"));
    }

    #[test]
    fn ids_must_be_usable_in_urls() {
        for bad in [".", "..", " lead", "trail ", "\toak"] {
            let mut record = input();
            record.id = bad.into();
            let message = record.normalized().unwrap_err().to_string();
            assert!(message.contains(&format!("`{bad}`")), "{message}");
        }
        let mut dotted = input();
        dotted.id = "oak.v2".into();
        assert_eq!(dotted.normalized().unwrap().id, "oak.v2");
    }

    #[test]
    fn unknown_json_field_is_rejected() {
        let err = serde_json::from_str::<MaterialInput>(
            r#"{"id": "a", "name": "A", "materialType": "wood", "colour": "red"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
