//! The server's settings, read once from the environment at start-up.
//!
//! Every variable is checked here, so a typo in a deployment fails the start with a
//! message naming the variable instead of surfacing on the first request.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use kai_core::catalog::StoreOptions;
use kai_core::db::StorageConfig;
use kai_core::image::ImageLimits;
use kai_core::registry::RegistrySettings;
use kai_core::{DeviceRequest, Error, ModelStore, Result};

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines.
    Text,
}

/// A fixed-window request budget: at most `limit` requests per `window` and client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: u32,
    /// Length of the window.
    pub window: Duration,
}

/// The signing secret of bearer tokens. Its `Debug` output hides the value so the config
/// can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(String);

impl JwtSecret {
    /// Returns the secret itself, for the token check only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// Everything the server reads from its environment.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address and port to listen on (`KAI_BIND_ADDRESS`, `MCP_SERVER_PORT`).
    pub listen: SocketAddr,
    /// Model directory (`MODEL_DIR`).
    pub models: ModelStore,
    /// Device request (`KAI_DEVICE`, `GPU_ENABLED`).
    pub device: DeviceRequest,
    /// Store folder (`KAI_DATA_DIR`, else `./kai-data`).
    pub store: PathBuf,
    /// Storage backend of the catalog and registry records.
    pub storage: StorageConfig,
    /// Registry settings (`DEFAULT_PARAMETER_SET`, `SIMILARITY_THRESHOLD`,
    /// `PARAM_HISTORY_RETENTION_DAYS`).
    pub registry: RegistrySettings,
    /// Image size limits (`KAI_MAX_IMAGE_BYTES`, `KAI_MAX_IMAGE_PIXELS`).
    pub image_limits: ImageLimits,
    /// `LOG_LEVEL`: a level or a tracing filter directive.
    pub log_level: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// Whether `/mcp` is served (`ENABLE_AGENT_API`).
    pub enable_agent_api: bool,
    /// Maximum number of loaded models (`MODEL_CACHE_SIZE`).
    pub model_cache_size: usize,
    /// Maximum requests grouped into one model call (`MAX_BATCH_SIZE`). 1 turns batching
    /// off.
    pub max_batch_size: usize,
    /// How long the first request of a batch waits for others (`KAI_BATCH_WINDOW_MS`).
    pub batch_window: Duration,
    /// Bearer-token secret (`JWT_SECRET`). `None` serves without authentication.
    pub jwt_secret: Option<JwtSecret>,
    /// Budget of all other `/api` routes (`DEFAULT_RATE_LIMIT`, `DEFAULT_RATE_WINDOW_MS`).
    pub default_rate: RateLimit,
    /// Budget of model routes (`ML_RATE_LIMIT`, `ML_RATE_WINDOW_MS`).
    pub ml_rate: RateLimit,
    /// Budget of `/mcp` (`AGENT_RATE_LIMIT`, `AGENT_RATE_WINDOW_MS`).
    pub agent_rate: RateLimit,
    /// `Host` names `/mcp` accepts (`KAI_ALLOWED_HOSTS`). `*` accepts any.
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed by CORS and `/mcp` (`KAI_ALLOWED_ORIGINS`). `*` allows
    /// any. Requests without an `Origin` header are not browser requests and pass.
    pub allowed_origins: Vec<String>,
    /// Request images decoded at once (`KAI_MAX_CONCURRENT_DECODES`, default the number
    /// of CPUs, at least 2). A decoded image takes up to 4 bytes per pixel of
    /// `KAI_MAX_IMAGE_PIXELS`, so this bounds the memory that uploads can claim.
    pub max_concurrent_decodes: usize,
    /// Largest request body in bytes (`KAI_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// How long a readiness component may take before it counts as failed
    /// (`KAI_READY_TIMEOUT_MS`).
    pub ready_timeout: Duration,
    /// How long shutdown waits for in-flight requests (`KAI_SHUTDOWN_TIMEOUT_MS`).
    pub shutdown_timeout: Duration,
    /// Reconstruction jobs run at once (`KAI_RECON_WORKERS`, default 1). Each job already
    /// spreads its work over every CPU, so more workers mainly interleave jobs.
    pub recon_workers: usize,
    /// Maximum photos per reconstruction job (`KAI_RECON_MAX_IMAGES`, default 200).
    pub recon_max_images: usize,
}

