//! Upstream's answers for unknown routes (404) and wrong methods (405), in its JSON shape.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::error::HttpError;

/// 404 `{"message":"The route api/xyz could not be found."}`.
pub async fn route_not_found(request: Request) -> Response {
    let path = request.uri().path().trim_start_matches('/');
    HttpError::message(
        StatusCode::NOT_FOUND,
        format!("The route {path} could not be found."),
    )
    .into_response()
}

/// Wraps a whole router so unknown routes and wrong methods answer in upstream's shape.
///
/// The 405 rewrite must see the router's finished response (axum adds `Allow` at the very end), hence
/// the router is nested as a fallback service and the middleware wraps that.
pub fn with_upstream_errors(router: axum::Router) -> axum::Router {
    axum::Router::new()
        .fallback_service(router.fallback(route_not_found))
        .layer(axum::middleware::from_fn(method_not_allowed))
}

/// Turns the router's bare 405 into upstream's message naming the supported methods.
pub async fn method_not_allowed(request: Request, next: Next) -> Response {
    // The URI clone shares its bytes: nothing is copied unless the answer is a 405.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allowed = response
        .headers()
        .get(http::header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = uri.path().trim_start_matches('/');
    let mut error = HttpError::message(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "The {method} method is not supported for route {path}. Supported methods: {allowed}."
        ),
    )
    .into_response();
    if let Ok(value) = http::HeaderValue::from_str(&allowed) {
        error.headers_mut().insert(http::header::ALLOW, value);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::post;
    use axum::Router;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn upstream_messages() {
        let app = with_upstream_errors(
            Router::new().route("/api/statistics/calls", post(|| async { "1" })),
        );
        let response = app
            .clone()
            .oneshot(
                Request::get("/api/statistics/calls")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body["message"],
            "The GET method is not supported for route api/statistics/calls. Supported methods: POST."
        );
        let response = app
            .oneshot(Request::get("/api/xyz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            br#"{"message":"The route api/xyz could not be found."}"#
        );
    }
}
