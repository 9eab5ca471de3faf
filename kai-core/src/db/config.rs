//! The storage configuration: the backend of the catalog and that of the registry,
//! read from `KAI_DATABASE_URL`, `PARAM_STORAGE_TYPE` and `PARAM_DB_CONNECTION`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// A PostgreSQL connection URL. Its `Debug` and `Display` hide the password, so the URL
/// can appear in logs and errors.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
}

impl DatabaseUrl {
    /// Parses a `postgres://` or `postgresql://` URL; `name` is the variable or option
    /// it came from, for the error message.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming `name` when the URL is not a PostgreSQL URL.
    pub fn parse(name: &str, url: &str) -> Result<Self> {
        let url = url.trim();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            // The value is not echoed: a malformed value may contain a password in a form
            // that redaction does not recognise.
            return Err(Error::invalid(
                name,
                "is not a PostgreSQL URL; expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            ));
        }
        let config = ::postgres::Config::from_str(url).map_err(|err| {
            Error::invalid(name, format!("cannot parse `{}`: {err}", redact(url)))
        })?;
        // NOTE: connections are unencrypted; kai has no TLS support yet.
        if config.get_ssl_mode() == ::postgres::config::SslMode::Require {
            return Err(Error::invalid(
                name,
                format!(
                    "`{}` asks for TLS (sslmode=require), which kai does not support yet; \
                     reach the server over a private network or a local TLS proxy",
                    redact(url)
                ),
            ));
        }
        Ok(Self {
            url: url.to_owned(),
        })
    }

    /// Returns the URL with its password, for connecting.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.url))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Replaces the password of `postgres://user:password@host` and every `password=`
/// query parameter with `***`.
fn redact(url: &str) -> String {
    let (address, query) = match url.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (url, None),
    };
    let mut redacted = match address.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => address.to_owned(),
            },
            None => address.to_owned(),
        },
        None => address.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => parameter.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

/// The database of one part of kai.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The SQLite file `kai.db` in the store folder.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(DatabaseUrl),
}

/// The backends of the catalog and the registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageConfig {
    /// The catalog's database, `None` for the store folder's SQLite file.
    pub catalog: Option<DatabaseUrl>,
    /// The registry's database, `None` for the store folder's SQLite file.
    pub registry: Option<DatabaseUrl>,
}

impl StorageConfig {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    ///
    /// As [`StorageConfig::from_vars`].
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the configuration from `var`, which returns a variable's value.
    ///
    /// `KAI_DATABASE_URL` moves both the catalog and the registry to PostgreSQL.
    /// `PARAM_STORAGE_TYPE=postgres` with `PARAM_DB_CONNECTION` moves the registry alone
    /// (or to another database than the catalog's).
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the variable when a value is malformed or
    /// contradicts another, such as `PARAM_STORAGE_TYPE=sqlite` with `KAI_DATABASE_URL`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let catalog = set("KAI_DATABASE_URL")
            .map(|url| DatabaseUrl::parse("KAI_DATABASE_URL", &url))
            .transpose()?;
        let connection = set("PARAM_DB_CONNECTION")
            .map(|url| DatabaseUrl::parse("PARAM_DB_CONNECTION", &url))
            .transpose()?;
        let storage_type = set("PARAM_STORAGE_TYPE").map(|v| v.trim().to_ascii_lowercase());
        let registry = match storage_type.as_deref() {
            None => connection.or_else(|| catalog.clone()),
            Some("postgres" | "postgresql") => {
                Some(connection.or_else(|| catalog.clone()).ok_or_else(|| {
                    Error::invalid(
                        "PARAM_STORAGE_TYPE",
                        "is `postgres` but neither PARAM_DB_CONNECTION nor KAI_DATABASE_URL \
                         gives the database URL",
                    )
                })?)
            }
            Some("sqlite") => {
                for (name, given) in [
                    ("PARAM_DB_CONNECTION", connection.is_some()),
                    ("KAI_DATABASE_URL", catalog.is_some()),
                ] {
                    if given {
                        return Err(Error::invalid(
                            "PARAM_STORAGE_TYPE",
                            format!(
                                "is `sqlite` but {name} names a PostgreSQL database; \
                                 unset one of them"
                            ),
                        ));
                    }
                }
                None
            }
            Some(other) => {
                return Err(Error::invalid(
                    "PARAM_STORAGE_TYPE",
                    format!("must be `sqlite` or `postgres`, got `{other}`"),
                ));
            }
        };
        Ok(Self { catalog, registry })
    }

    /// Returns the registry's backend for the store folder `root`.
    pub fn registry_backend(&self, root: &Path) -> Backend {
        backend(self.registry.as_ref(), root)
    }

    /// Returns the catalog's backend for the store folder `root`.
    pub fn catalog_backend(&self, root: &Path) -> Backend {
        backend(self.catalog.as_ref(), root)
    }
}

