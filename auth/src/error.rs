//! The one error type of the auth crate, mapped once to upstream's answers.

use axum::response::{IntoResponse, Response};
use flexiapi_core::http::{HttpError, ValidationErrors};
use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::StatusCode;

/// Why a request is not let through.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 401 with upstream's message and the challenges to send (DIGEST lines, or a Bearer challenge).
    #[error("unauthenticated: {message}")]
    Unauthenticated {
        message: &'static str,
        challenges: Vec<HeaderValue>,
    },
    /// 401 for a rejected JWT: empty body, one Bearer challenge.
    #[error("invalid bearer token")]
    InvalidBearer { challenge: HeaderValue },
    /// 404 for a `From` naming no account.
    #[error("unknown account")]
    UnknownAccount,
    /// 422 for a malformed DIGEST `Authorization` field.
    #[error("invalid digest field")]
    InvalidDigestField(ValidationErrors),
    /// 403 with upstream's message.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 429 after too many failed attempts from one IP.
    #[error("too many failed attempts")]
    TooManyAttempts { retry_after_seconds: u64 },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Setup problem (unreadable public key…).
    #[error("{0}")]
    Setup(String),
}

impl AuthError {
    /// True for failures that count towards the per-IP failure limit.
    pub(crate) fn is_credential_failure(&self) -> bool {
        matches!(
            self,
            AuthError::Unauthenticated { .. }
                | AuthError::InvalidBearer { .. }
                | AuthError::UnknownAccount
                | AuthError::InvalidDigestField(_)
        )
    }

    /// The HTTP answer.
    pub fn into_http(self) -> HttpError {
        match self {
            AuthError::Unauthenticated {
                message,
                challenges,
            } => challenges.into_iter().fold(
                HttpError::message(StatusCode::UNAUTHORIZED, message),
                |error, challenge| error.with_header(WWW_AUTHENTICATE, challenge),
            ),
            AuthError::InvalidBearer { challenge } => {
                HttpError::empty(StatusCode::UNAUTHORIZED).with_header(WWW_AUTHENTICATE, challenge)
            }
            AuthError::UnknownAccount => HttpError::not_found("Account"),
            AuthError::InvalidDigestField(errors) => HttpError::validation(errors),
            AuthError::Forbidden(message) => HttpError::message(StatusCode::FORBIDDEN, message),
            AuthError::TooManyAttempts {
                retry_after_seconds,
            } => HttpError::message(StatusCode::TOO_MANY_REQUESTS, "Too Many Attempts.")
                .with_header(RETRY_AFTER, HeaderValue::from(retry_after_seconds)),
            AuthError::Database(error) => HttpError::internal(error),
            AuthError::Setup(message) => HttpError::internal(message),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        self.into_http().into_response()
    }
}
