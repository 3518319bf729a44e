//! Spaces and their email server (super admin, api-accounts.md §2.2, §4.2, §4.3).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{NaiveDate, NaiveDateTime};
use http::StatusCode;
use serde_json::{json, Map, Value};

use flexiapi_core::http::validation::{as_integer, Validator};
use flexiapi_core::http::{text_response, HttpError, Locale};
use flexiapi_core::model::Space;
use flexiapi_core::time::{laravel, laravel_json};
use flexiapi_core::{with_db, Db};

use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::state::AppState;

/// Boolean feature switches, in upstream's PUT rule order.
const SWITCHES: [&str; 17] = [
    "assistant_disable_qr_code",
    "assistant_hide_create_account",
    "assistant_hide_third_party_account",
    "carddav_user_credentials",
    "custom_provisioning_overwrite_all",
    "disable_broadcast_feature",
    "disable_call_recordings_feature",
    "disable_chat_feature",
    "disable_meetings_feature",
    "hide_account_settings",
    "hide_settings",
    "intercom_features",
    "only_display_sip_uri_username",
    "phone_registration",
    "public_registration",
    "super",
    "web_panel",
];

/// Free text columns (absent → null on create and on the full-replacement update).
const TEXTS: [&str; 5] = [
    "account_proxy_registrar_address",
    "copyright_text",
    "custom_provisioning_entries",
    "intro_registration_text",
    "newsletter_registration_address",
];

/// INI keys the platform generates itself and a space may not override.
const FORBIDDEN_INI_KEYS: [&str; 15] = [
    "account_proxy_registrar_address",
    "assistant_disable_qr_code",
    "assistant_hide_create_account",
    "assistant_hide_third_party_account",
    "copyright_text",
    "disable_broadcast_feature",
    "disable_call_recordings_feature",
    "disable_chat_feature",
    "disable_meetings_feature",
    "hide_account_settings",
    "hide_settings",
    "intro_registration_text",
    "max_account",
    "newsletter_registration_address",
    "only_display_sip_uri_username",
];

/// The Domain rule: lower-case labels, at least one dot, letters-only TLD, 4–253 characters.
pub fn is_domain(text: &str) -> bool {
    if !(4..=253).contains(&text.len()) {
        return false;
    }
    let labels: Vec<&str> = text.split('.').collect();
    let Some((tld, rest)) = labels.split_last() else {
        return false;
    };
    !rest.is_empty()
        && (2..=63).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_lowercase())
        && rest.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Checks custom provisioning entries: `Err(message)` when they do not parse or use platform keys.
pub fn check_ini(text: &str) -> Result<(), String> {
    let invalid = "Invalid ini format.".to_owned();
    let mut keys = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            if !line.ends_with(']') || line.len() < 3 {
                return Err(invalid);
            }
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            return Err(invalid);
        };
        let key = key.trim();
        if key.is_empty() || key.contains(['[', ']']) {
            return Err(invalid);
        }
        keys.push(key.to_owned());
    }
    if keys.is_empty() {
        return Err(invalid);
    }
    let forbidden: Vec<&str> = FORBIDDEN_INI_KEYS
        .iter()
        .copied()
        .filter(|k| keys.iter().any(|key| key == k))
        .collect();
    if !forbidden.is_empty() {
        return Err(format!(
            "{invalid} The following settings cannot be set, they are already handled by the platform: {}",
            forbidden.join(", ")
        ));
    }
    Ok(())
}

/// Parses upstream's accepted date inputs; the column is a date, so the time is dropped.
pub fn parse_date(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|d| d.naive_utc().date())
        })
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|d| d.date())
        })?;
    date.and_hms_opt(0, 0, 0)
}

/// PHP's cast of a JSON value to bool (`"false"` is true, `""`/`"0"`/`0`/`false`/null are false).
fn php_bool(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => !(s.is_empty() || s == "0"),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(map)) => !map.is_empty(),
    }
}

fn date_rules(v: &mut Validator, locale: Locale) {
    let today = chrono::Utc::now().date_naive();
    let after = match locale {
        Locale::En => "The :attribute must be a date after or equal to today.",
        Locale::Fr => "Le champ :attribute doit être une date après ou égale à today.",
    };
    v.field("expire_at")
        .nullable()
        .check_localized(
            |value| value.as_str().and_then(parse_date).is_some(),
            "The :attribute is not a valid date.",
            "Le champ :attribute n'est pas une date valide.",
        )
        .check(
            |value| {
                value
                    .as_str()
                    .and_then(parse_date)
                    .is_none_or(|d| d.date() >= today)
            },
            after,
        );
}

