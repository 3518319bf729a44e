//! Remote provisioning (provisioning.md §1–5): the linphone XML configuration served under `/provisioning…`
//! and the QR code that carries a provisioning URL.
//!
//! Reading order: [`Document`] (sections, escaping, overwrite-all), [`parse_ini`] (the Space's custom
//! entries), [`build`] (the section algorithm of §4.2), then the handlers, which only check the header, find
//! the account and call [`build`].

use std::io::Cursor;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{Duration, NaiveDateTime};
use http::{header, HeaderValue, StatusCode};

use flexiapi_core::http::HttpError;
use flexiapi_core::model::space::realm_for_domain;
use flexiapi_core::model::{Account, Space};
use flexiapi_core::{with_db, Db};

use crate::access::{self, Authenticated};
use crate::account::store;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::token;

/// Header whose presence proves the request comes from a Linphone client, not a link previewer.
pub const PROVISIONING_HEADER: &str = "x-linphone-provisioning";

/// How long an auth token may be used (hard-coded upstream).
const AUTH_TOKEN_MINUTES: i64 = 5;

/// Length of the random password set by `reset_password`.
const RESET_PASSWORD_LENGTH: usize = 10;

/// Side of the QR code PNG, in pixels (nominal 300 px code + 10 px margin on each side).
const QR_CANVAS: u32 = 320;
/// Nominal side of the drawn code.
const QR_CODE_SIDE: u32 = 300;

/// One `<section>` of the linphone configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Section {
    /// `name` attribute.
    pub name: String,
    /// Entries in order (a repeated key keeps its first position and its last value).
    pub entries: Vec<(String, String)>,
}

impl Section {
    fn new(name: &str) -> Section {
        Section {
            name: name.to_owned(),
            entries: Vec::new(),
        }
    }

    /// Sets `key`, in place when it already exists.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_owned(), value)),
        }
    }
}

/// A linphone configuration document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Document {
    /// Sections in output order.
    pub sections: Vec<Section>,
}