impl ServerConfig {
    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming the variable whose value is invalid or
    /// contradicts another.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `var`, which returns a variable's value. Empty
    /// values count as unset.
    ///
    /// # Errors
    ///
    /// As [`ServerConfig::from_env`].
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let host: IpAddr = parse(&get, "KAI_BIND_ADDRESS", IpAddr::from([0, 0, 0, 0]))?;
        let port: u16 = parse(&get, "MCP_SERVER_PORT", 8000)?;
        let models = match get("MODEL_DIR") {
            Some(dir) => ModelStore::new(dir),
            None => ModelStore::new(ModelStore::default_root()),
        };
        let device = DeviceRequest::from_settings(
            get("KAI_DEVICE").as_deref(),
            get("GPU_ENABLED").as_deref(),
        )?;
        let store =
            get("KAI_DATA_DIR").map_or_else(|| StoreOptions::default_root(None), PathBuf::from);
        let storage = StorageConfig::from_vars(get)?;
        let registry = RegistrySettings::from_vars(get)?;
        let image_limits = ImageLimits::from_settings(
            get("KAI_MAX_IMAGE_BYTES").as_deref(),
            get("KAI_MAX_IMAGE_PIXELS").as_deref(),
        )?;
        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(Error::invalid(
                    "LOG_FORMAT",
                    format!("must be `json` or `text`, got `{other}`"),
                ));
            }
        };
        let max_batch_size = positive(&get, "MAX_BATCH_SIZE", 16)?;
        if max_batch_size > 256 {
            return Err(Error::invalid(
                "MAX_BATCH_SIZE",
                format!("must be at most 256, got {max_batch_size}"),
            ));
        }
        Ok(Self {
            listen: SocketAddr::new(host, port),
            models,
            device,
            store,
            storage,
            registry,
            image_limits,
            log_level: log_level(&get)?,
            log_format,
            enable_agent_api: boolean(&get, "ENABLE_AGENT_API", true)?,
            model_cache_size: model_cache_size(&get)?,
            max_batch_size,
            batch_window: millis(&get, "KAI_BATCH_WINDOW_MS", 5, true)?,
            jwt_secret: jwt_secret(&var)?,
            default_rate: rate(&get, "DEFAULT", 100)?,
            ml_rate: rate(&get, "ML", 10)?,
            agent_rate: rate(&get, "AGENT", 30)?,
            allowed_hosts: list(
                &get,
                "KAI_ALLOWED_HOSTS",
                &["localhost", "127.0.0.1", "::1"],
            ),
            allowed_origins: list(
                &get,
                "KAI_ALLOWED_ORIGINS",
                &["http://localhost:*", "http://127.0.0.1:*"],
            ),
            max_concurrent_decodes: positive(
                &get,
                "KAI_MAX_CONCURRENT_DECODES",
                std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            )?,
            max_body_bytes: positive(&get, "KAI_MAX_BODY_BYTES", 32 << 20)?,
            ready_timeout: millis(&get, "KAI_READY_TIMEOUT_MS", 2_000, false)?,
            shutdown_timeout: millis(&get, "KAI_SHUTDOWN_TIMEOUT_MS", 30_000, false)?,
            recon_workers: recon_workers(&get)?,
            recon_max_images: recon_max_images(&get)?,
        })
    }

    /// Returns the folder of the reconstruction jobs: `recon_jobs` in the store folder.
    pub fn recon_root(&self) -> PathBuf {
        self.store.join("recon_jobs")
    }

    /// Returns the settings of the catalog this server opens.
    pub fn store_options(&self, device: kai_core::Device) -> StoreOptions {
        let mut options = StoreOptions::new(&self.store, self.models.clone(), device);
        options.limits = self.image_limits;
        if let Some(url) = &self.storage.catalog {
            options = options.with_database(url.clone());
        }
        options
    }
}

/// Reads `JWT_SECRET`. Unlike other variables, a set but blank value is an error: it most
/// likely comes from an empty key in a Kubernetes Secret, and treating it as unset would
/// serve without authentication.
fn jwt_secret(var: &impl Fn(&str) -> Option<String>) -> Result<Option<JwtSecret>> {
    match var("JWT_SECRET") {
        None => Ok(None),
        Some(secret) if secret.trim().is_empty() => Err(Error::invalid(
            "JWT_SECRET",
            "is set but empty; give the signing secret, or unset the variable to serve \
             without authentication",
        )),
        Some(secret) => Ok(Some(JwtSecret(secret))),
    }
}

/// Reads `MODEL_CACHE_SIZE` (default 5). The catalog keeps its text and image model
/// loaded, so a cache of one would evict one of them on every recognition or search.
fn model_cache_size(get: &impl Fn(&str) -> Option<String>) -> Result<usize> {
    let size: usize = parse(get, "MODEL_CACHE_SIZE", 5)?;
    if size < 2 {
        return Err(Error::invalid(
            "MODEL_CACHE_SIZE",
            format!("must be at least 2 (the catalog's text and image models), got {size}"),
        ));
    }
    Ok(size)
}

/// Maximum of `KAI_RECON_WORKERS`. Every running job keeps its photos' features in memory
/// and shares the CPUs with the others, so a larger value is most likely a typo.
const MAX_RECON_WORKERS: usize = 64;

/// Reads `KAI_RECON_WORKERS` (default 1, at most 64).
fn recon_workers(get: &impl Fn(&str) -> Option<String>) -> Result<usize> {
    let workers = positive(get, "KAI_RECON_WORKERS", 1)?;
    if workers > MAX_RECON_WORKERS {
        return Err(Error::invalid(
            "KAI_RECON_WORKERS",
            format!("must be at most {MAX_RECON_WORKERS}, got {workers}"),
        ));
    }
    Ok(workers)
}

