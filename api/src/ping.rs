//! `GET /api/ping`.

use axum::response::Response;
use http::StatusCode;

use flexiapi_core::http::text_response;

/// Answers the text `pong` (SpaceCheck already ran).
pub async fn ping() -> Response {
    text_response(StatusCode::OK, "pong")
}
