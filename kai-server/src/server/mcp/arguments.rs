//! Tool arguments: their JSON schemas and their parsing into typed inputs.
//!
//! Arguments are parsed here rather than by rmcp's `Parameters` extractor so that a wrong
//! argument becomes a tool error whose message names the argument, which serde's own
//! messages do not (`invalid type: string "ten", expected usize`).

use std::sync::Arc;

use kai_core::Error;
use rmcp::handler::server::common::schema_for_input;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Returns the input schema of a tool whose arguments are `T`.
///
/// # Panics
///
/// Panics when `T`'s schema is not an object, a programming error that every test run
/// reaches when the tool router is built.
pub fn input_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    schema_for_input::<T>()
        .unwrap_or_else(|err| panic!("the arguments of a kai tool must be an object: {err}"))
}

/// Parses the arguments of a tool call into `T`.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] naming the argument of the wrong type or out of its
/// range when the schema shows which one it is, else with serde's message, which names
/// the unknown or missing field or the wrong value.
pub fn parse<T: DeserializeOwned + JsonSchema + 'static>(
    arguments: JsonObject,
) -> Result<T, Error> {
    let schema = input_schema::<T>();
    if let Some(err) = check_against_schema(&schema, &arguments) {
        return Err(err);
    }
    serde_json::from_value(Value::Object(arguments))
        .map_err(|err| Error::invalid("arguments", err.to_string()))
}

/// Checks each top-level argument against the JSON type, minimum and maximum of its
/// property in `schema`. Nested values are left to serde.
fn check_against_schema(schema: &JsonObject, arguments: &JsonObject) -> Option<Error> {
    let properties = schema.get("properties")?.as_object()?;
    for (name, value) in arguments {
        let Some(property) = properties.get(name).and_then(Value::as_object) else {
            continue;
        };
        let types = json_types(property);
        if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
            return Some(Error::invalid(
                name,
                format!("must be {}, got {}", types.join(" or "), describe(value)),
            ));
        }
        let number = value.as_f64();
        let minimum = property.get("minimum").and_then(Value::as_f64);
        if let (Some(minimum), Some(number)) = (minimum, number)
            && number < minimum
        {
            return Some(Error::invalid(
                name,
                format!("must be at least {minimum}, got {value}"),
            ));
        }
        let maximum = property.get("maximum").and_then(Value::as_f64);
        if let (Some(maximum), Some(number)) = (maximum, number)
            && number > maximum
        {
            return Some(Error::invalid(
                name,
                format!("must be at most {maximum}, got {value}"),
            ));
        }
    }
    None
}

/// Returns the JSON types a property allows: its `type`, one string or a list.
fn json_types(property: &JsonObject) -> Vec<&str> {
    match property.get("type") {
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Returns whether `value` is of the JSON schema type `name`.
fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// Names the JSON type of `value`, with the value itself when it is short.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => return "an array".to_owned(),
        Value::Object(_) => return "an object".to_owned(),
    };
    if text.chars().count() <= 40 {
        format!("{kind} {text}")
    } else {
        format!("a {kind} of {} characters", text.chars().count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Example {
        query: String,
        #[schemars(range(max = 50))]
        top_k: Option<usize>,
        tags: Option<Vec<String>>,
    }

    fn arguments(value: Value) -> JsonObject {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    fn message(value: Value) -> String {
        parse::<Example>(arguments(value))
            .expect_err("invalid arguments")
            .to_string()
    }

    #[test]
    fn valid_arguments_parse() {
        let parsed: Example = parse(arguments(serde_json::json!({
            "query": "oak", "topK": 3, "tags": ["matte"]
        })))
        .expect("valid arguments");
        assert_eq!(parsed.query, "oak");
        assert_eq!(parsed.top_k, Some(3));
        assert_eq!(parsed.tags, Some(vec!["matte".to_owned()]));
    }

    #[test]
    fn wrong_types_name_the_argument_and_value() {
        let text = message(serde_json::json!({"query": "oak", "topK": "ten"}));
        assert!(text.contains("invalid topK"), "{text}");
        assert!(text.contains("string \"ten\""), "{text}");
        let text = message(serde_json::json!({"query": 7}));
        assert!(
            text.contains("invalid query: must be string, got number 7"),
            "{text}"
        );
        let text = message(serde_json::json!({"query": "oak", "topK": 1.5}));
        assert!(
            text.contains("invalid topK: must be integer or null"),
            "{text}"
        );
    }

    #[test]
    fn values_out_of_range_name_the_argument() {
        let text = message(serde_json::json!({"query": "oak", "topK": -1}));
        assert!(
            text.contains("invalid topK: must be at least 0, got -1"),
            "{text}"
        );
        let text = message(serde_json::json!({"query": "oak", "topK": 51}));
        assert!(
            text.contains("invalid topK: must be at most 50, got 51"),
            "{text}"
        );
    }

    #[test]
    fn unknown_and_missing_fields_keep_serde_messages() {
        let text = message(serde_json::json!({"query": "oak", "topk": 3}));
        assert!(text.contains("unknown field `topk`"), "{text}");
        let text = message(serde_json::json!({}));
        assert!(text.contains("missing field `query`"), "{text}");
    }

    #[test]
    fn nested_values_are_checked_by_serde() {
        let text = message(serde_json::json!({"query": "oak", "tags": [1]}));
        assert!(text.contains("invalid arguments"), "{text}");
        assert!(text.contains("integer `1`"), "{text}");
    }
}
