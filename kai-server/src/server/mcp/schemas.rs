//! JSON schemas of tool outputs, taken from the OpenAPI schemas (utoipa) of the types the
//! REST API sends, so both surfaces describe one shape.
//!
//! An OpenAPI schema refers to other types as `#/components/schemas/NAME`. A tool's schema
//! has to stand alone, so those types move into its `$defs` and the references follow.

use std::sync::Arc;

use rmcp::model::JsonObject;
use serde_json::{Map, Value};
use utoipa::ToSchema;

const OPENAPI_REFERENCE: &str = "#/components/schemas/";
const DEFS_REFERENCE: &str = "#/$defs/";

/// Returns the self-contained JSON schema of `T`, for a tool's `outputSchema`.
///
/// # Panics
///
/// Panics when `T`'s schema is not an object schema, a programming error that every test
/// run reaches when the tool router is built.
pub fn output_schema<T: ToSchema>() -> Arc<JsonObject> {
    let mut referenced = Vec::new();
    T::schemas(&mut referenced);
    let mut defs = Map::new();
    for (name, schema) in referenced {
        defs.insert(name, standalone(to_value(&schema)));
    }
    let mut root = match standalone(to_value(&T::schema())) {
        Value::Object(root) => root,
        other => panic!("the schema of {} is not an object: {other}", T::name()),
    };
    if root.get("type").and_then(Value::as_str) != Some("object") {
        panic!(
            "a tool's output must be a JSON object, but {} is not",
            T::name()
        );
    }
    if !defs.is_empty() {
        root.insert("$defs".to_owned(), Value::Object(defs));
    }
    Arc::new(root)
}

/// Returns `T`'s schema with the `null` type added, for an optional argument whose type
/// the REST API also takes (its referenced types are not inlined).
pub fn nullable_input_schema<T: ToSchema>() -> schemars::Schema {
    let mut schema = standalone(to_value(&T::schema()));
    if let Some(object) = schema.as_object_mut()
        && let Some(Value::String(kind)) = object.get("type").cloned()
    {
        object.insert("type".to_owned(), serde_json::json!([kind, "null"]));
    }
    schemars::Schema::try_from(schema).unwrap_or_else(|err| {
        panic!(
            "the OpenAPI schema of {} is not a JSON schema: {err}",
            T::name()
        )
    })
}

fn to_value(schema: &impl serde::Serialize) -> Value {
    serde_json::to_value(schema).unwrap_or_else(|err| panic!("cannot encode a schema: {err}"))
}

/// Rewrites OpenAPI references to `$defs` references, and `oneOf` to `anyOf`.
///
/// utoipa writes an untagged enum as `oneOf`, which a value matching two variants fails:
/// the parameter value `5` is both an `integer` and a `number`. serde takes the first
/// variant that matches, which `anyOf` describes.
fn standalone(mut value: Value) -> Value {
    match &mut value {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get_mut("$ref")
                && let Some(name) = reference.strip_prefix(OPENAPI_REFERENCE)
            {
                *reference = format!("{DEFS_REFERENCE}{name}");
            }
            if let Some(variants) = object.remove("oneOf") {
                object.insert("anyOf".to_owned(), variants);
            }
            for child in object.values_mut() {
                *child = standalone(std::mem::take(child));
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = standalone(std::mem::take(item));
            }
        }
        _ => {}
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use kai_core::recognize::Recognition;
    use kai_core::registry::Suggestion;

    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(reference)) = object.get("$ref") {
                    found.push(reference.clone());
                }
                object.values().for_each(|child| references(child, found));
            }
            Value::Array(items) => items.iter().for_each(|item| references(item, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_within_the_schema() {
        for schema in [
            output_schema::<Recognition>(),
            output_schema::<Suggestion>(),
        ] {
            let value = Value::Object((*schema).clone());
            let mut found = Vec::new();
            references(&value, &mut found);
            assert!(!found.is_empty(), "{value}");
            for reference in found {
                let name = reference
                    .strip_prefix(DEFS_REFERENCE)
                    .unwrap_or_else(|| panic!("{reference} points outside the schema"));
                assert!(
                    value["$defs"].get(name).is_some(),
                    "{reference} is not in $defs"
                );
            }
        }
    }

    #[test]
    fn untagged_enums_become_any_of() {
        let schema = Value::Object((*output_schema::<Suggestion>()).clone());
        let text = schema.to_string();
        assert!(!text.contains("oneOf"), "{text}");
        assert!(text.contains("anyOf"), "{text}");
    }
}
