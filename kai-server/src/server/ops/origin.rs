//! Matching of a browser's `Origin` header against `KAI_ALLOWED_ORIGINS`. CORS and the
//! `/mcp` endpoint both use [`AllowedOrigins`], so they allow exactly the same origins.
//!
//! An origin is a scheme, a host and a port (RFC 6454). An entry of the list is one of:
//!
//! - `scheme://host:port`: that origin only;
//! - `scheme://host`: the scheme's default port (80 for http, 443 for https), because
//!   browsers leave the default port out of the `Origin` header;
//! - `scheme://host:*`: the host on any port, for local tools on changing ports;
//! - `null`: the `Origin: null` of sandboxed frames and `file:` pages;
//! - `*`: every origin.
//!
//! Schemes and hosts compare case-insensitively. A trailing `/` on an entry is ignored.

use axum::http::Uri;

/// The allowed browser origins, parsed once from `KAI_ALLOWED_ORIGINS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    any: bool,
    entries: Vec<Pattern>,
}

/// One parsed entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Null,
    Origin {
        scheme: String,
        host: String,
        port: Port,
    },
}

/// The port part of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// `:*`
    Any,
    /// An explicit port, or the scheme's default port. `None` for a scheme without a
    /// default port and no port given, which matches only an origin without a port.
    Exact(Option<u16>),
}

/// The scheme, host and port of an `Origin` header.
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl AllowedOrigins {
    /// Parses the entries of `KAI_ALLOWED_ORIGINS`. An entry that is not an origin can
    /// never match, so it is left out with a warning that names it.
    pub fn parse(entries: &[String]) -> Self {
        let mut allowed = Self {
            any: false,
            entries: Vec::new(),
        };
        for entry in entries {
            let trimmed = entry.trim().trim_end_matches('/');
            if trimmed == "*" {
                allowed.any = true;
                continue;
            }
            match parse_pattern(trimmed) {
                Some(pattern) => allowed.entries.push(pattern),
                None => tracing::warn!(
                    origin = %entry.escape_debug(),
                    "KAI_ALLOWED_ORIGINS entry is not an origin such as \
                     `https://app.example.com` or `http://localhost:*`; it is ignored"
                ),
            }
        }
        allowed
    }

    /// Returns whether the list contains `*`, so every origin is allowed.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Returns whether the value of an `Origin` header is allowed. A malformed value is
    /// allowed only when the list contains `*`.
    pub fn allows(&self, origin: &str) -> bool {
        if self.any {
            return true;
        }
        if origin.trim().eq_ignore_ascii_case("null") {
            return self.entries.contains(&Pattern::Null);
        }
        let Some(origin) = parse_origin(origin) else {
            return false;
        };
        self.entries.iter().any(|pattern| match pattern {
            Pattern::Null => false,
            Pattern::Origin { scheme, host, port } => {
                *scheme == origin.scheme
                    && *host == origin.host
                    && match port {
                        Port::Any => true,
                        Port::Exact(port) => *port == origin.port,
                    }
            }
        })
    }
}

/// Parses one entry other than `*`.
fn parse_pattern(entry: &str) -> Option<Pattern> {
    if entry.eq_ignore_ascii_case("null") {
        return Some(Pattern::Null);
    }
    if let Some(base) = entry.strip_suffix(":*") {
        // `http://host:80:*` names a port twice.
        if has_port(base) {
            return None;
        }
        let origin = parse_origin(base)?;
        return Some(Pattern::Origin {
            scheme: origin.scheme,
            host: origin.host,
            port: Port::Any,
        });
    }
    let origin = parse_origin(entry)?;
    Some(Pattern::Origin {
        scheme: origin.scheme,
        host: origin.host,
        port: Port::Exact(origin.port),
    })
}

/// Returns whether a `scheme://authority` string spells out a port.
fn has_port(value: &str) -> bool {
    value
        .parse::<Uri>()
        .ok()
        .and_then(|uri| uri.authority().and_then(|authority| authority.port_u16()))
        .is_some()
}