impl Document {
    /// The section named `name`, appended when absent.
    pub fn section(&mut self, name: &str) -> &mut Section {
        let index = match self.sections.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                self.sections.push(Section::new(name));
                self.sections.len() - 1
            }
        };
        &mut self.sections[index]
    }

    /// A new section at the end, even when one of that name exists (upstream's CardDAV sections).
    pub fn append(&mut self, name: &str) -> &mut Section {
        self.sections.push(Section::new(name));
        self.sections.last_mut().expect("just pushed")
    }

    /// True when a section of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.sections.iter().any(|s| s.name == name)
    }

    /// One line of XML, no declaration; `overwrite` marks every entry `overwrite="true"`.
    pub fn render(&self, overwrite: bool) -> String {
        let mut out = String::from(r#"<config xmlns="http://www.linphone.org/xsds/lpconfig.xsd">"#);
        for section in &self.sections {
            out.push_str(&format!(r#"<section name="{}">"#, attribute(&section.name)));
            for (name, value) in &section.entries {
                out.push_str(&format!(r#"<entry name="{}""#, attribute(name)));
                if overwrite {
                    out.push_str(r#" overwrite="true""#);
                }
                if value.is_empty() {
                    out.push_str("/>");
                } else {
                    out.push('>');
                    out.push_str(&text(value));
                    out.push_str("</entry>");
                }
            }
            out.push_str("</section>");
        }
        out.push_str("</config>");
        out
    }
}

/// Text node escaping: quotes stay as they are (clients read `"Name" <sip:…>` verbatim).
fn text(value: &str) -> String {
    escape(value, false)
}

/// Attribute escaping (double quotes delimit attributes here).
fn attribute(value: &str) -> String {
    escape(value, true)
}

/// XML escaping; in attributes also `"` and the whitespace an attribute would otherwise normalise away.
fn escape(value: &str, in_attribute: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' if in_attribute => out.push_str("&quot;"),
            '\n' if in_attribute => out.push_str("&#10;"),
            '\t' if in_attribute => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// One INI value as PHP's INI parser gives it: quotes removed, `;` comments cut from unquoted values, boolean
/// keywords mapped (`true/on/yes` → `1`, `false/off/no/none/null` → empty). No interpolation (it would leak
/// the server's environment).
fn ini_value(raw: &str) -> String {
    let raw = raw.trim();
    for quote in ['"', '\''] {
        if let Some(rest) = raw.strip_prefix(quote) {
            return match rest.find(quote) {
                Some(end) => rest[..end].to_owned(),
                None => rest.to_owned(),
            };
        }
    }
    let unquoted = raw.split(';').next().unwrap_or_default().trim();
    match unquoted.to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" => "1".to_owned(),
        "false" | "off" | "no" | "none" | "null" => String::new(),
        _ => unquoted.to_owned(),
    }
}

/// Parses the Space's custom provisioning entries (`[section]` + `key = value`); entries before the first
/// section and malformed lines are ignored (upstream answers 500 for the former).
pub fn parse_ini(text: &str) -> Vec<Section> {
    let mut document = Document::default();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            current = name.strip_suffix(']').map(|n| n.trim().to_owned());
            if let Some(name) = &current {
                document.section(name);
            }
            continue;
        }
        let (Some(section), Some((key, value))) = (&current, line.split_once('=')) else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || key.contains(['[', ']']) {
            continue;
        }
        document.section(section).set(key, ini_value(value));
    }
    document.sections
}

/// `1` / `0` as linphone expects booleans.
fn flag(value: bool) -> &'static str {
    if value {
        "1"
    } else {
        "0"
    }
}

#[derive(sqlx::FromRow)]
struct CardDavServer {
    enabled: bool,
    uri: String,
    min_characters: i64,
    results_limit: i64,
    timeout: i64,
    delay: i64,
    fields_for_user_input: Option<String>,
    fields_for_domain: Option<String>,
    use_exact_match_policy: bool,
}

#[derive(sqlx::FromRow)]
struct CardDavCredential {
    username: String,
    realm: String,
    password: String,
    algorithm: String,
}

async fn carddav_servers(db: &Db, space_id: i64) -> Result<Vec<CardDavServer>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as(
        "SELECT enabled, uri, CAST(min_characters AS BIGINT) AS min_characters, \
         CAST(results_limit AS BIGINT) AS results_limit, CAST(timeout AS BIGINT) AS timeout, \
         CAST(delay AS BIGINT) AS delay, fields_for_user_input, fields_for_domain, use_exact_match_policy \
         FROM space_carddav_servers WHERE space_id = $1 ORDER BY id")
        .bind(space_id).fetch_all(pool).await)
}

async fn carddav_credentials(
    db: &Db,
    account_id: i64,
) -> Result<Vec<CardDavCredential>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as(
        "SELECT username, realm, password, algorithm FROM account_carddav_credentials \
         WHERE account_id = $1 ORDER BY space_carddav_server_id")
        .bind(account_id).fetch_all(pool).await)
}

/// Replaces every password of `account` by the hash of a fresh random one (`?reset_password`), with the
/// request Space's algorithm; a Space without digest configuration changes nothing.
async fn reset_password(db: &Db, space: &Space, account: &Account) -> Result<(), sqlx::Error> {
    let Some(algorithm) = store::space_algorithm(db, space).await? else {
        return Ok(());
    };
    let password = token::alphanumeric(RESET_PASSWORD_LENGTH);
    let realm = realm_for_domain(db, &account.domain).await?;
    with_db!(db, pool => sqlx::query("DELETE FROM passwords WHERE account_id = $1")
        .bind(account.id).execute(pool).await.map(|_| ()))?;
    account.set_password(db, &password, algorithm, &realm).await
}

