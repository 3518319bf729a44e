//! SMS sending through a configurable HTTP provider (`FLEXIAPI_SMS_URL`).
//!
//! Request shape (documented for operators): `POST <FLEXIAPI_SMS_URL>` with
//! `Content-Type: application/json` and body `{"to": "+33612345678", "message": "…", "sender": "<space name>"}`.
//! Any 2xx answer counts as sent. Without the setting the SMS is only logged (upstream logs when OVH is not
//! configured) and the endpoint still succeeds.

use serde_json::json;

use crate::state::AppState;

/// Why an SMS could not be handed to the provider.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// Network or HTTP failure.
    #[error("SMS provider request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// The provider refused.
    #[error("SMS provider answered {0}")]
    Refused(reqwest::StatusCode),
}

/// Sends `message` to `to`; Ok when sent or when no provider is configured.
pub async fn send(state: &AppState, sender: &str, to: &str, message: &str) -> Result<(), SmsError> {
    let Some(url) = &state.config.sms_url else {
        tracing::info!(
            to,
            "no SMS provider configured (FLEXIAPI_SMS_URL): SMS not sent"
        );
        return Ok(());
    };
    let response = state
        .http
        .post(url)
        .json(&json!({"to": to, "message": message, "sender": sender}))
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(SmsError::Refused(response.status()));
    }
    Ok(())
}