fn ini_rule(v: &mut Validator) {
    let message = v
        .field("custom_provisioning_entries")
        .value()
        .and_then(Value::as_str)
        .and_then(|text| check_ini(text).err());
    let failed = message.clone();
    v.field("custom_provisioning_entries")
        .nullable()
        .check(|_| failed.is_none(), &message.unwrap_or_default());
}

fn theme_hue_rule(v: &mut Validator) {
    v.field("theme_hue").nullable().integer().min(0).max(360);
}

async fn taken(
    db: &Db,
    column: &str,
    value: Option<String>,
    except: i64,
) -> Result<bool, sqlx::Error> {
    let Some(value) = value else {
        return Ok(false);
    };
    let sql = format!("SELECT COUNT(*) FROM spaces WHERE {column} = $1 AND id <> $2");
    let count: i64 = with_db!(db, pool => sqlx::query_scalar(&sql)
        .bind(value).bind(except)
        .fetch_one(pool)
        .await)?;
    Ok(count > 0)
}

const UNIQUE_EN: &str = "The :attribute has already been taken.";
const UNIQUE_FR: &str = "Le :attribute a déjà été pris.";
const DOMAIN_MESSAGE: &str = "The :attribute should be a valid domain";

/// `GET /api/spaces`: every space with its relations.
pub async fn index(State(state): State<AppState>) -> ApiResult<Response> {
    let spaces: Vec<Space> = with_db!(&state.db, pool => sqlx::query_as("SELECT * FROM spaces ORDER BY id")
        .fetch_all(pool)
        .await)?;
    let mut body = Vec::with_capacity(spaces.len());
    for space in &spaces {
        body.push(render(&state.db, space, true).await?);
    }
    Ok(Json(body).into_response())
}

async fn find(db: &Db, domain: &str) -> ApiResult<Space> {
    Space::find_by_domain(db, domain)
        .await?
        .ok_or_else(|| HttpError::not_found("Space").into())
}

/// `GET /api/spaces/{domain}`.
pub async fn show(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> ApiResult<Response> {
    let space = find(&state.db, &domain).await?;
    Ok(Json(render(&state.db, &space, true).await?).into_response())
}

/// `POST /api/spaces`: 201 with the new space (without relations, as upstream).
pub async fn store(State(state): State<AppState>, ctx: Ctx, input: Input) -> ApiResult<Response> {
    let db = &state.db;
    let name_taken = taken(db, "name", input.text("name"), -1).await?;
    let domain_taken = taken(db, "domain", input.text("domain"), -1).await?;
    let mut v = Validator::new(&input.0, ctx.locale);
    v.field("name")
        .required()
        .check_localized(|_| !name_taken, UNIQUE_EN, UNIQUE_FR);
    v.field("domain")
        .required()
        .check_localized(|_| !domain_taken, UNIQUE_EN, UNIQUE_FR)
        .check(
            |value| value.as_str().is_some_and(is_domain),
            DOMAIN_MESSAGE,
        );
    v.finish()?;

    let host_taken = taken(db, "host", input.text("host"), -1).await?;
    let mut v = Validator::new(&input.0, ctx.locale);
    v.field("host")
        .required()
        .check_localized(|_| !host_taken, UNIQUE_EN, UNIQUE_FR)
        .check(
            |value| value.as_str().is_some_and(is_domain),
            DOMAIN_MESSAGE,
        );
    v.field("max_accounts").nullable().integer();
    date_rules(&mut v, ctx.locale);
    ini_rule(&mut v);
    theme_hue_rule(&mut v);
    v.finish()?;

    let domain = input.text("domain").unwrap_or_default();
    let now = flexiapi_core::time::now();
    let integer = |key: &str| input.get(key).and_then(as_integer).unwrap_or(0);
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO spaces (domain, host, name, max_account, max_accounts, expire_at, theme_hue, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id")
            .bind(&domain)
            .bind(input.text("host"))
            .bind(input.text("name"))
            .bind(integer("max_account"))
            .bind(integer("max_accounts"))
            .bind(input.str("expire_at").and_then(parse_date))
            .bind(input.get("theme_hue").and_then(as_integer))
            .bind(now)
            .fetch_one(&mut *tx).await?;
        for column in TEXTS {
            let sql = format!("UPDATE spaces SET {column} = $1 WHERE id = $2");
            sqlx::query(&sql).bind(input.text(column)).bind(id).execute(&mut *tx).await?;
        }
        for column in SWITCHES.iter().chain(SEED_ERA_SWITCHES.iter()) {
            if input.has(column) {
                let sql = format!("UPDATE spaces SET {} = $1 WHERE id = $2", quoted(column));
                sqlx::query(&sql).bind(php_bool(input.get(column))).bind(id).execute(&mut *tx).await?;
            }
        }
        if input.has("account_realm") {
            sqlx::query("UPDATE spaces SET account_realm = $1 WHERE id = $2")
                .bind(input.text("account_realm")).bind(id).execute(&mut *tx).await?;
        }
        // Like the web panel (not the upstream API), a new space gets its digest configuration, realm = domain.
        sqlx::query(
            "INSERT INTO space_digest_authentication_configurations \
             (space_id, realm, default_password_algorithm, created_at, updated_at) VALUES ($1, $2, 'SHA-256', $3, $3)")
            .bind(id).bind(&domain).bind(now)
            .execute(&mut *tx).await?;
        tx.commit().await
    })?;
    state.spaces.invalidate();
    let space = find(db, &domain).await?;
    Ok((StatusCode::CREATED, Json(render(db, &space, false).await?)).into_response())
}