/// Builds the XML for the request Space `space` and, optionally, `account` (provisioning.md §4.2).
pub async fn build(
    db: &Db,
    ctx: &Ctx,
    account: Option<&Account>,
    reset: bool,
) -> Result<String, sqlx::Error> {
    let space = &ctx.space;
    let mut document = Document::default();
    if let Some(entries) = space.custom_provisioning_entries.as_deref() {
        document.sections = parse_ini(entries);
    }
    for (n, server) in carddav_servers(db, space.id).await?.iter().enumerate() {
        let section = document.append(&format!("remote_contact_directory_{n}"));
        section.set("enabled", flag(server.enabled));
        section.set("type", "carddav");
        section.set("uri", server.uri.as_str());
        section.set("min_characters", server.min_characters.to_string());
        section.set("results_limit", server.results_limit.to_string());
        section.set("timeout", server.timeout.to_string());
        section.set("delay", server.delay.to_string());
        let fields = server.fields_for_user_input.clone().unwrap_or_default();
        section.set("carddav_fields_for_user_input", fields);
        let fields = server.fields_for_domain.clone().unwrap_or_default();
        section.set("carddav_fields_for_domain", fields);
        section.set(
            "carddav_use_exact_match_policy",
            flag(server.use_exact_match_policy),
        );
    }
    let mut auth_index = 0;
    if let Some(account) = account {
        for credential in carddav_credentials(db, account.id).await? {
            let section = document.append(&format!("auth_info_{auth_index}"));
            section.set("username", credential.username);
            section.set("realm", credential.realm);
            section.set("ha1", credential.password);
            section.set("algorithm", credential.algorithm);
            auth_index += 1;
        }
        if reset {
            reset_password(db, space, account).await?;
        }
    }
    // Decision: a custom `[misc]` section receives the entry instead of upstream's duplicate section.
    document
        .section("misc")
        .set("contacts-vcard-list", ctx.url("/contacts/vcard"));
    let Some(account) = account else {
        return Ok(document.render(space.custom_provisioning_overwrite_all));
    };
    if !document.has("ui") {
        if let Some(own) = Space::find_by_domain(db, &account.domain).await? {
            let ui = document.append("ui");
            ui.set("super", flag(own.is_super));
            ui.set("disable_chat_feature", flag(own.disable_chat_feature));
            ui.set(
                "disable_meetings_feature",
                flag(own.disable_meetings_feature),
            );
            ui.set(
                "disable_broadcast_feature",
                flag(own.disable_broadcast_feature),
            );
            ui.set("hide_settings", flag(own.hide_settings));
            ui.set("hide_account_settings", flag(own.hide_account_settings));
            ui.set(
                "disable_call_recordings_feature",
                flag(own.disable_call_recordings_feature),
            );
            ui.set(
                "only_display_sip_uri_username",
                flag(own.only_display_sip_uri_username),
            );
            ui.set(
                "assistant_hide_create_account",
                flag(own.assistant_hide_create_account),
            );
            ui.set(
                "assistant_disable_qr_code",
                flag(own.assistant_disable_qr_code),
            );
            ui.set(
                "assistant_hide_third_party_account",
                flag(own.assistant_hide_third_party_account),
            );
            ui.set("max_account", own.max_account.to_string());
        }
    }
    let identity = match account.display_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("\"{name}\" <{}>", account.sip_uri()),
        None => format!("<{}>", account.sip_uri()),
    };
    document.section("proxy_0").set("reg_identity", identity);
    let realm = realm_for_domain(db, &account.domain).await?;
    for password in account.passwords(db).await? {
        let section = document.section(&format!("auth_info_{auth_index}"));
        section.set("username", account.username.as_str());
        section.set("domain", account.domain.as_str());
        section.set("ha1", password.password);
        section.set("realm", realm.as_str());
        section.set("algorithm", password.algorithm);
        auth_index += 1;
    }
    Ok(document.render(space.custom_provisioning_overwrite_all))
}

fn xml_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        )],
        body,
    )
        .into_response()
}

/// 400 unless the `x-linphone-provisioning` header is present (any value); a Space may turn the check off.
fn require_header(ctx: &Ctx, headers: &HeaderMap) -> ApiResult<()> {
    if ctx.space.provisioning_use_linphone_provisioning_header
        && !headers.contains_key(PROVISIONING_HEADER)
    {
        return Err(HttpError::message(
            StatusCode::BAD_REQUEST,
            "x-linphone-provisioning header is missing",
        )
        .into());
    }
    Ok(())
}

/// Query of the provisioning routes: `reset_password` counts when present, whatever its value.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ProvisioningQuery {
    /// Present → the account's password is reset before the XML is built.
    pub reset_password: Option<String>,
}

/// `GET /provisioning` and `/provisioning/`: the Space's configuration, no account.
pub async fn base(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require_header(&ctx, &headers)?;
    Ok(xml_response(build(&state.db, &ctx, None, false).await?))
}

