//! The one error type of the HTTP edge, answered in upstream's shapes.

use axum::response::{IntoResponse, Response};
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

use super::validation::ValidationErrors;

/// Content type upstream uses for every non-JSON body (scalars, plain-text auth errors).
pub const TEXT_HTML: &str = "text/html; charset=UTF-8";

/// A non-happy answer: status, body in one of upstream's shapes, extra headers (challenges, cookies).
#[derive(Debug, thiserror::Error)]
#[error("{status}: {body}")]
pub struct HttpError {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
    /// Headers added to the answer (e.g. `WWW-Authenticate`).
    pub headers: HeaderMap,
}

/// The shapes an error body takes upstream.
#[derive(Debug)]
pub enum ErrorBody {
    /// `{"message": "…"}`.
    Message(String),
    /// Any JSON document (422 bodies, exceptions to the usual shape).
    Json(serde_json::Value),
    /// Plain text sent as `text/html; charset=UTF-8`.
    Text(String),
    /// No body.
    Empty,
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorBody::Message(m) | ErrorBody::Text(m) => f.write_str(m),
            ErrorBody::Json(v) => write!(f, "{v}"),
            ErrorBody::Empty => Ok(()),
        }
    }
}

impl HttpError {
    /// `{"message": message}` with `status`.
    pub fn message(status: StatusCode, message: impl Into<String>) -> Self {
        HttpError {
            status,
            body: ErrorBody::Message(message.into()),
            headers: HeaderMap::new(),
        }
    }

    /// A plain-text body (upstream's auth middlewares answer this way).
    pub fn text(status: StatusCode, text: impl Into<String>) -> Self {
        HttpError {
            status,
            body: ErrorBody::Text(text.into()),
            headers: HeaderMap::new(),
        }
    }

    /// Any JSON body.
    pub fn json(status: StatusCode, body: serde_json::Value) -> Self {
        HttpError {
            status,
            body: ErrorBody::Json(body),
            headers: HeaderMap::new(),
        }
    }

    /// An empty body.
    pub fn empty(status: StatusCode) -> Self {
        HttpError {
            status,
            body: ErrorBody::Empty,
            headers: HeaderMap::new(),
        }
    }

    /// 404 for a missing record, upstream's model-not-found body.
    pub fn not_found(model: &str) -> Self {
        Self::message(
            StatusCode::NOT_FOUND,
            format!("No query results for model [App\\{model}]."),
        )
    }

    /// Laravel's 404 for a route-bound model lookup that failed:
    /// `{"message":"No query results for model [App\\<model>] <id>"}`.
    pub fn model_not_found(model: &str, id: impl std::fmt::Display) -> Self {
        Self::message(
            StatusCode::NOT_FOUND,
            format!("No query results for model [App\\{model}] {id}"),
        )
    }

    /// Upstream's bare `abort(404)`: `{"message":""}`.
    pub fn bare_not_found() -> Self {
        Self::message(StatusCode::NOT_FOUND, "")
    }

    /// 403 `{"message":"Unauthorized area"}`.
    pub fn unauthorized_area() -> Self {
        Self::message(StatusCode::FORBIDDEN, "Unauthorized area")
    }

    /// 422 with Laravel's `{"message","errors"}` body.
    pub fn validation(errors: ValidationErrors) -> Self {
        Self::json(StatusCode::UNPROCESSABLE_ENTITY, errors.to_json())
    }

    /// 400 `{"message":"Invalid JSON: …"}`, checked before authentication.
    pub fn invalid_json(detail: impl std::fmt::Display) -> Self {
        Self::message(StatusCode::BAD_REQUEST, format!("Invalid JSON: {detail}"))
    }

    /// 500 `{"message":"Server Error"}`; the cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::message(StatusCode::INTERNAL_SERVER_ERROR, "Server Error")
    }

    /// Adds a header (several calls with the same name append lines).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

impl From<sqlx::Error> for HttpError {
    fn from(error: sqlx::Error) -> Self {
        HttpError::internal(error)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            ErrorBody::Message(message) => (
                self.status,
                axum::Json(serde_json::json!({ "message": message })),
            )
                .into_response(),
            ErrorBody::Json(value) => (self.status, axum::Json(value)).into_response(),
            ErrorBody::Text(text) => text_response(self.status, text),
            ErrorBody::Empty => self.status.into_response(),
        };
        for (name, value) in self.headers.iter() {
            response.headers_mut().append(name, value.clone());
        }
        response
    }
}

/// A `text/html; charset=UTF-8` answer, as Laravel sends PHP scalars (`1`, `pong`, a key).
pub fn text_response(status: StatusCode, body: impl Into<String>) -> Response {
    let mut response = (status, body.into()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_HTML));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response) -> (StatusCode, String, HeaderMap) {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap(), headers)
    }

    #[tokio::test]
    async fn shapes() {
        let (status, body, _) =
            body_of(HttpError::message(StatusCode::FORBIDDEN, "Account blocked").into_response())
                .await;
        assert_eq!(status, 403);
        assert_eq!(body, r#"{"message":"Account blocked"}"#);

        let (status, body, headers) = body_of(
            HttpError::text(StatusCode::UNAUTHORIZED, "Invalid API Key")
                .with_header(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Digest a"),
                )
                .with_header(
                    http::header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Digest b"),
                )
                .into_response(),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body, "Invalid API Key");
        assert_eq!(headers[CONTENT_TYPE], TEXT_HTML);
        assert_eq!(
            headers
                .get_all(http::header::WWW_AUTHENTICATE)
                .iter()
                .count(),
            2
        );

        let (status, body, _) = body_of(HttpError::internal("secret detail").into_response()).await;
        assert_eq!(status, 500);
        assert!(!body.contains("secret"));
    }
}
