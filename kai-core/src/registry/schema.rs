//! Typed parameter schemas and the validation of values against them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Maximum length of a parameter, set or scope name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Maximum length of a string value, in bytes.
pub const MAX_STRING_LEN: usize = 4096;
/// Most parameters one schema may define.
pub const MAX_PARAMETERS: usize = 1000;
/// Largest schema file read.
pub const MAX_SCHEMA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The type of a parameter.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A finite 64-bit float, optionally bounded by `min` and `max`.
    Float,
    /// A 64-bit integer, optionally bounded by `min` and `max`.
    Int,
    /// `true` or `false`.
    Bool,
    /// One of the strings in `allowed`.
    Enum,
    /// Any string up to `max_length` bytes (default [`MAX_STRING_LEN`]).
    String,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamType::Float => "float",
            ParamType::Int => "int",
            ParamType::Bool => "bool",
            ParamType::Enum => "enum",
            ParamType::String => "string",
        })
    }
}

impl ParamType {
    /// Returns the type name with its indefinite article: "a float", "an int".
    pub fn with_article(self) -> &'static str {
        match self {
            ParamType::Float => "a float",
            ParamType::Int => "an int",
            ParamType::Bool => "a bool",
            ParamType::Enum => "an enum",
            ParamType::String => "a string",
        }
    }
}

/// A parameter value. In JSON it is the plain value: `0.3`, `5`, `true`, `"fast"`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string, for enum and string parameters.
    Text(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v:?}"),
            ParamValue::Text(v) => write!(f, "{v:?}"),
        }
    }
}

impl ParamValue {
    /// Returns the value as a float, for float and int values.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Float(v) => Some(*v),
            ParamValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// Returns the value as an integer, for int values.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// Returns the value as a boolean, for bool values.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(v) => Some(*v),
            _ => None,
        }
    }

    /// Returns the value as a string, for enum and string values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Text(v) => Some(v),
            _ => None,
        }
    }
}

/// The definition of one parameter.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParamSpec {
    /// The value type.
    #[serde(rename = "type")]
    pub kind: ParamType,
    /// Smallest allowed value, for float and int parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed value, for float and int parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The allowed values of an enum parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// Longest allowed string, in bytes, for string parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// The value a set takes when it does not give one.
    pub default: ParamValue,
    /// The unit, such as `px` or `fraction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The setting the parameter controls, in a sentence.
    #[serde(default)]
    pub description: String,
}

impl ParamSpec {
    /// Checks `value` against this parameter's type and rule and returns it normalised
    /// (an integer given for a float parameter becomes a float).
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the parameter `name`, the value and the rule
    /// it breaks.
    pub fn check(&self, name: &str, value: &ParamValue) -> Result<ParamValue> {
        let fail = |rule: String| Err(Error::invalid(format!("parameter {name}"), rule));
        let value = match (self.kind, value) {
            (ParamType::Float, ParamValue::Float(v)) => ParamValue::Float(*v),
            (ParamType::Float, ParamValue::Int(v)) => ParamValue::Float(*v as f64),
            (ParamType::Int, ParamValue::Int(v)) => ParamValue::Int(*v),
            (ParamType::Bool, ParamValue::Bool(v)) => ParamValue::Bool(*v),
            (ParamType::Enum | ParamType::String, ParamValue::Text(v)) => {
                ParamValue::Text(v.clone())
            }
            (kind, other) => return fail(format!("{other} is not {} value", kind.with_article())),
        };
        match &value {
            ParamValue::Float(v) if !v.is_finite() => {
                return fail(format!("{v} is not a finite number"));
            }
            ParamValue::Float(_) | ParamValue::Int(_) => {
                let v = value.as_f64().unwrap_or(f64::NAN);
                if let Some(min) = self.min
                    && v < min
                {
                    return fail(format!("{value} is below the minimum {min}"));
                }
                if let Some(max) = self.max
                    && v > max
                {
                    return fail(format!("{value} is above the maximum {max}"));
                }
            }
            ParamValue::Text(v) if self.kind == ParamType::Enum => {
                if !self.allowed.contains(v) {
                    return fail(format!(
                        "{value} is not one of the allowed values {}",
                        self.allowed.join(", ")
                    ));
                }
            }
            ParamValue::Text(v) => {
                let limit = self.max_length.unwrap_or(MAX_STRING_LEN);
                if v.len() > limit {
                    return fail(format!(
                        "a {}-byte string is longer than the maximum {limit} bytes",
                        v.len()
                    ));
                }
            }
            ParamValue::Bool(_) => {}
        }
        Ok(value)
    }