/// Seed-era switches kept by decision D6 (accepted, stored, never required).
const SEED_ERA_SWITCHES: [&str; 2] = [
    "custom_theme",
    "provisioning_use_linphone_provisioning_header",
];

/// `super` is a keyword in some SQL dialects; quote it.
fn quoted(column: &str) -> String {
    format!("\"{column}\"")
}

/// `PUT /api/spaces/{domain}`: full replacement of the settable fields.
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(domain): Path<String>,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    let mut v = Validator::new(&input.0, ctx.locale);
    for switch in SWITCHES {
        if switch == "custom_provisioning_overwrite_all" {
            ini_rule(&mut v);
        }
        v.field(switch).required().boolean();
        if switch == "disable_meetings_feature" {
            date_rules(&mut v, ctx.locale);
        }
        if switch == "intercom_features" {
            v.field("max_account").required().integer();
            v.field("max_accounts").required().integer();
        }
    }
    theme_hue_rule(&mut v);
    v.finish()?;
    let space = find(db, &domain).await?;

    let max_accounts = input.get("max_accounts").and_then(as_integer).unwrap_or(0);
    if max_accounts > 0 {
        let count = crate::account::store::count_in_domain(db, &space.domain).await?;
        let mut v = Validator::new(&input.0, ctx.locale);
        v.field("max_accounts").min(count.max(0) as usize);
        v.finish()?;
    }
    let name_taken = taken(db, "name", input.text("name"), space.id).await?;
    let host_taken = taken(db, "host", input.text("host"), space.id).await?;
    let mut v = Validator::new(&input.0, ctx.locale);
    v.field("name")
        .required()
        .check_localized(|_| !name_taken, UNIQUE_EN, UNIQUE_FR);
    v.field("host")
        .required()
        .check_localized(|_| !host_taken, UNIQUE_EN, UNIQUE_FR);
    v.finish()?;

    let now = flexiapi_core::time::now();
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        sqlx::query(
            "UPDATE spaces SET name = $1, host = $2, max_account = $3, max_accounts = $4, expire_at = $5, \
             theme_hue = $6, updated_at = $7 WHERE id = $8")
            .bind(input.text("name"))
            .bind(input.text("host"))
            .bind(input.get("max_account").and_then(as_integer).unwrap_or(0))
            .bind(max_accounts)
            .bind(input.str("expire_at").and_then(parse_date))
            .bind(input.get("theme_hue").and_then(as_integer))
            .bind(now)
            .bind(space.id)
            .execute(&mut *tx).await?;
        for column in TEXTS {
            let sql = format!("UPDATE spaces SET {column} = $1 WHERE id = $2");
            sqlx::query(&sql).bind(input.text(column)).bind(space.id).execute(&mut *tx).await?;
        }
        for column in SWITCHES {
            let sql = format!("UPDATE spaces SET {} = $1 WHERE id = $2", quoted(column));
            let value = flexiapi_core::http::validation::as_bool(input.get(column).unwrap_or(&Value::Null));
            sqlx::query(&sql).bind(value.unwrap_or(false)).bind(space.id).execute(&mut *tx).await?;
        }
        for column in SEED_ERA_SWITCHES {
            if input.has(column) {
                let sql = format!("UPDATE spaces SET {column} = $1 WHERE id = $2");
                sqlx::query(&sql).bind(php_bool(input.get(column))).bind(space.id).execute(&mut *tx).await?;
            }
        }
        if input.has("account_realm") {
            sqlx::query("UPDATE spaces SET account_realm = $1 WHERE id = $2")
                .bind(input.text("account_realm")).bind(space.id).execute(&mut *tx).await?;
        }
        tx.commit().await
    })?;
    state.spaces.invalidate();
    let space = find(db, &domain).await?;
    Ok(Json(render(db, &space, true).await?).into_response())
}