/// Reads `KAI_RECON_MAX_IMAGES` (default 200, at least the 2 photos of one image pair).
fn recon_max_images(get: &impl Fn(&str) -> Option<String>) -> Result<usize> {
    let max_images: usize = parse(
        get,
        "KAI_RECON_MAX_IMAGES",
        kai_core::recon::jobs::DEFAULT_MAX_IMAGES,
    )?;
    let min = kai_core::recon::jobs::MIN_IMAGES;
    if max_images < min {
        return Err(Error::invalid(
            "KAI_RECON_MAX_IMAGES",
            format!("must be at least {min} (one image pair), got {max_images}"),
        ));
    }
    Ok(max_images)
}

/// Reads `LOG_LEVEL` (default `info`), checking it now so a typo fails the start instead
/// of silently logging at another level.
fn log_level(get: &impl Fn(&str) -> Option<String>) -> Result<String> {
    let level = get("LOG_LEVEL").unwrap_or_else(|| "info".to_owned());
    super::ops::logging::parse_filter(&level)?;
    Ok(level)
}

/// Parses `name` with [`std::str::FromStr`], keeping `default` when it is unset.
fn parse<T>(get: &impl Fn(&str) -> Option<String>, name: &str, default: T) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|err| Error::invalid(name, format!("cannot parse `{value}`: {err}"))),
    }
}

/// Parses a whole number of at least 1.
fn positive(get: &impl Fn(&str) -> Option<String>, name: &str, default: usize) -> Result<usize> {
    let value: usize = parse(get, name, default)?;
    if value == 0 {
        return Err(Error::invalid(name, "must be at least 1, got 0"));
    }
    Ok(value)
}

/// Parses a duration in milliseconds. `zero_ok` allows 0.
fn millis(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
    zero_ok: bool,
) -> Result<Duration> {
    let value: u64 = parse(get, name, default)?;
    if value == 0 && !zero_ok {
        return Err(Error::invalid(
            name,
            "must be at least 1 millisecond, got 0",
        ));
    }
    Ok(Duration::from_millis(value))
}

/// Parses `true`/`false` (also `1`/`0`, `yes`/`no`).
fn boolean(get: &impl Fn(&str) -> Option<String>, name: &str, default: bool) -> Result<bool> {
    let Some(value) = get(name) else {
        return Ok(default);
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::invalid(
            name,
            format!("must be true or false, got `{value}`"),
        )),
    }
}

/// Reads `{PREFIX}_RATE_LIMIT` and `{PREFIX}_RATE_WINDOW_MS` (default 60 s).
fn rate(get: &impl Fn(&str) -> Option<String>, prefix: &str, limit: usize) -> Result<RateLimit> {
    let limit_name = format!("{prefix}_RATE_LIMIT");
    let limit = positive(get, &limit_name, limit)?;
    let limit = u32::try_from(limit)
        .map_err(|_| Error::invalid(&limit_name, format!("must be below 2^32, got {limit}")))?;
    let window = millis(get, &format!("{prefix}_RATE_WINDOW_MS"), 60_000, false)?;
    Ok(RateLimit { limit, window })
}

/// Reads a comma-separated list, trimming entries and dropping empty ones.
fn list(get: &impl Fn(&str) -> Option<String>, name: &str, default: &[&str]) -> Vec<String> {
    match get(name) {
        None => default.iter().map(|s| (*s).to_owned()).collect(),
        Some(value) => value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<ServerConfig> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ServerConfig::from_vars(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_match_the_design() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.listen.port(), 8000);
        assert_eq!(config.model_cache_size, 5);
        assert_eq!(config.max_batch_size, 16);
        assert!(config.enable_agent_api);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.default_rate.limit, 100);
        assert_eq!(config.ml_rate.limit, 10);
        assert_eq!(config.agent_rate.limit, 30);
        assert_eq!(config.agent_rate.window, Duration::from_secs(60));
        assert!(config.jwt_secret.is_none());
        assert_eq!(config.recon_workers, 1);
        assert_eq!(config.recon_max_images, 200);
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (name, value) in [
            ("MCP_SERVER_PORT", "eighty"),
            ("MODEL_CACHE_SIZE", "0"),
            ("MODEL_CACHE_SIZE", "1"),
            ("JWT_SECRET", " "),
            ("KAI_MAX_CONCURRENT_DECODES", "0"),
            ("MAX_BATCH_SIZE", "1000"),
            ("ENABLE_AGENT_API", "maybe"),
            ("LOG_FORMAT", "xml"),
            ("ML_RATE_WINDOW_MS", "0"),
            ("KAI_MAX_BODY_BYTES", "-1"),
            ("LOG_LEVEL", "verbose"),
            ("KAI_RECON_WORKERS", "0"),
            ("KAI_RECON_WORKERS", "65"),
            ("KAI_RECON_MAX_IMAGES", "1"),
            ("KAI_RECON_MAX_IMAGES", "many"),
        ] {
            let err = config(&[(name, value)]).expect_err(name).to_string();
            assert!(err.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let config = config(&[("JWT_SECRET", "hunter2-hunter2")]).expect("valid");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
