//! Upstream's HTTP conventions, shared by the account API and the statistics ingest.
//!
//! - [`error`]: one error type mapped once to FlexiAPI's status codes and bodies.
//! - [`locale`]: `Accept-Language` → English or French messages.
//! - [`validation`]: a small Laravel-style validator producing the exact 422 shape.
//! - [`pagination`]: Laravel's length-aware paginator JSON.
//! - [`context`]: the request Space (from Host / `:authority`), the peer address, the locale.

pub mod context;
pub mod error;
pub mod fallback;
pub mod locale;
pub mod pagination;
pub mod validation;

pub use context::{ClientHost, Peer, RequestSpace, SpaceDirectory};
pub use error::{text_response, HttpError};
pub use locale::Locale;
pub use validation::{ValidationErrors, Validator};