/// `DELETE /api/spaces/{domain}`: text body = spaces deleted (`1`/`0`); accounts cascade.
pub async fn destroy(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> ApiResult<Response> {
    let deleted = with_db!(&state.db, pool => sqlx::query("DELETE FROM spaces WHERE domain = $1")
        .bind(&domain)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    state.spaces.invalidate();
    Ok(text_response(StatusCode::OK, deleted.to_string()))
}

/// A `space_email_servers` row.
#[derive(sqlx::FromRow)]
struct EmailServerRow {
    id: i64,
    host: String,
    port: i64,
    username: Option<String>,
    password: Option<String>,
    from_address: Option<String>,
    from_name: Option<String>,
    signature: Option<String>,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
}

async fn email_server(db: &Db, space_id: i64) -> Result<Option<EmailServerRow>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as(
        "SELECT id, host, port, username, password, from_address, from_name, signature, created_at, updated_at \
         FROM space_email_servers WHERE space_id = $1")
        .bind(space_id)
        .fetch_optional(pool)
        .await)
}

fn email_server_json(row: &EmailServerRow) -> Value {
    json!({
        "id": row.id,
        "host": row.host,
        "port": row.port,
        "username": row.username,
        "password": row.password,
        "from_address": row.from_address,
        "from_name": row.from_name,
        "signature": row.signature,
        "created_at": laravel_json(row.created_at.as_ref()),
        "updated_at": laravel_json(row.updated_at.as_ref()),
    })
}

