//! Push notifications through Flexisip's `flexisip_pusher` executable (`APP_FLEXISIP_PUSHER_PATH`).
//!
//! The executable is run directly (no shell, so values cannot inject commands) with
//! `--pn-provider P --pn-param X --pn-prid Y [--customPayload JSON] [--call-id ID]
//! [--apple-push-type T] [--key FIREBASE_KEY]`; exit status 0 means sent. No path configured → not sent.

use std::process::Stdio;

use flexiapi_core::Config;

/// One push to send.
#[derive(Clone, Debug, Default)]
pub struct Push {
    /// `apns.dev`, `apns` or `fcm`.
    pub pn_provider: String,
    /// Provider parameter (team id / project id); empty when not given.
    pub pn_param: String,
    /// Device token; empty when not given.
    pub pn_prid: String,
    /// JSON payload (`{"token":"…"}` for token pushes).
    pub payload: Option<String>,
    /// SIP call id for call pushes.
    pub call_id: Option<String>,
    /// `background`, `message` or `call` (chooses the Apple push type).
    pub kind: String,
}

/// Why a push was not sent.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// `APP_FLEXISIP_PUSHER_PATH` is not set.
    #[error("pusher path not configured")]
    NotConfigured,
    /// The executable could not be started.
    #[error("cannot run the pusher: {0}")]
    Spawn(#[from] std::io::Error),
    /// The executable reported a failure.
    #[error("pusher failed ({status}): {output}")]
    Failed { status: String, output: String },
}

/// The Firebase key for a `pn_param` from `APP_FLEXISIP_PUSHER_FIREBASE_KEYSMAP` (`param:key` pairs,
/// separated by commas or spaces).
fn firebase_key(config: &Config, pn_param: &str) -> Option<String> {
    config
        .flexisip_pusher_firebase_keysmap
        .as_deref()?
        .split([',', ' '])
        .filter_map(|pair| pair.split_once(':'))
        .find(|(param, _)| *param == pn_param)
        .map(|(_, key)| key.to_owned())
}

/// Runs the pusher for `push`.
pub async fn send(config: &Config, push: &Push) -> Result<(), PushError> {
    let Some(path) = &config.flexisip_pusher_path else {
        tracing::error!("pusher path not configured (APP_FLEXISIP_PUSHER_PATH)");
        return Err(PushError::NotConfigured);
    };
    let mut command = tokio::process::Command::new(path);
    command
        .arg("--pn-provider")
        .arg(&push.pn_provider)
        .arg("--pn-param")
        .arg(&push.pn_param)
        .arg("--pn-prid")
        .arg(&push.pn_prid);
    if let Some(payload) = &push.payload {
        command.arg("--customPayload").arg(payload);
    }
    if let Some(call_id) = &push.call_id {
        command.arg("--call-id").arg(call_id);
    }
    if matches!(push.pn_provider.as_str(), "apns" | "apns.dev") {
        let apple_type = match push.kind.as_str() {
            "message" => Some("RemoteWithMutableContent"),
            "call" => Some("PushKit"),
            "background" => Some("Background"),
            _ => None,
        };
        if let Some(apple_type) = apple_type {
            command.arg("--apple-push-type").arg(apple_type);
        }
    }
    if let Some(key) = firebase_key(config, &push.pn_param) {
        command.arg("--key").arg(key);
    }
    let output = command
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(PushError::Failed {
            status: output.status.to_string(),
            output: String::from_utf8_lossy(&output.stderr).into_owned()
                + &String::from_utf8_lossy(&output.stdout),
        })
    }
}

/// `POST /api/push_notification` (user): validates like upstream, then runs the pusher; 503 when not sent.
pub async fn notify(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    ctx: crate::context::Ctx,
    input: crate::input::Input,
) -> crate::error::ApiResult<axum::response::Response> {
    use flexiapi_core::http::validation::Validator;
    use flexiapi_core::http::{text_response, HttpError};
    use http::StatusCode;

    let call_id = regex::Regex::new(r"^[A-Za-z0-9_\-~@.]+$").expect("static regex");
    let mut v = Validator::new(&input.0, ctx.locale);
    crate::tokens::validate_push_fields(&mut v);
    v.field("type")
        .required()
        .one_of(&["background", "message", "call"]);
    // Present-but-null fails too (upstream's rule runs on null values).
    v.field("call_id").check(
        |value| value.as_str().is_some_and(|s| call_id.is_match(s)),
        "The call id should only contain only alphanumeric, tilde and dashes characters",
    );
    v.finish()?;
    let push = Push {
        pn_provider: input.text("pn_provider").unwrap_or_default(),
        pn_param: input.text("pn_param").unwrap_or_default(),
        pn_prid: input.text("pn_prid").unwrap_or_default(),
        payload: None,
        call_id: input.text("call_id"),
        kind: input.text("type").unwrap_or_default(),
    };
    match send(&state.config, &push).await {
        Ok(()) => Ok(text_response(StatusCode::OK, "")),
        Err(error) => {
            tracing::error!(%error, "push notification not sent");
            Err(HttpError::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Push notification not sent",
            )
            .into())
        }
    }
}