fn backend(url: Option<&DatabaseUrl>, root: &Path) -> Backend {
    url.map_or_else(
        || Backend::Sqlite(root.join("kai.db")),
        |url| Backend::Postgres(url.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<StorageConfig> {
        StorageConfig::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_to_sqlite() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.registry_backend(Path::new("s")),
            Backend::Sqlite(PathBuf::from("s/kai.db"))
        );
        assert_eq!(c.catalog, None);
    }

    #[test]
    fn database_url_moves_both() {
        let c = config(&[("KAI_DATABASE_URL", "postgres://u@h/db")]).unwrap();
        assert!(c.catalog.is_some());
        assert_eq!(c.registry, c.catalog);
    }

    #[test]
    fn param_connection_moves_registry_alone() {
        let c = config(&[
            ("PARAM_STORAGE_TYPE", "postgres"),
            ("PARAM_DB_CONNECTION", "postgresql://u@h/params"),
        ])
        .unwrap();
        assert_eq!(c.catalog, None);
        assert_eq!(c.registry.unwrap().expose(), "postgresql://u@h/params");
    }

    #[test]
    fn conflicting_values_name_the_variable() {
        let err = config(&[
            ("PARAM_STORAGE_TYPE", "sqlite"),
            ("KAI_DATABASE_URL", "postgres://u@h/db"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("PARAM_STORAGE_TYPE"), "{err}");
        let err = config(&[("PARAM_STORAGE_TYPE", "postgres")]).unwrap_err();
        assert!(err.to_string().contains("PARAM_DB_CONNECTION"), "{err}");
        let err = config(&[("PARAM_STORAGE_TYPE", "mysql")]).unwrap_err();
        assert!(err.to_string().contains("`mysql`"), "{err}");
        let err = config(&[("KAI_DATABASE_URL", "mysql://u@h/db")]).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid KAI_DATABASE_URL"),
            "{err}"
        );
    }

    #[test]
    fn tls_requirement_is_rejected_clearly() {
        let err = DatabaseUrl::parse("KAI_DATABASE_URL", "postgres://u@h/db?sslmode=require")
            .unwrap_err();
        assert!(err.to_string().contains("sslmode=require"), "{err}");
        assert!(DatabaseUrl::parse("x", "postgres://u@h/db?sslmode=disable").is_ok());
    }

    #[test]
    fn password_in_any_form_never_shows() {
        let url = DatabaseUrl::parse("x", "postgres://kai@db/kai?sslmode=disable&password=s3cret")
            .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://kai@db/kai?sslmode=disable&password=***"
        );
        for bad in [
            "host=db user=kai password=s3cret dbname=kai",
            "kai:s3cret@db:5432/kai",
        ] {
            let err = DatabaseUrl::parse("KAI_DATABASE_URL", bad).unwrap_err();
            assert!(!err.to_string().contains("s3cret"), "{err}");
            assert!(err.to_string().contains("KAI_DATABASE_URL"), "{err}");
        }
    }

    #[test]
    fn password_never_shows() {
        let url = DatabaseUrl::parse("x", "postgres://kai:s3cret@db:5432/kai").unwrap();
        assert_eq!(url.to_string(), "postgres://kai:***@db:5432/kai");
        assert!(!format!("{url:?}").contains("s3cret"));
        let err = DatabaseUrl::parse("x", "postgres://kai:s3cret@db:notaport/kai").unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
