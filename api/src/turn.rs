//! `GET /api/accounts/me/services/turn`: ephemeral TURN credentials (draft-uberti-behave-turn-rest-00),
//! the shared-secret scheme coturn implements with `use-auth-secret` / `static-auth-secret`.

use axum::response::{IntoResponse, Response};
use axum::{extract::State, Json};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::StatusCode;
use serde_json::json;
use sha1::Sha1;

use flexiapi_core::http::HttpError;

use crate::error::ApiResult;
use crate::state::AppState;
use crate::token;

/// `username` = `<expiry unix time>:<16 random chars>`, `password` = base64(HMAC-SHA1(secret, username)).
pub fn credentials_for(secret: &str, expiry: i64, random: &str) -> (String, String) {
    let username = format!("{expiry}:{random}");
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// Answers credentials valid for `COTURN_SESSION_TTL_MINUTES`, or 404 when TURN is not configured.
pub async fn credentials(State(state): State<AppState>) -> ApiResult<Response> {
    let coturn = &state.config.coturn;
    let (Some(host), Some(secret)) = (&coturn.server_host, &coturn.static_auth_secret) else {
        return Err(not_configured().into());
    };
    if coturn.session_ttl_minutes == 0 {
        return Err(not_configured().into());
    }
    let ttl = coturn.session_ttl_minutes * 60;
    let expiry = chrono::Utc::now().timestamp() + ttl as i64;
    let (username, password) = credentials_for(secret, expiry, &token::alphanumeric(16));
    Ok(Json(json!({
        "username": username,
        "password": password,
        "ttl": ttl,
        "uris": [format!("turn:{host}")],
    }))
    .into_response())
}

fn not_configured() -> HttpError {
    HttpError::message(StatusCode::NOT_FOUND, "No TURN service configured")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_api_vector() {
        // HMAC-SHA1("secret", "1767312000:AbCdEfGhIjKlMnOp"), computed independently with Python's hmac.
        let (username, password) = credentials_for("secret", 1767312000, "AbCdEfGhIjKlMnOp");
        assert_eq!(username, "1767312000:AbCdEfGhIjKlMnOp");
        assert_eq!(password, PYTHON_VECTOR);
    }

    const PYTHON_VECTOR: &str = "ob5xO6DCz9DETZ0h7fX+rx0Kkrw=";
}