    /// Parses the text `raw` (from a command line `KEY=VALUE`) as this parameter's type
    /// and checks it.
    ///
    /// # Errors
    ///
    /// As [`ParamSpec::check`].
    pub fn parse(&self, name: &str, raw: &str) -> Result<ParamValue> {
        let raw = raw.trim();
        let value = match self.kind {
            ParamType::Float => raw.parse::<f64>().ok().map(ParamValue::Float),
            ParamType::Int => raw.parse::<i64>().ok().map(ParamValue::Int),
            ParamType::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(ParamValue::Bool(true)),
                "false" | "no" | "off" | "0" => Some(ParamValue::Bool(false)),
                _ => None,
            },
            ParamType::Enum | ParamType::String => Some(ParamValue::Text(raw.to_owned())),
        };
        let Some(value) = value else {
            return Err(Error::invalid(
                format!("parameter {name}"),
                format!("`{raw}` is not {} value", self.kind.with_article()),
            ));
        };
        self.check(name, &value)
    }

    /// Checks that the definition itself is consistent: bounds in order, an enum with
    /// allowed values, and a default that passes the rule.
    fn validate(&self, name: &str) -> Result<()> {
        let fail = |rule: &str| Err(Error::invalid(format!("schema of {name}"), rule.to_owned()));
        let numeric = matches!(self.kind, ParamType::Float | ParamType::Int);
        if !numeric && (self.min.is_some() || self.max.is_some()) {
            return fail("min and max apply only to float and int parameters");
        }
        for bound in [self.min, self.max].into_iter().flatten() {
            if !bound.is_finite() {
                return fail("min and max must be finite numbers");
            }
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return fail(&format!("min {min} is above max {max}"));
        }
        if self.kind == ParamType::Enum && self.allowed.is_empty() {
            return fail("an enum parameter needs a non-empty `allowed` list");
        }
        if self.kind != ParamType::Enum && !self.allowed.is_empty() {
            return fail("`allowed` applies only to enum parameters");
        }
        self.check(name, &self.default).map_err(|err| {
            Error::invalid(
                format!("schema of {name}"),
                format!("the default fails: {err}"),
            )
        })?;
        Ok(())
    }
}

/// Checks a parameter, set or scope name: 1 to 128 characters from letters, digits, `_`,
/// `-` and `.`.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] naming `what` and the name.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            format!(
                "`{}` must be 1 to {MAX_NAME_LEN} letters, digits, `_`, `-` or `.`",
                name.chars().take(MAX_NAME_LEN + 8).collect::<String>()
            ),
        ))
    }
}

/// A set of parameter definitions, by parameter name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The parameters, by name (for example `recognition.top_k`).
    pub parameters: BTreeMap<String, ParamSpec>,
}

