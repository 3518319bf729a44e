//! `POST /api/messages` (api-accounts.md §2.19): a SIP MESSAGE sent through the linphone daemon listening on
//! the unix socket `APP_LINPHONE_DAEMON_UNIX_PATH`. The route exists only when that setting is set.
//!
//! The daemon speaks lines: we write `message sip:<to> <body>\n` and read `Key: value` lines back
//! (`Status: Ok` + `Id: …`, or `Status: Error` + `Reason: …`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::HttpError;

use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::state::AppState;

/// Longest wait for the daemon (connection, write, first reply bytes).
const DAEMON_TIMEOUT: Duration = Duration::from_secs(5);
/// Once a reply started, how long to wait for the rest of it before reading it as complete.
const REPLY_IDLE: Duration = Duration::from_millis(200);

/// Message of the 422 answered when the daemon gives no usable reply.
const SOCKET_FAILURE: &str = "The internal socket cannot be requested properly";

/// Sends `command` to the daemon and returns its reply lines as a map (empty when unreachable).
pub async fn ask_daemon(socket: &Path, command: &str) -> HashMap<String, String> {
    let mut reply = String::new();
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await?;
        stream.write_all(command.as_bytes()).await?;
        let mut buffer = [0u8; 4096];
        let read = stream.read(&mut buffer).await?;
        reply.push_str(&String::from_utf8_lossy(&buffer[..read]));
        // The reply may come in several writes: keep reading until the daemon pauses or closes.
        while let Ok(Ok(read)) = tokio::time::timeout(REPLY_IDLE, stream.read(&mut buffer)).await {
            if read == 0 {
                break;
            }
            reply.push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
        Ok::<(), std::io::Error>(())
    };
    match tokio::time::timeout(DAEMON_TIMEOUT, exchange).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::error!(%error, socket = %socket.display(), "linphone daemon issue")
        }
        Err(_) => tracing::error!(socket = %socket.display(), "linphone daemon timed out"),
    }
    reply
        .split(['\r', '\n'])
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect()
}

/// A 422 whose `errors` is a JSON array (upstream's message without a field name).
fn daemon_error(message: &str) -> HttpError {
    HttpError::json(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"message": message, "errors": [[message]]}),
    )
}

/// `POST /api/messages` (admin): `{"id": "<daemon message id>"}`.
pub async fn send(State(state): State<AppState>, ctx: Ctx, input: Input) -> ApiResult<Response> {
    let mut v = Validator::new(&input.0, ctx.locale);
    crate::keys::scalar_text(v.field("to").required());
    crate::keys::scalar_text(v.field("body").required());
    v.finish()?;
    let Some(socket) = state.config.linphone_daemon_unix_path.as_deref() else {
        return Err(daemon_error(SOCKET_FAILURE).into());
    };
    // One command per line: a newline inside a value would start a second daemon command.
    let single_line = |key: &str| {
        input
            .text(key)
            .unwrap_or_default()
            .replace(['\r', '\n'], " ")
    };
    let (to, body) = (single_line("to"), single_line("body"));
    let reply = ask_daemon(socket, &format!("message sip:{to} {body}\n")).await;
    match reply.get("Status").map(String::as_str) {
        Some("Ok") => {
            Ok(Json(json!({"id": reply.get("Id").cloned().unwrap_or_default()})).into_response())
        }
        Some("Error") => {
            let reason = reply.get("Reason").cloned().unwrap_or_default();
            Err(daemon_error(&reason).into())
        }
        _ => Err(daemon_error(SOCKET_FAILURE).into()),
    }
}