/// `GET /provisioning/me`: the caller's configuration with credentials, every time.
pub async fn me(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Extension(caller): Extension<Authenticated>,
    Query(query): Query<ProvisioningQuery>,
) -> ApiResult<Response> {
    require_header(&ctx, &headers)?;
    let account = access::me(&state.db, &caller).await?;
    let reset = query.reset_password.is_some();
    Ok(xml_response(
        build(&state.db, &ctx, Some(&account), reset).await?,
    ))
}

/// `GET /provisioning/auth_token/{auth_token}`: a live auth token attached to an account, used once.
pub async fn by_auth_token(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(auth_token): Path<String>,
    Query(query): Query<ProvisioningQuery>,
) -> ApiResult<Response> {
    let db = &state.db;
    let since = flexiapi_core::time::now() - Duration::minutes(AUTH_TOKEN_MINUTES);
    let row: Option<(i64, Option<i64>)> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, account_id FROM auth_tokens WHERE token = $1 AND created_at > $2")
        .bind(&auth_token).bind(since).fetch_optional(pool).await)?;
    let (token_id, Some(account_id)) = row.ok_or_else(HttpError::bare_not_found)? else {
        return Err(HttpError::bare_not_found().into());
    };
    let account = Account::find(db, account_id)
        .await?
        .ok_or_else(HttpError::bare_not_found)?;
    with_db!(db, pool => sqlx::query("DELETE FROM auth_tokens WHERE id = $1")
        .bind(token_id).execute(pool).await.map(|_| ()))?;
    let reset = query.reset_password.is_some();
    Ok(xml_response(build(db, &ctx, Some(&account), reset).await?))
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    account_id: i64,
    created_at: Option<NaiveDateTime>,
}

/// `GET /provisioning/{provisioning_token}`: the account's current token, consumed; the account activated.
pub async fn by_token(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(provisioning_token): Path<String>,
    Query(query): Query<ProvisioningQuery>,
) -> ApiResult<Response> {
    require_header(&ctx, &headers)?;
    let db = &state.db;
    let row: Option<TokenRow> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, account_id, created_at FROM provisioning_tokens WHERE token = $1 AND used = FALSE \
         ORDER BY id DESC LIMIT 1")
        .bind(&provisioning_token).fetch_optional(pool).await)?;
    let row = row.ok_or_else(|| HttpError::not_found("Account"))?;
    let current: Option<i64> = with_db!(db, pool => sqlx::query_scalar(
        "SELECT MAX(id) FROM provisioning_tokens WHERE account_id = $1 AND used = FALSE")
        .bind(row.account_id).fetch_one(pool).await)?;
    if current != Some(row.id) {
        return Err(HttpError::not_found("Account").into());
    }
    let minutes = state.config.limits.provisioning_token_expiration_minutes;
    if minutes > 0 {
        let limit = flexiapi_core::time::now() - Duration::minutes(minutes as i64);
        if row.created_at.is_some_and(|created| created < limit) {
            return Err(HttpError::message(StatusCode::GONE, "Expired").into());
        }
    }
    let now = flexiapi_core::time::now();
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        sqlx::query("UPDATE accounts SET activated = TRUE, updated_at = $2 WHERE id = $1")
            .bind(row.account_id).bind(now).execute(&mut *tx).await?;
        sqlx::query("UPDATE provisioning_tokens SET used = TRUE, updated_at = $2 WHERE id = $1")
            .bind(row.id).bind(now).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    access::forget(&state, row.account_id);
    let account = Account::find(db, row.account_id)
        .await?
        .ok_or_else(|| HttpError::not_found("Account"))?;
    let reset = query.reset_password.is_some();
    Ok(xml_response(build(db, &ctx, Some(&account), reset).await?))
}

