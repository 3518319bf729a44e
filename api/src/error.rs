//! The one error type of the account API, mapped once to upstream's HTTP answers.

use axum::response::{IntoResponse, Response};
use flexiapi_core::http::HttpError;

/// Everything an API handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An answer in upstream's shape (validation 422, 403, 404…), sent as is.
    #[error(transparent)]
    Http(Box<HttpError>),
    /// The database failed: 500 `Server Error`, cause logged.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Mail could not be built or delivered.
    #[error("mail: {0}")]
    Mail(String),
    /// Start-up problem (bad setting).
    #[error("setup: {0}")]
    Setup(String),
}

impl ApiError {
    /// The HTTP answer of this error.
    pub fn into_http(self) -> HttpError {
        match self {
            ApiError::Http(error) => *error,
            other => HttpError::internal(other),
        }
    }
}

impl From<HttpError> for ApiError {
    fn from(error: HttpError) -> Self {
        ApiError::Http(Box::new(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_http().into_response()
    }
}

/// Result of API handlers and domain functions.
pub type ApiResult<T> = Result<T, ApiError>;
