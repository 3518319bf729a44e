//! What every request carries once it is accepted: the peer, the host it named, its Space and its locale.
//!
//! The Space comes from the Host header (HTTP/1.1) or the `:authority` (HTTP/2, which has no Host),
//! lower-cased, port removed — never from the account or the path.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::error::HttpError;
use super::locale::Locale;
use crate::cache::TtlCache;
use crate::db::Db;
use crate::model::Space;

/// The TCP peer of a request and whether it came over TLS; inserted by the transport.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// Remote address.
    pub addr: SocketAddr,
    /// True when the connection is TLS.
    pub secure: bool,
}

impl Peer {
    /// The client IP as upstream compares it: IPv4-mapped IPv6 addresses in their IPv4 form.
    pub fn ip(&self) -> IpAddr {
        match self.addr.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        }
    }
}

/// The host the request named (lower-cased, without port) and the scheme, for building URLs.
#[derive(Clone, Debug)]
pub struct ClientHost {
    /// Host without port.
    pub host: String,
    /// Host as sent (with port when there was one), for absolute URLs.
    pub authority: String,
    /// `http` or `https`.
    pub scheme: &'static str,
}

impl ClientHost {
    /// `scheme://authority`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

/// The Space resolved for the request.
#[derive(Clone, Debug)]
pub struct RequestSpace(pub Arc<Space>);

/// Hosts kept at most; an unknown-host scan starts the cache over rather than growing it.
const HOSTS_CACHED: usize = 10_000;

/// Resolves hosts to Spaces with a short cache, so the hot path does not query the database per request.
pub struct SpaceDirectory {
    db: Db,
    root_host: Option<String>,
    cache: TtlCache<String, Option<Arc<Space>>>,
}

impl SpaceDirectory {
    /// A directory over `db`; entries are trusted for `ttl` (changes are visible after at most that long).
    pub fn new(db: Db, ttl: Duration, root_host: Option<String>) -> Self {
        SpaceDirectory {
            db,
            root_host,
            cache: TtlCache::new(ttl, HOSTS_CACHED),
        }
    }

    /// The Space of `host`, if one is configured.
    pub async fn by_host(&self, host: &str) -> Result<Option<Arc<Space>>, sqlx::Error> {
        self.cache
            .get(host, || {
                let (db, host) = (self.db.clone(), host.to_owned());
                async move { Ok(Space::find_by_host(&db, &host).await?.map(Arc::new)) }
            })
            .await
    }

    /// Forgets every cached entry (after a Space is created, changed or deleted in this process).
    pub fn invalidate(&self) {
        self.cache.clear();
    }
}

/// Splits `host[:port]` / `[v6]:port` and lower-cases the host.
pub fn strip_port(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.find(']') {
            Some(end) => &authority[..end + 2],
            None => authority,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    host.to_ascii_lowercase()
}

/// Middleware: resolves the request Space (404 `Host not configured`), the client host and the locale.
pub async fn resolve_space(
    State(directory): State<Arc<SpaceDirectory>>,
    mut request: Request,
    next: Next,
) -> Response {
    let secure = request
        .extensions()
        .get::<Peer>()
        .is_some_and(|peer| peer.secure);
    let authority = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let host = strip_port(&authority);
    let space = match directory.by_host(&host).await {
        Ok(Some(space)) => space,
        Ok(None) => {
            return HttpError::message(StatusCode::NOT_FOUND, "Host not configured").into_response()
        }
        Err(error) => return HttpError::internal(error).into_response(),
    };
    if let Some(root) = &directory.root_host {
        if !space.host.ends_with(root.as_str()) {
            return HttpError::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "The APP_ROOT_HOST configured does not match with the current root domain",
            )
            .into_response();
        }
    }
    let locale = Locale::from_headers(request.headers());
    let extensions = request.extensions_mut();
    extensions.insert(ClientHost {
        host,
        authority,
        scheme: if secure { "https" } else { "http" },
    });
    extensions.insert(RequestSpace(space));
    extensions.insert(locale);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(
            strip_port("Flexiapi.Example.org:443"),
            "flexiapi.example.org"
        );
        assert_eq!(strip_port("example.org"), "example.org");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("127.0.0.1:80"), "127.0.0.1");
    }

    #[test]
    fn mapped_ipv4() {
        let peer = Peer {
            addr: "[::ffff:10.0.0.1]:5".parse().unwrap(),
            secure: false,
        };
        assert_eq!(peer.ip().to_string(), "10.0.0.1");
    }
}