impl Schema {
    /// Reads a schema file: TOML (`.toml`) or JSON (anything else), with a
    /// `parameters` table of [`ParamSpec`]s.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Io`] when the file cannot be read, and [`Error::InvalidInput`]
    /// naming the file when it is too large, malformed or inconsistent.
    pub fn from_file(path: &Path) -> Result<Self> {
        let size = match std::fs::metadata(path) {
            Ok(metadata) => metadata.len(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what: "schema file",
                    name: path.display().to_string(),
                    hint: String::new(),
                });
            }
            Err(err) => return Err(Error::io("cannot read", path, err)),
        };
        if size > MAX_SCHEMA_FILE_BYTES {
            return Err(Error::invalid(
                path.display().to_string(),
                format!("the schema file has {size} bytes, more than {MAX_SCHEMA_FILE_BYTES}"),
            ));
        }
        let text =
            std::fs::read_to_string(path).map_err(|err| Error::io("cannot read", path, err))?;
        let toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let schema: Schema = if toml {
            toml::from_str(&text).map_err(|err| {
                Error::invalid(path.display().to_string(), format!("not a schema: {err}"))
            })?
        } else {
            serde_json::from_str(&text).map_err(|err| {
                Error::invalid(path.display().to_string(), format!("not a schema: {err}"))
            })?
        };
        schema.validate()?;
        Ok(schema)
    }

    /// Checks every name and definition.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the first bad parameter.
    pub fn validate(&self) -> Result<()> {
        if self.parameters.len() > MAX_PARAMETERS {
            return Err(Error::invalid(
                "schema",
                format!(
                    "defines {} parameters, more than {MAX_PARAMETERS}",
                    self.parameters.len()
                ),
            ));
        }
        for (name, spec) in &self.parameters {
            check_name("parameter name", name)?;
            spec.validate(name)?;
        }
        Ok(())
    }

    /// Returns the definition of `name`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when the schema has no such parameter.
    pub fn spec(&self, name: &str) -> Result<&ParamSpec> {
        self.parameters.get(name).ok_or_else(|| {
            Error::invalid(
                format!("parameter {name}"),
                "is not in the schema; `kai params schema show` lists the parameters, and \
                 `kai params schema apply FILE` adds new ones",
            )
        })
    }

    /// Returns every parameter's default value.
    pub fn defaults(&self) -> BTreeMap<String, ParamValue> {
        self.parameters
            .iter()
            .map(|(name, spec)| (name.clone(), spec.default.clone()))
            .collect()
    }

    /// Checks a complete value map: every value against its parameter.
    ///
    /// # Errors
    ///
    /// As [`ParamSpec::check`], and for values of parameters the schema lacks.
    pub fn check_values(
        &self,
        values: &BTreeMap<String, ParamValue>,
    ) -> Result<BTreeMap<String, ParamValue>> {
        values
            .iter()
            .map(|(name, value)| Ok((name.clone(), self.spec(name)?.check(name, value)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ParamType) -> ParamSpec {
        ParamSpec {
            kind,
            min: None,
            max: None,
            allowed: Vec::new(),
            max_length: None,
            default: ParamValue::Bool(false),
            unit: None,
            description: String::new(),
        }
    }

    #[test]
    fn range_errors_name_parameter_value_and_rule() {
        let s = ParamSpec {
            min: Some(0.0),
            max: Some(1.0),
            default: ParamValue::Float(0.5),
            ..spec(ParamType::Float)
        };
        let err = s.check("quality.x", &ParamValue::Float(1.5)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid parameter quality.x: 1.5 is above the maximum 1"
        );
        let err = s.parse("quality.x", "NaN").unwrap_err();
        assert!(
            err.to_string().contains("NaN is not a finite number"),
            "{err}"
        );
        assert_eq!(
            s.check("quality.x", &ParamValue::Int(1)).unwrap(),
            ParamValue::Float(1.0)
        );
    }

    #[test]
    fn types_are_enforced() {
        let s = ParamSpec {
            default: ParamValue::Int(1),
            ..spec(ParamType::Int)
        };
        let err = s.check("n", &ParamValue::Float(1.5)).unwrap_err();
        assert!(err.to_string().contains("1.5 is not an int value"), "{err}");
        let err = s.parse("n", "five").unwrap_err();
        assert!(
            err.to_string().contains("`five` is not an int value"),
            "{err}"
        );
        let e = ParamSpec {
            allowed: vec!["fast".into(), "exact".into()],
            default: ParamValue::Text("fast".into()),
            ..spec(ParamType::Enum)
        };
        let err = e.parse("mode", "slow").unwrap_err();
        assert!(
            err.to_string().contains("allowed values fast, exact"),
            "{err}"
        );
        let b = spec(ParamType::Bool);
        assert_eq!(b.parse("flag", "yes").unwrap(), ParamValue::Bool(true));
    }

    #[test]
    fn inconsistent_definitions_are_rejected() {
        let s = ParamSpec {
            min: Some(2.0),
            max: Some(1.0),
            default: ParamValue::Float(1.5),
            ..spec(ParamType::Float)
        };
        assert!(
            s.validate("x")
                .unwrap_err()
                .to_string()
                .contains("above max")
        );
        let s = ParamSpec {
            min: Some(0.0),
            default: ParamValue::Float(-1.0),
            ..spec(ParamType::Float)
        };
        assert!(
            s.validate("x")
                .unwrap_err()
                .to_string()
                .contains("default fails")
        );
        assert!(spec(ParamType::Enum).validate("x").is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("set", "premium-2").is_ok());
        assert!(check_name("set", "").is_err());
        assert!(check_name("set", "a b").is_err());
        assert!(check_name("set", &"x".repeat(200)).is_err());
    }
}