/// `GET /api/spaces/{domain}/email`.
pub async fn email_show(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> ApiResult<Response> {
    let space = find(&state.db, &domain).await?;
    let row = email_server(&state.db, space.id)
        .await?
        .ok_or_else(|| HttpError::not_found("SpaceEmailServer"))?;
    Ok(Json(email_server_json(&row)).into_response())
}

/// `POST /api/spaces/{domain}/email`: create (201) or replace (200) the space's SMTP server.
pub async fn email_store(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(domain): Path<String>,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    let mut v = Validator::new(&input.0, ctx.locale);
    v.field("host").required().check(
        |value| value.as_str().is_some_and(is_domain),
        DOMAIN_MESSAGE,
    );
    v.field("port").required().integer();
    v.field("from_address").nullable().email();
    v.field("username").nullable().max(128);
    v.field("password").nullable().max(128);
    v.field("from_name").nullable().max(128);
    v.field("signature").nullable().max(256);
    v.finish()?;
    let space = find(db, &domain).await?;
    let existing = email_server(db, space.id).await?;
    let now = flexiapi_core::time::now();
    let port = input.get("port").and_then(as_integer).unwrap_or(0);
    let sql = if existing.is_some() {
        "UPDATE space_email_servers SET host = $1, port = $2, username = $3, password = $4, from_address = $5, \
         from_name = $6, signature = $7, updated_at = $8 WHERE space_id = $9"
    } else {
        "INSERT INTO space_email_servers (host, port, username, password, from_address, from_name, signature, \
         created_at, updated_at, space_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)"
    };
    with_db!(db, pool => sqlx::query(sql)
        .bind(input.text("host")).bind(port).bind(input.text("username"))
        .bind(input.get("password").and_then(Value::as_str)).bind(input.text("from_address"))
        .bind(input.text("from_name")).bind(input.text("signature")).bind(now).bind(space.id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    let row = email_server(db, space.id)
        .await?
        .ok_or_else(|| HttpError::not_found("SpaceEmailServer"))?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(email_server_json(&row))).into_response())
}

/// `DELETE /api/spaces/{domain}/email`: text `1`; 404 for an unknown space or no server (upstream: 500).
pub async fn email_destroy(
    State(state): State<AppState>,
    Path(domain): Path<String>,
) -> ApiResult<Response> {
    let space = find(&state.db, &domain).await?;
    let deleted = with_db!(&state.db, pool => sqlx::query("DELETE FROM space_email_servers WHERE space_id = $1")
        .bind(space.id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    if deleted == 0 {
        return Err(HttpError::not_found("SpaceEmailServer").into());
    }
    Ok(text_response(StatusCode::OK, "1"))
}

/// The Space object (§4.2); `relations` adds `email_server`, `carddav_servers` and the authentication
/// configurations (present on GET/PUT, absent on the POST answer).
pub async fn render(db: &Db, space: &Space, relations: bool) -> Result<Value, sqlx::Error> {
    let mut o = Map::new();
    o.insert("domain".into(), json!(space.domain));
    o.insert("super".into(), json!(space.is_super));
    o.insert("created_at".into(), laravel_json(space.created_at.as_ref()));
    o.insert("updated_at".into(), laravel_json(space.updated_at.as_ref()));
    o.insert(
        "disable_chat_feature".into(),
        json!(space.disable_chat_feature),
    );
    o.insert(
        "disable_meetings_feature".into(),
        json!(space.disable_meetings_feature),
    );
    o.insert(
        "disable_broadcast_feature".into(),
        json!(space.disable_broadcast_feature),
    );
    o.insert("max_account".into(), json!(space.max_account));
    o.insert("hide_settings".into(), json!(space.hide_settings));
    o.insert(
        "hide_account_settings".into(),
        json!(space.hide_account_settings),
    );
    o.insert(
        "disable_call_recordings_feature".into(),
        json!(space.disable_call_recordings_feature),
    );
    o.insert(
        "only_display_sip_uri_username".into(),
        json!(space.only_display_sip_uri_username),
    );
    o.insert(
        "assistant_hide_create_account".into(),
        json!(space.assistant_hide_create_account),
    );
    o.insert(
        "assistant_disable_qr_code".into(),
        json!(space.assistant_disable_qr_code),
    );
    o.insert(
        "assistant_hide_third_party_account".into(),
        json!(space.assistant_hide_third_party_account),
    );
    o.insert("host".into(), json!(space.host));
    o.insert("max_accounts".into(), json!(space.max_accounts));
    o.insert(
        "expire_at".into(),
        json!(space
            .expire_at
            .and_then(|d| d.date().and_hms_opt(0, 0, 0))
            .map(|d| laravel(&d))),
    );
    o.insert("copyright_text".into(), json!(space.copyright_text));
    o.insert(
        "intro_registration_text".into(),
        json!(space.intro_registration_text),
    );
    o.insert(
        "newsletter_registration_address".into(),
        json!(space.newsletter_registration_address),
    );
    o.insert(
        "account_proxy_registrar_address".into(),
        json!(space.account_proxy_registrar_address),
    );
    o.insert(
        "custom_provisioning_entries".into(),
        json!(space.custom_provisioning_entries),
    );
    o.insert(
        "custom_provisioning_overwrite_all".into(),
        json!(space.custom_provisioning_overwrite_all),
    );
    o.insert("web_panel".into(), json!(space.web_panel));
    o.insert(
        "public_registration".into(),
        json!(space.public_registration),
    );
    o.insert("phone_registration".into(), json!(space.phone_registration));
    o.insert("intercom_features".into(), json!(space.intercom_features));
    o.insert("name".into(), json!(space.name));
    o.insert(
        "carddav_user_credentials".into(),
        json!(space.carddav_user_credentials),
    );
    o.insert("theme_hue".into(), json!(space.theme_hue.unwrap_or(22)));
    o.insert("logo".into(), json!(space.logo));
    o.insert("unique_email".into(), json!(space.unique_email));
    o.insert(
        "client_certificate_authentication".into(),
        json!(space.client_certificate_authentication),
    );
    // Seed-era fields kept by decision D6.
    o.insert("account_realm".into(), json!(space.account_realm));
    o.insert("custom_theme".into(), json!(space.custom_theme));
    o.insert(
        "provisioning_use_linphone_provisioning_header".into(),
        json!(space.provisioning_use_linphone_provisioning_header),
    );
    if relations {
        let email = email_server(db, space.id).await?;
        o.insert(
            "email_server".into(),
            email.as_ref().map_or(Value::Null, email_server_json),
        );
        o.insert(
            "carddav_servers".into(),
            carddav_servers(db, space.id).await?,
        );
        let digest = space.digest_configuration(db).await?;
        o.insert(
            "digest_authentication_configuration".into(),
            digest.map_or(Value::Null, |d| {
                json!({"realm": d.realm, "default_password_algorithm": d.default_password_algorithm})
            }),
        );
        o.insert(
            "oidc_authentication_configuration".into(),
            oidc_configuration(db, space.id).await?,
        );
    }
    Ok(Value::Object(o))
}

#[derive(sqlx::FromRow)]
struct CardDavServerRow {
    id: i64,
    enabled: bool,
    uri: String,
    min_characters: i64,
    results_limit: i64,
    timeout: i64,
    delay: i64,
    fields_for_user_input: Option<String>,
    fields_for_domain: Option<String>,
    use_exact_match_policy: bool,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
}

async fn carddav_servers(db: &Db, space_id: i64) -> Result<Value, sqlx::Error> {
    let rows: Vec<CardDavServerRow> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, enabled, uri, min_characters, results_limit, timeout, delay, fields_for_user_input, \
         fields_for_domain, use_exact_match_policy, created_at, updated_at FROM space_carddav_servers \
         WHERE space_id = $1 ORDER BY id")
        .bind(space_id)
        .fetch_all(pool)
        .await)?;
    Ok(Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "id": r.id, "enabled": r.enabled, "uri": r.uri, "min_characters": r.min_characters,
                    "results_limit": r.results_limit, "timeout": r.timeout, "delay": r.delay,
                    "fields_for_user_input": r.fields_for_user_input, "fields_for_domain": r.fields_for_domain,
                    "use_exact_match_policy": r.use_exact_match_policy,
                    "created_at": laravel_json(r.created_at.as_ref()),
                    "updated_at": laravel_json(r.updated_at.as_ref()),
                })
            })
            .collect(),
    ))
}

