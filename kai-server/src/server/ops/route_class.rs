//! The operational class of a request path, which decides its rate-limit budget and
//! whether it needs a bearer token.

/// The class of a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// Probes and documents (`/health`, `/ready`, `/metrics`, `/openapi.json`) and every
    /// path outside `/api` and `/mcp`: never rate-limited, never authenticated, so
    /// Kubernetes probes and Prometheus scrapes keep working under load.
    Open,
    /// Routes that run a model or load one: `/api/classify-texture`, `/api/recognize`,
    /// `/api/embed/*`, `/api/quality`, `/api/materials/search` and
    /// `/api/models/{name}/load`, and `/api/recon/jobs`, whose POST starts a
    /// reconstruction (`ML_RATE_LIMIT`). Polling a job (`/api/recon/jobs/{id}`) is a
    /// default route.
    Ml,
    /// The Model Context Protocol endpoint `/mcp` (`AGENT_RATE_LIMIT`).
    Agent,
    /// Every other `/api` route (`DEFAULT_RATE_LIMIT`).
    Default,
}

impl RouteClass {
    /// Classifies a request path (without its query string).
    ///
    /// The path is compared as sent, segment by segment, like the router matches it, so a
    /// path that reaches a route always gets that route's class.
    pub fn of(path: &str) -> Self {
        let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
        match segments.next() {
            Some("mcp") => Self::Agent,
            Some("api") => {
                let rest: Vec<&str> = segments.collect();
                if is_model_route(&rest) {
                    Self::Ml
                } else {
                    Self::Default
                }
            }
            _ => Self::Open,
        }
    }

    /// Returns whether requests of this class need a bearer token when `JWT_SECRET` is
    /// set.
    pub fn needs_token(self) -> bool {
        self != Self::Open
    }

    /// Returns the class's name as metrics and logs show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Ml => "ml",
            Self::Agent => "agent",
            Self::Default => "default",
        }
    }
}

/// Returns whether the segments after `/api` name a route that runs or loads a model.
fn is_model_route(segments: &[&str]) -> bool {
    match segments {
        ["classify-texture" | "recognize" | "quality"] => true,
        ["embed", kind] => !kind.is_empty(),
        ["materials", "search"] => true,
        ["models", name, "load"] => !name.is_empty(),
        // The class follows the path alone, so listing the jobs shares the budget of
        // submitting one.
        ["recon", "jobs"] => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_their_class() {
        for (path, class) in [
            ("/health", RouteClass::Open),
            ("/ready", RouteClass::Open),
            ("/metrics", RouteClass::Open),
            ("/openapi.json", RouteClass::Open),
            ("/", RouteClass::Open),
            ("/apix/recognize", RouteClass::Open),
            ("/mcp", RouteClass::Agent),
            ("/mcp/", RouteClass::Agent),
            ("/api/classify-texture", RouteClass::Ml),
            ("/api/recognize", RouteClass::Ml),
            ("/api/embed/text", RouteClass::Ml),
            ("/api/embed/image", RouteClass::Ml),
            ("/api/quality", RouteClass::Ml),
            ("/api/materials/search", RouteClass::Ml),
            ("/api/models/all-minilm-l6-v2/load", RouteClass::Ml),
            ("/api/recon/jobs", RouteClass::Ml),
            (
                "/api/recon/jobs/1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b",
                RouteClass::Default,
            ),
            (
                "/api/recon/jobs/1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b/files/points.ply",
                RouteClass::Default,
            ),
            ("/api/models/all-minilm-l6-v2/unload", RouteClass::Default),
            ("/api/models", RouteClass::Default),
            ("/api/materials", RouteClass::Default),
            ("/api/materials/oak-1", RouteClass::Default),
            ("/api/parameters", RouteClass::Default),
            ("/api/recognize/extra", RouteClass::Default),
            ("/api", RouteClass::Default),
        ] {
            assert_eq!(RouteClass::of(path), class, "{path}");
        }
    }

    #[test]
    fn only_open_paths_skip_the_token() {
        assert!(!RouteClass::Open.needs_token());
        assert!(RouteClass::Ml.needs_token());
        assert!(RouteClass::Agent.needs_token());
        assert!(RouteClass::Default.needs_token());
    }
}