/// Parses `scheme://host[:port]`, filling in the scheme's default port. Returns `None`
/// for anything else: no scheme or host, user information, a path, a query or a fragment.
fn parse_origin(value: &str) -> Option<Origin> {
    let value = value.trim();
    let uri = value.parse::<Uri>().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let has_path = !matches!(uri.path(), "" | "/");
    let has_extra = uri.query().is_some() || value.contains('#');
    if authority.as_str().contains('@') || has_path || has_extra {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let port = authority.port_u16().or(match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    });
    Some(Origin { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str]) -> AllowedOrigins {
        let entries: Vec<String> = entries.iter().map(|entry| (*entry).to_owned()).collect();
        AllowedOrigins::parse(&entries)
    }

    #[test]
    fn default_list_allows_local_ports() {
        let origins = allowed(&["http://localhost:*", "http://127.0.0.1:*"]);
        for origin in [
            "http://localhost:3000",
            "http://localhost",
            "http://LOCALHOST:5173",
            "http://127.0.0.1:8080",
        ] {
            assert!(origins.allows(origin), "{origin}");
        }
        for origin in [
            "https://localhost:3000",
            "http://localhost.evil.example:3000",
            "http://[::1]:3000",
            "null",
            "not an origin",
            "",
        ] {
            assert!(!origins.allows(origin), "{origin}");
        }
        assert!(!origins.allows_any());
    }

    #[test]
    fn portless_entry_means_default_port() {
        let origins = allowed(&["https://app.example.com", "http://localhost/"]);
        assert!(origins.allows("https://app.example.com"));
        assert!(origins.allows("https://app.example.com:443"));
        assert!(origins.allows("HTTPS://App.Example.com"));
        assert!(!origins.allows("https://app.example.com:8443"));
        assert!(!origins.allows("http://app.example.com"));
        assert!(origins.allows("http://localhost"));
        assert!(origins.allows("http://localhost:80"));
        assert!(!origins.allows("http://localhost:3000"));
    }

    #[test]
    fn explicit_port_matches_only_itself() {
        let origins = allowed(&["http://localhost:3000", "http://[::1]:8080"]);
        assert!(origins.allows("http://localhost:3000"));
        assert!(!origins.allows("http://localhost:3001"));
        assert!(!origins.allows("http://localhost"));
        assert!(origins.allows("http://[::1]:8080"));
        assert!(!origins.allows("http://[::1]:8081"));
    }

    #[test]
    fn star_and_null_entries() {
        let any = allowed(&["https://app.example.com", "*"]);
        assert!(any.allows_any());
        assert!(any.allows("https://anything.example"));
        assert!(any.allows("null"));

        let null = allowed(&["null"]);
        assert!(null.allows("null"));
        assert!(null.allows("NULL"));
        assert!(!null.allows("http://localhost"));
        assert!(!allowed(&["http://localhost:*"]).allows("null"));
    }

    #[test]
    fn malformed_entries_are_ignored() {
        let origins = allowed(&[
            "localhost:3000",
            "http://localhost:80:*",
            "https://app.example.com/path",
            "http://user@localhost",
            "",
            "http://127.0.0.1:*",
        ]);
        assert_eq!(origins.entries.len(), 1, "{origins:?}");
        assert!(origins.allows("http://127.0.0.1:9000"));
        assert!(!origins.allows("http://localhost:80"));
        assert!(!origins.allows("https://app.example.com"));
    }

    #[test]
    fn origins_with_paths_or_credentials_never_match() {
        let origins = allowed(&["http://localhost:*"]);
        for origin in [
            "http://localhost:3000/page",
            "http://user@localhost:3000",
            "http://localhost:3000?x=1",
        ] {
            assert!(!origins.allows(origin), "{origin}");
        }
    }
}
