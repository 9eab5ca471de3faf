//! The server's log subscriber: JSON lines or text (`LOG_FORMAT`) filtered by `LOG_LEVEL`,
//! written to standard output.

use std::io::IsTerminal;
use std::str::FromStr;

use kai_core::{Error, Result};
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::server::config::{LogFormat, ServerConfig};

/// Installs the process-wide log subscriber from `LOG_LEVEL` and `LOG_FORMAT`.
///
/// An invalid `LOG_LEVEL` does not stop the server: it logs at `info` and writes a warning
/// about the value. When a subscriber is already installed (code embedding the server), that one
/// stays.
pub fn init(config: &ServerConfig) {
    let (filter, invalid) = match parse_filter(&config.log_level) {
        Ok(filter) => (filter, None),
        Err(err) => (EnvFilter::new("info"), Some(err)),
    };
    let ansi = config.log_format == LogFormat::Text && std::io::stdout().is_terminal();
    let installed = build(config.log_format, filter, ansi, std::io::stdout)
        .try_init()
        .is_ok();
    if let Some(err) = invalid {
        tracing::warn!(error = %err, "logging at info instead");
    }
    if !installed {
        tracing::debug!(
            "a log subscriber is already installed; LOG_LEVEL and LOG_FORMAT are not applied"
        );
    }
}

/// Builds the subscriber of `config` writing to `writer`, without installing it. Tests use
/// it to capture the server's log lines.
pub fn subscriber<W>(config: &ServerConfig, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let filter = parse_filter(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    build(config.log_format, filter, false, writer)
}

/// Parses `LOG_LEVEL`: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or a
/// `tracing` filter directive such as `info,kai_core=debug`.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] naming `LOG_LEVEL` for a value that is neither. A
/// single word must be a level: as a directive it would name a target and silence
/// everything else.
pub fn parse_filter(value: &str) -> Result<EnvFilter> {
    let value = value.trim();
    let is_directive = value.contains(['=', ',', '[']);
    if !is_directive {
        return LevelFilter::from_str(value)
            .map(|level| {
                let filter = EnvFilter::default().add_directive(level.into());
                // rmcp writes several info lines per MCP request, but the request log already
                // has one. A directive (`info,rmcp=info`) still shows them.
                match "rmcp=warn".parse() {
                    Ok(quiet) if level == LevelFilter::INFO => filter.add_directive(quiet),
                    _ => filter,
                }
            })
            .map_err(|_| {
                Error::invalid(
                    "LOG_LEVEL",
                    format!(
                        "`{value}` is not a level; use error, warn, info, debug, trace, off \
                         or a directive such as `info,kai_core=debug`"
                    ),
                )
            });
    }
    EnvFilter::try_new(value).map_err(|err| {
        Error::invalid(
            "LOG_LEVEL",
            format!("`{value}` is not a valid filter directive: {err}"),
        )
    })
}

/// Builds the formatting subscriber of `format`.
fn build<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        // Event fields at the top level and the enclosing span (with the request id)
        // under `span`, the layout log collectors index without extra parsing rules.
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_parse() {
        for value in [
            "info",
            "DEBUG",
            " warn ",
            "off",
            "info,kai_core=debug",
            "kai_server=trace",
        ] {
            assert!(parse_filter(value).is_ok(), "{value}");
        }
    }

    #[test]
    fn invalid_levels_name_the_variable() {
        for value in ["verbose", "infoo", "info,kai_core=loud"] {
            let err = parse_filter(value).expect_err(value).to_string();
            assert!(err.contains("LOG_LEVEL"), "{value}: {err}");
            assert!(err.contains(value), "{value}: {err}");
        }
    }
}
