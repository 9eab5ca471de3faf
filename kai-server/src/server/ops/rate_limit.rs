//! Fixed-window rate limits per route class and client.
//!
//! Each class ([`RouteClass`]) has its own budget from the configuration, and each client
//! (the peer IP address) its own window in each class, so a burst of model calls does not
//! use up a client's budget for catalog reads. Time is an argument of
//! [`RateLimiter::check`], so tests drive windows with instants of their choosing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::route_class::RouteClass;
use crate::server::config::{RateLimit, ServerConfig};
use crate::server::error::ApiError;

/// Maximum number of clients tracked per class. At an estimated 50 bytes an entry, a full
/// table takes a few MiB. When it is full, new clients are rejected until the next sweep
/// frees entries.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// The outcome of one request's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The request is within the budget, and `remaining` more fit in the current window.
    Allowed {
        /// Requests the client may still send in this window.
        remaining: u32,
    },
    /// The request is over the budget and may be retried after `retry_after`.
    Limited {
        /// Time until the client's window ends (or, when the table is full, until the
        /// next sweep).
        retry_after: Duration,
    },
}

/// The budget of one route class: a window per client, kept in a bounded table.
#[derive(Debug)]
pub struct RateLimiter {
    budget: RateLimit,
    capacity: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    windows: HashMap<IpAddr, Window>,
    // Time of the next removal of expired windows, or `None` before the first request.
    next_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl RateLimiter {
    /// Creates a limiter that tracks at most [`DEFAULT_CAPACITY`] clients.
    pub fn new(budget: RateLimit) -> Self {
        Self::with_capacity(budget, DEFAULT_CAPACITY)
    }

    /// Creates a limiter that tracks at most `capacity` clients (at least 1). A budget
    /// with a limit of 0 rejects every request.
    pub fn with_capacity(budget: RateLimit, capacity: usize) -> Self {
        Self {
            budget,
            capacity: capacity.max(1),
            table: Mutex::new(Table::default()),
        }
    }

    /// Returns the budget.
    pub fn budget(&self) -> RateLimit {
        self.budget
    }

    /// Counts one request of `client` at `now` and returns whether it is allowed.
    ///
    /// IPv6 clients are grouped by their /64 prefix, because one host usually has a
    /// whole /64 and could otherwise pick a fresh address per request.
    pub fn check(&self, client: IpAddr, now: Instant) -> Decision {
        let key = client_key(client);
        let window = self.budget.window;
        if self.budget.limit == 0 {
            return Decision::Limited {
                retry_after: window,
            };
        }
        // A panic while the lock was held leaves at worst one stale count behind.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.sweep_if_due(now, window);
        if let Some(entry) = table.windows.get_mut(&key) {
            let ends = entry.start + window;
            if now >= ends {
                *entry = Window {
                    start: now,
                    count: 1,
                };
                return Decision::Allowed {
                    remaining: self.budget.limit - 1,
                };
            }
            if entry.count >= self.budget.limit {
                return Decision::Limited {
                    retry_after: ends - now,
                };
            }
            entry.count += 1;
            return Decision::Allowed {
                remaining: self.budget.limit - entry.count,
            };
        }
        if table.windows.len() >= self.capacity {
            let next_sweep = table.next_sweep.unwrap_or(now + window);
            return Decision::Limited {
                retry_after: next_sweep.saturating_duration_since(now),
            };
        }
        table.windows.insert(
            key,
            Window {
                start: now,
                count: 1,
            },
        );
        Decision::Allowed {
            remaining: self.budget.limit - 1,
        }
    }

    /// Returns the number of clients in the table.
    pub fn tracked_clients(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .windows
            .len()
    }
}

impl Table {
    /// Removes the windows that have ended, once per window length, so the cost of a
    /// sweep is spread over all requests of a window.
    fn sweep_if_due(&mut self, now: Instant, window: Duration) {
        match self.next_sweep {
            Some(due) if now < due => {}
            _ => {
                self.windows.retain(|_, entry| now < entry.start + window);
                self.next_sweep = Some(now + window);
            }
        }
    }
}

/// Returns the table key of a client: IPv4 addresses (also IPv4-mapped IPv6 ones) as they
/// are, IPv6 addresses cut to their /64 prefix.
fn client_key(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// The limiters of the three limited route classes.
#[derive(Debug)]
pub struct RateLimits {
    default: RateLimiter,
    ml: RateLimiter,
    agent: RateLimiter,
    /// The body limit, up to which a rejected request's body is read and dropped.
    body_limit: usize,
}

impl RateLimits {
    /// Creates the limiters from `DEFAULT_RATE_LIMIT`, `ML_RATE_LIMIT` and
    /// `AGENT_RATE_LIMIT` with their windows.
    pub fn from_config(config: &ServerConfig) -> Self {
        Self {
            default: RateLimiter::new(config.default_rate),
            ml: RateLimiter::new(config.ml_rate),
            agent: RateLimiter::new(config.agent_rate),
            body_limit: config.max_body_bytes,
        }
    }

    /// Returns the limiter of `class`, or `None` for [`RouteClass::Open`].
    pub fn limiter(&self, class: RouteClass) -> Option<&RateLimiter> {
        match class {
            RouteClass::Open => None,
            RouteClass::Ml => Some(&self.ml),
            RouteClass::Agent => Some(&self.agent),
            RouteClass::Default => Some(&self.default),
        }
    }
}

/// Rejects a request with 429 and `Retry-After` when the client is over its class's
/// budget.
pub async fn enforce(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let class = RouteClass::of(request.uri().path());
    let Some(limiter) = limits.limiter(class) else {
        return next.run(request).await;
    };
    // NOTE: behind a proxy or a Kubernetes ingress every client has the proxy's address,
    // so they all share one budget. A server started without connect info (only possible
    // in embedding code, not in `serve`) does the same.
    let client = client_ip(&request).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    match limiter.check(client, Instant::now()) {
        Decision::Allowed { .. } => next.run(request).await,
        Decision::Limited { retry_after } => {
            let response = rejection(class, limiter.budget(), retry_after).into_response();
            super::body_limit::discard(request, limits.body_limit).await;
            response
        }
    }
}

/// Returns the peer address of a request: the listener's `ConnectInfo`, or the
/// `MockConnectInfo` that tests put in its place.
pub fn client_ip(request: &Request) -> Option<IpAddr> {
    let extensions = request.extensions();
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
        .or_else(|| {
            extensions
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip())
        })
}

/// Builds the 429 of a request over the budget of `class`.
fn rejection(class: RouteClass, budget: RateLimit, retry_after: Duration) -> ApiError {
    // Retry-After counts whole seconds, so round up: retrying early would fail again.
    let seconds = retry_after.as_millis().div_ceil(1000);
    let seconds = u64::try_from(seconds).unwrap_or(u64::MAX).max(1);
    let variable = match class {
        RouteClass::Ml => "ML_RATE_LIMIT",
        RouteClass::Agent => "AGENT_RATE_LIMIT",
        RouteClass::Default | RouteClass::Open => "DEFAULT_RATE_LIMIT",
    };
    ApiError::rate_limited(
        format!(
            "rate limit exceeded: at most {} {} requests per {} ms per client \
             ({variable}); retry after {seconds} s",
            budget.limit,
            class.name(),
            budget.window.as_millis(),
        ),
        seconds,
    )
}
