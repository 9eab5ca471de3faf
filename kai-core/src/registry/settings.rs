//! The registry's settings: default set, similarity threshold and history retention.

use crate::error::{Error, Result};

/// The registry's settings for resolving, suggesting and purging.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrySettings {
    /// The set used when nothing else is asked for (`DEFAULT_PARAMETER_SET`, `standard`).
    pub default_set: String,
    /// The smallest cosine similarity at which another material's results count as
    /// evidence for a suggestion (`SIMILARITY_THRESHOLD`, 0.75).
    pub similarity_threshold: f32,
    /// Days that superseded versions are kept (`PARAM_HISTORY_RETENTION_DAYS`, 90).
    pub retention_days: u32,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            default_set: "standard".to_owned(),
            similarity_threshold: 0.75,
            retention_days: 90,
        }
    }
}

impl RegistrySettings {
    /// Reads the settings from the process environment.
    ///
    /// # Errors
    ///
    /// As [`RegistrySettings::from_vars`].
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the settings from `var`, which returns a variable's value; unset or empty
    /// variables keep their defaults.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the variable when a value is malformed or
    /// out of range.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut settings = Self::default();
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(name) = set("DEFAULT_PARAMETER_SET") {
            super::schema::check_name("DEFAULT_PARAMETER_SET", &name)?;
            settings.default_set = name;
        }
        if let Some(value) = set("SIMILARITY_THRESHOLD") {
            settings.similarity_threshold = value
                .parse::<f32>()
                .ok()
                .filter(|t| t.is_finite() && (-1.0..=1.0).contains(t))
                .ok_or_else(|| {
                    Error::invalid(
                        "SIMILARITY_THRESHOLD",
                        format!("must be a cosine similarity from -1 to 1, got `{value}`"),
                    )
                })?;
        }
        if let Some(value) = set("PARAM_HISTORY_RETENTION_DAYS") {
            settings.retention_days = value
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=36_500).contains(d))
                .ok_or_else(|| {
                    Error::invalid(
                        "PARAM_HISTORY_RETENTION_DAYS",
                        format!("must be a whole number of days from 1 to 36500, got `{value}`"),
                    )
                })?;
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<RegistrySettings> {
        RegistrySettings::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(settings(&[]).unwrap(), RegistrySettings::default());
        let s = settings(&[
            ("DEFAULT_PARAMETER_SET", "premium"),
            ("SIMILARITY_THRESHOLD", "0.9"),
            ("PARAM_HISTORY_RETENTION_DAYS", "7"),
        ])
        .unwrap();
        assert_eq!(s.default_set, "premium");
        assert_eq!(s.similarity_threshold, 0.9);
        assert_eq!(s.retention_days, 7);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("SIMILARITY_THRESHOLD", "high"),
            ("SIMILARITY_THRESHOLD", "1.5"),
            ("PARAM_HISTORY_RETENTION_DAYS", "0"),
            ("PARAM_HISTORY_RETENTION_DAYS", "-3"),
            ("DEFAULT_PARAMETER_SET", "two words"),
        ] {
            let err = settings(&[(name, value)]).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
