//! Outgoing mail over SMTP (lettre): the space's own email server when it has one, else the global
//! `MAIL_*` server; with neither, the mail is only logged (as upstream's default `log` mailer does).
//!
//! Plain SMTP (optionally authenticated) as the workspace's lettre features allow; no implicit TLS.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use flexiapi_core::model::{Account, Space};
use flexiapi_core::with_db;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The SMTP server and sender a mail goes through.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Server {
    pub host: String,
    pub port: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    pub signature: Option<String>,
}

/// The server for mails of `space`.
async fn server_for(state: &AppState, space: &Space) -> ApiResult<Option<Server>> {
    let own: Option<Server> = with_db!(&state.db, pool => sqlx::query_as(
        "SELECT host, port, username, password, from_address, from_name, signature \
         FROM space_email_servers WHERE space_id = $1")
        .bind(space.id)
        .fetch_optional(pool)
        .await)?;
    if own.is_some() {
        return Ok(own);
    }
    let global = &state.config.mail;
    Ok(global.host.as_ref().map(|host| Server {
        host: host.clone(),
        port: i64::from(global.port),
        username: global.username.clone(),
        password: global.password.clone(),
        from_address: global.from_address.clone(),
        from_name: global.from_name.clone(),
        signature: None,
    }))
}

/// Sends a text mail to `to` for `space`; the space's signature (or a default one) ends the body.
pub async fn send(
    state: &AppState,
    space: &Space,
    to: &str,
    subject: &str,
    body: &str,
) -> ApiResult<()> {
    let Some(server) = server_for(state, space).await? else {
        tracing::warn!(to, subject, "no mail server configured: mail not sent");
        return Ok(());
    };
    let signature = server
        .signature
        .clone()
        .unwrap_or_else(|| format!("The {} team", space.name));
    let from_address = server
        .from_address
        .clone()
        .unwrap_or_else(|| format!("no-reply@{}", space.domain));
    let from = Mailbox::new(
        server
            .from_name
            .clone()
            .or_else(|| Some(space.name.clone())),
        from_address
            .parse()
            .map_err(|e| ApiError::Mail(format!("sender {from_address:?}: {e}")))?,
    );
    let to_mailbox: Mailbox = to
        .parse()
        .map_err(|e| ApiError::Mail(format!("recipient {to:?}: {e}")))?;
    let message = Message::builder()
        .from(from)
        .to(to_mailbox)
        .subject(subject)
        .body(format!("{body}\n\n--\n{signature}\n"))
        .map_err(|e| ApiError::Mail(e.to_string()))?;
    let port = u16::try_from(server.port).map_err(|_| ApiError::Mail("bad port".into()))?;
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host).port(port);
    if let (Some(user), Some(password)) = (&server.username, &server.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    transport
        .build()
        .send(message)
        .await
        .map_err(|e| ApiError::Mail(e.to_string()))?;
    Ok(())
}

/// Body of the email-change confirmation mail.
pub fn email_code_body(space: &Space, code: &str, minutes: u64) -> String {
    let mut body = format!(
        "Hello,\n\nTo confirm this email address for your {} account, use the following code: {code}",
        space.name
    );
    if minutes > 0 {
        body.push_str(&format!("\nThe code is valid for {minutes} minutes."));
    }
    body
}

/// Body of the provisioning (welcome) mail.
pub fn provisioning_body(space: &Space, account: &Account, base: &str, token: &str) -> String {
    format!(
        "Hello,\n\nYour account {} on {} is ready.\n\nTo configure your application, open this link on your device:\n\
         {base}/provisioning/{token}\n\nor scan this QR code:\n{base}/provisioning/qrcode/{token}",
        account.identifier(),
        space.name
    )
}

/// Body of the reset-password mail.
pub fn reset_password_body(space: &Space, account: &Account, url: &str, hours: u64) -> String {
    format!(
        "Hello,\n\nA password reset was requested for your account {} on {}.\n\n\
         Follow this link to choose a new password (valid for {hours} hours):\n{url}",
        account.identifier(),
        space.name
    )
}
