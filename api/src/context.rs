//! The request context handlers need besides their input: Space, locale, client address, user agent, host.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use flexiapi_core::http::{ClientHost, HttpError, Locale, Peer, RequestSpace};
use flexiapi_core::model::Space;

use crate::account::store::Origin;

/// Everything `resolve_space` and the transport put in the extensions, in one extractor.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The request Space (from the Host).
    pub space: Arc<Space>,
    /// Message language.
    pub locale: Locale,
    /// Client IP as upstream stores it.
    pub ip: String,
    /// True when the request came over TLS.
    pub secure: bool,
    /// `User-Agent` header, if any.
    pub user_agent: Option<String>,
    /// Host and scheme, for absolute URLs.
    pub host: ClientHost,
}

impl Ctx {
    /// IP and user agent to store next to tokens and codes.
    pub fn origin(&self) -> Origin {
        Origin {
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }

    /// The request's user agent, or the space name when there is none (upstream's fallback).
    pub fn user_agent_or_space(&self) -> String {
        self.user_agent
            .clone()
            .unwrap_or_else(|| self.space.name.clone())
    }

    /// Absolute URL of `path` on the request's scheme and host.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.host.base_url(), path)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let extensions = &parts.extensions;
        let space = extensions
            .get::<RequestSpace>()
            .map(|s| s.0.clone())
            .ok_or_else(|| HttpError::internal("route served without resolve_space"))?;
        let peer = extensions.get::<Peer>().copied();
        let host = extensions
            .get::<ClientHost>()
            .cloned()
            .unwrap_or_else(|| ClientHost {
                host: space.host.clone(),
                authority: space.host.clone(),
                scheme: "http",
            });
        Ok(Ctx {
            space,
            locale: extensions.get::<Locale>().copied().unwrap_or_default(),
            ip: peer.map_or_else(|| "127.0.0.1".to_owned(), |p| p.ip().to_string()),
            secure: peer.is_some_and(|p| p.secure),
            user_agent: parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            host,
        })
    }
}