#[derive(sqlx::FromRow)]
struct OidcRow {
    server_url: String,
    realm: String,
    sip_identifier: String,
    public_key: Option<String>,
    client_id: Option<String>,
    auto_provisioning: Option<bool>,
    role_provisioning: Option<String>,
}

async fn oidc_configuration(db: &Db, space_id: i64) -> Result<Value, sqlx::Error> {
    let row: Option<OidcRow> = with_db!(db, pool => sqlx::query_as(
        "SELECT server_url, realm, sip_identifier, public_key, client_id, auto_provisioning, role_provisioning \
         FROM space_oidc_authentication_configurations WHERE space_id = $1")
        .bind(space_id)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map_or(Value::Null, |r| {
        json!({
            "server_url": r.server_url, "realm": r.realm, "sip_identifier": r.sip_identifier,
            "public_key": r.public_key, "client_id": r.client_id,
            "auto_provisioning": r.auto_provisioning, "role_provisioning": r.role_provisioning,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert!(is_domain("sip.example.com"));
        assert!(!is_domain("Sip.example.com"));
        assert!(!is_domain("localhost"));
        assert!(!is_domain("-a.example.com"));
        assert!(!is_domain("a.b1"));
    }

    #[test]
    fn ini() {
        assert!(check_ini("[sip]\nverify_server_certs = no\n").is_ok());
        assert_eq!(
            check_ini("nothing here").unwrap_err(),
            "Invalid ini format."
        );
        assert!(check_ini("[ui]\nmax_account = 3\nhide_settings=1")
            .unwrap_err()
            .ends_with("platform: hide_settings, max_account"));
    }
}