/// `GET /provisioning/documentation`: a short HTML page on how clients fetch their configuration.
pub async fn documentation(ctx: Ctx) -> Response {
    let base = ctx.url("/provisioning");
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Provisioning</title></head><body>\
         <h1>Remote provisioning</h1>\
         <p>Linphone clients fetch their configuration (linphone XML) from these URLs; every request must carry \
         the <code>{PROVISIONING_HEADER}</code> header (any value).</p><ul>\
         <li><code>{base}</code>: the configuration of this server, without account</li>\
         <li><code>{base}/me</code>: the configuration of the authenticated account, with its credentials</li>\
         <li><code>{base}/&lt;provisioning token&gt;</code>: the configuration of the account owning the token; \
         the token works once and activates the account</li>\
         <li><code>{base}/qrcode/&lt;provisioning token&gt;</code>: a QR code of the previous URL</li></ul>\
         <p>Add <code>?reset_password</code> to replace the account's password by a new random one.</p></body></html>"
    );
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(flexiapi_core::http::error::TEXT_HTML),
        )],
        page,
    )
        .into_response()
}

/// A PNG QR code (error correction H) of `text`, black on white, centred in a 320×320 canvas.
pub fn qr_png(text: &str) -> ApiResult<Vec<u8>> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::H)
        .map_err(HttpError::internal)?;
    let modules = code.width() as u32;
    let module = (QR_CODE_SIDE / modules).max(1);
    let offset = QR_CANVAS.saturating_sub(module * modules) / 2;
    let colors = code.to_colors();
    let mut image = image::GrayImage::from_pixel(QR_CANVAS, QR_CANVAS, image::Luma([255]));
    for (index, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x, y) = (index as u32 % modules, index as u32 / modules);
        for dy in 0..module {
            for dx in 0..module {
                let (px, py) = (offset + x * module + dx, offset + y * module + dy);
                if px < QR_CANVAS && py < QR_CANVAS {
                    image.put_pixel(px, py, image::Luma([0]));
                }
            }
        }
    }
    let mut png = Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(HttpError::internal)?;
    Ok(png.into_inner())
}

/// `GET /provisioning/qrcode/{provisioning_token}`: a PNG of the provisioning URL of an unused token.
pub async fn qrcode(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(provisioning_token): Path<String>,
    Query(query): Query<ProvisioningQuery>,
) -> ApiResult<Response> {
    let exists: i64 = with_db!(&state.db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM provisioning_tokens WHERE token = $1 AND used = FALSE")
        .bind(&provisioning_token).fetch_one(pool).await)?;
    if exists == 0 {
        return Err(HttpError::not_found("Account").into());
    }
    let mut url = ctx.url(&format!("/provisioning/{provisioning_token}"));
    if query.reset_password.is_some() {
        url.push_str("?reset_password=1");
    }
    let png = qr_png(&url)?;
    let url_header = HeaderValue::from_str(&url).map_err(HttpError::internal)?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (header::HeaderName::from_static("x-qrcode-url"), url_header),
        ],
        png,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_semantics() {
        let sections = parse_ini(
            "orphan = 1\n[proxy_0]\nreg_proxy = \"<sip:a.org;transport=tls>\"\nx = on ; comment\n\
             [sip]\nverify_server_certs = no\nlit = 'a;b'\nn = 42\nx = 1\nn = 43\n",
        );
        assert_eq!(sections.len(), 2);
        assert_eq!(
            sections[0].entries,
            vec![
                ("reg_proxy".into(), "<sip:a.org;transport=tls>".into()),
                ("x".into(), "1".into())
            ]
        );
        assert_eq!(
            sections[1].entries,
            vec![
                ("verify_server_certs".into(), String::new()),
                ("lit".into(), "a;b".into()),
                ("n".into(), "43".into()),
                ("x".into(), "1".into())
            ]
        );
    }

    #[test]
    fn escaping_and_overwrite() {
        let mut document = Document::default();
        let section = document.section("proxy_0");
        section.set("reg_identity", "\"Anna O'Reily\" <sip:a@b> & co\r");
        section.set("empty", "");
        assert_eq!(
            document.render(false),
            "<config xmlns=\"http://www.linphone.org/xsds/lpconfig.xsd\"><section name=\"proxy_0\">\
             <entry name=\"reg_identity\">\"Anna O'Reily\" &lt;sip:a@b&gt; &amp; co&#13;</entry>\
             <entry name=\"empty\"/></section></config>"
        );
        assert!(document
            .render(true)
            .contains("<entry name=\"empty\" overwrite=\"true\"/>"));
    }
}
