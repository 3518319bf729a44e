//! Request bodies as upstream's pipeline sees them.
//!
//! [`json_body`] is a middleware wrapping every `/api` route, *outside* the authentication route layers, so that
//! a malformed body answers 400 `Invalid JSON: …` before authentication (auth.md §1.1). It parses the body
//! once, applies Laravel's TrimStrings (except password fields) and ConvertEmptyStringsToNull, and leaves the
//! result in the request extensions, where the [`Input`] extractor picks it up.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;
use serde_json::{Map, Value};

use flexiapi_core::http::HttpError;

/// Largest accepted API body; bigger bodies get 413.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Keys TrimStrings leaves untouched.
const UNTRIMMED: [&str; 3] = ["password", "password_confirmation", "current_password"];

/// The normalised JSON body of the request (`{}` when there was none).
#[derive(Clone, Debug)]
pub struct Input(pub Value);

impl Input {
    /// The value of a top-level key, None when absent or null.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// A top-level string value.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// A scalar as text (numbers and booleans as PHP would cast them), None when absent/null/array.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(true) => Some("1".into()),
            Value::Bool(false) => Some("0".into()),
            _ => None,
        }
    }

    /// True when the key was sent (even as null).
    pub fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Input {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Input>()
            .cloned()
            .unwrap_or_else(|| Input(Value::Object(Map::new()))))
    }
}

/// Middleware: 400 on a malformed JSON body, else the normalised body as an [`Input`] extension.
pub async fn json_body(request: Request, next: Next) -> Response {
    // A request without a body (most GETs) has nothing to parse: the extractor's default `{}` is its input.
    if axum::body::HttpBody::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return HttpError::message(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large")
                .into_response()
        }
    };
    let is_json = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("/json") || v.contains("+json"))
    };
    // Laravel reads a body only when it is declared JSON, and validates it only for JSON clients.
    let declared_json = is_json(http::header::CONTENT_TYPE);
    let expects_json = is_json(http::header::ACCEPT);
    let mut input = Value::Object(Map::new());
    if !bytes.iter().all(u8::is_ascii_whitespace) && (declared_json || expects_json) {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) if declared_json => input = normalise(value, None),
            Ok(_) => {}
            Err(error) => {
                let detail = if std::str::from_utf8(&bytes).is_err() {
                    "Malformed UTF-8 characters, possibly incorrectly encoded"
                } else {
                    tracing::debug!(%error, "invalid JSON body");
                    "Syntax error"
                };
                return HttpError::invalid_json(detail).into_response();
            }
        }
    }
    parts.extensions.insert(Input(input));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// TrimStrings then ConvertEmptyStringsToNull, recursively; `key` is the key holding `value`.
fn normalise(value: Value, key: Option<&str>) -> Value {
    match value {
        Value::String(s) => {
            let s = if key.is_some_and(|k| UNTRIMMED.contains(&k)) {
                s
            } else {
                s.trim().to_owned()
            };
            if s.is_empty() {
                Value::Null
            } else {
                Value::String(s)
            }
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|v| normalise(v, None)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = normalise(v, Some(&k));
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trims_and_nulls() {
        let value = normalise(
            json!({"username": "  bob ", "password": " pw ", "email": "", "blank": "  ", "nested": {"a": " x "}, "n": 3}),
            None,
        );
        assert_eq!(
            value,
            json!({"username": "bob", "password": " pw ", "email": null, "blank": null, "nested": {"a": "x"}, "n": 3})
        );
    }
}
