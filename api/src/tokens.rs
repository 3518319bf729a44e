//! Account creation request tokens, account creation tokens, account recovery tokens and auth tokens
//! (api-accounts.md §2.3–2.6, and `GET /accounts/me/api_key/{auth_token}`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{Duration, NaiveDateTime};
use http::StatusCode;
use regex::Regex;
use serde_json::{json, Value};

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::HttpError;
use flexiapi_core::time::{laravel, laravel_json};
use flexiapi_core::{with_db, Db};

use crate::access::{self, Authenticated};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::push::{self, Push};
use crate::state::AppState;
use crate::token;

/// Auth tokens are valid this long after creation.
const AUTH_TOKEN_MINUTES: i64 = 5;

fn empty_not_found() -> HttpError {
    HttpError::message(StatusCode::NOT_FOUND, "")
}

fn expire_at(created_at: NaiveDateTime, minutes: u64) -> Value {
    let at = (minutes > 0).then(|| created_at + Duration::minutes(minutes as i64));
    laravel_json(at.as_ref())
}

/// `POST /api/account_creation_request_tokens`: 201 `{"token","validation_url"}`.
pub async fn create_request_token(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    let token = token::alphanumeric(token::SHORT);
    let now = flexiapi_core::time::now();
    with_db!(&state.db, pool => sqlx::query(
        "INSERT INTO account_creation_request_tokens (token, used, created_at, updated_at) VALUES ($1, FALSE, $2, $2)")
        .bind(&token).bind(now)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    let url = ctx.url(&format!("/creation_token/check/{token}"));
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "validation_url": url})),
    )
        .into_response())
}

/// Validates the `pn_provider` / `pn_param` / `pn_prid` triple of the send-by-push endpoints.
pub fn validate_push_fields(v: &mut Validator) {
    let param = Regex::new(r"^[A-Za-z0-9_.]+$").expect("static regex");
    let prid = Regex::new(r"^[A-Za-z0-9_:-]+$").expect("static regex");
    v.field("pn_provider").required().check(
        |value| matches!(value.as_str(), Some("apns.dev" | "apns" | "fcm")),
        "The :attribute should be in apns.dev, apns, fcm",
    );
    v.field("pn_param").check(
        |value| value.is_null() || value.as_str().is_some_and(|s| param.is_match(s)),
        "The :attribute should be null or contain only alphanumeric, dots and underscore characters",
    );
    v.field("pn_prid").check(
        |value| value.is_null() || value.as_str().is_some_and(|s| prid.is_match(s)),
        "The :attribute should be null or contain only alphanumeric, dashes, underscore and colon characters",
    );
}

/// The device triple of a send-by-push request (absent values as empty strings, see the ⚠ in §2.4).
fn device(input: &Input) -> (String, String, String) {
    (
        input.text("pn_provider").unwrap_or_default(),
        input.text("pn_param").unwrap_or_default(),
        input.text("pn_prid").unwrap_or_default(),
    )
}

/// Which table a send-by-push endpoint works on.
#[derive(Clone, Copy)]
enum PushedToken {
    Creation,
    Recovery,
}

impl PushedToken {
    fn table(self) -> &'static str {
        match self {
            PushedToken::Creation => "account_creation_tokens",
            PushedToken::Recovery => "account_recovery_tokens",
        }
    }
}

/// True when a *used* token for the same device was created within the last `minutes`.
async fn throttled(
    db: &Db,
    kind: PushedToken,
    device: &(String, String, String),
    minutes: u64,
) -> Result<bool, sqlx::Error> {
    let since = flexiapi_core::time::now() - Duration::minutes(minutes as i64);
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE pn_provider = $1 AND COALESCE(pn_param, '') = $2 \
         AND COALESCE(pn_prid, '') = $3 AND used = TRUE AND created_at >= $4",
        kind.table()
    );
    let count: i64 = with_db!(db, pool => sqlx::query_scalar(&sql)
        .bind(&device.0).bind(&device.1).bind(&device.2).bind(since)
        .fetch_one(pool)
        .await)?;
    Ok(count > 0)
}

async fn send_by_push(
    state: AppState,
    ctx: Ctx,
    input: Input,
    kind: PushedToken,
) -> ApiResult<Response> {
    let mut v = Validator::new(&input.0, ctx.locale);
    validate_push_fields(&mut v);
    v.finish()?;
    let device = device(&input);
    let window = match kind {
        PushedToken::Creation => state.config.limits.account_creation_token_retry_minutes,
        // Upstream has no such setting (window ~0); a configurable 60-minute default, as for creation.
        PushedToken::Recovery => state
            .config
            .limits
            .account_recovery_token_retry_minutes
            .unwrap_or(60),
    };
    if throttled(&state.db, kind, &device, window).await? {
        return Err(HttpError::message(
            StatusCode::TOO_MANY_REQUESTS,
            "Last token requested too recently",
        )
        .into());
    }
    let token = token::alphanumeric(token::SHORT);
    let push = Push {
        pn_provider: device.0.clone(),
        pn_param: device.1.clone(),
        pn_prid: device.2.clone(),
        payload: Some(json!({"token": token}).to_string()),
        call_id: None,
        kind: "background".into(),
    };
    if let Err(error) = push::send(&state.config, &push).await {
        tracing::warn!(%error, "token push not sent");
        return Err(HttpError::message(StatusCode::SERVICE_UNAVAILABLE, "Token not sent").into());
    }
    let now = flexiapi_core::time::now();
    let sql = format!(
        "INSERT INTO {} (token, pn_provider, pn_param, pn_prid, used, ip, user_agent, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $7)",
        kind.table()
    );
    with_db!(&state.db, pool => sqlx::query(&sql)
        .bind(&token).bind(&device.0).bind(&device.1).bind(&device.2)
        .bind(&ctx.ip).bind(&ctx.user_agent).bind(now)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /api/account_creation_tokens/send-by-push`.
pub async fn creation_send_by_push(
    State(state): State<AppState>,
    ctx: Ctx,
    input: Input,
) -> ApiResult<Response> {
    send_by_push(state, ctx, input, PushedToken::Creation).await
}

/// `POST /api/account_recovery_tokens/send-by-push`.
pub async fn recovery_send_by_push(
    State(state): State<AppState>,
    ctx: Ctx,
    input: Input,
) -> ApiResult<Response> {
    send_by_push(state, ctx, input, PushedToken::Recovery).await
}

/// Inserts a fresh account creation token; answers its 201 body `{"token","ip","user_agent","expire_at"}`.
async fn new_creation_token(state: &AppState, ctx: &Ctx) -> ApiResult<(i64, Value)> {
    let token = token::alphanumeric(token::SHORT);
    let now = flexiapi_core::time::now();
    let id: i64 = with_db!(&state.db, pool => sqlx::query_scalar(
        "INSERT INTO account_creation_tokens (token, used, ip, user_agent, created_at, updated_at) \
         VALUES ($1, FALSE, $2, $3, $4, $4) RETURNING id")
        .bind(&token).bind(&ctx.ip).bind(&ctx.user_agent).bind(now)
        .fetch_one(pool)
        .await)?;
    let minutes = state
        .config
        .limits
        .account_creation_token_expiration_minutes;
    Ok((
        id,
        json!({"token": token, "ip": ctx.ip, "user_agent": ctx.user_agent, "expire_at": expire_at(now, minutes)}),
    ))
}

/// `POST /api/account_creation_tokens` (admin): 201 new token.
pub async fn admin_create_creation_token(
    State(state): State<AppState>,
    ctx: Ctx,
) -> ApiResult<Response> {
    let (_, body) = new_creation_token(&state, &ctx).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /api/account_creation_tokens/using-account-creation-request-token`.
pub async fn creation_using_request_token(
    State(state): State<AppState>,
    ctx: Ctx,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    let request: Option<(i64, Option<NaiveDateTime>)> = match input
        .str("account_creation_request_token")
    {
        Some(text) if text.chars().count() == token::SHORT => with_db!(db, pool => sqlx::query_as(
            "SELECT id, validated_at FROM account_creation_request_tokens WHERE token = $1 AND used = FALSE \
             ORDER BY id LIMIT 1")
            .bind(text)
            .fetch_optional(pool)
            .await)?,
        _ => None,
    };
    let mut v = Validator::new(&input.0, ctx.locale);
    v.field("account_creation_request_token").required().check(
        |_| request.is_some(),
        "Please provide a valid account_creation_request_token",
    );
    v.finish()?;
    let Some((request_id, Some(_validated))) = request else {
        return Err(empty_not_found().into());
    };
    let (token_id, body) = new_creation_token(&state, &ctx).await?;
    with_db!(db, pool => sqlx::query(
        "UPDATE account_creation_request_tokens SET used = TRUE, acc_creation_token_id = $1, updated_at = $2 \
         WHERE id = $3")
        .bind(token_id).bind(flexiapi_core::time::now()).bind(request_id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A creation token row as `consume` answers it.
#[derive(sqlx::FromRow)]
struct CreationTokenRow {
    id: i64,
    token: String,
    pn_provider: Option<String>,
    pn_param: Option<String>,
    pn_prid: Option<String>,
    created_at: Option<NaiveDateTime>,
}

/// `POST /api/account_creation_tokens/consume` (user): the token is now the caller's.
pub async fn consume_creation_token(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    let Some(text) = input.text("account_creation_token") else {
        return Err(empty_not_found().into());
    };
    let row: Option<CreationTokenRow> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, token, pn_provider, pn_param, pn_prid, created_at FROM account_creation_tokens \
         WHERE token = $1 AND used = FALSE AND account_id IS NULL ORDER BY id LIMIT 1")
        .bind(&text)
        .fetch_optional(pool)
        .await)?;
    let Some(row) = row else {
        return Err(empty_not_found().into());
    };
    let account_id = caller.account.id;
    with_db!(db, pool => sqlx::query(
        "UPDATE account_creation_tokens SET account_id = $1, ip = $2, user_agent = $3, used = TRUE, updated_at = $4 \
         WHERE id = $5")
        .bind(account_id).bind(&ctx.ip).bind(&ctx.user_agent).bind(flexiapi_core::time::now()).bind(row.id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    let minutes = state
        .config
        .limits
        .account_creation_token_expiration_minutes;
    let expire = row
        .created_at
        .map_or(Value::Null, |created| expire_at(created, minutes));
    Ok(Json(json!({
        "token": row.token,
        "pn_provider": row.pn_provider,
        "pn_param": row.pn_param,
        "pn_prid": row.pn_prid,
        "used": true,
        "account_id": account_id,
        "ip": ctx.ip,
        "user_agent": ctx.user_agent,
        "expire_at": expire,
    }))
    .into_response())
}

/// `POST /api/accounts/auth_token` (public): 201 a new, unattached auth token.
pub async fn create_auth_token(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    let token = token::alphanumeric(token::AUTH_TOKEN);
    let now = flexiapi_core::time::now();
    let id: i64 = with_db!(&state.db, pool => sqlx::query_scalar(
        "INSERT INTO auth_tokens (token, ip, user_agent, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         RETURNING id")
        .bind(&token).bind(&ctx.ip).bind(&ctx.user_agent).bind(now)
        .fetch_one(pool)
        .await)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "ip": ctx.ip,
            "user_agent": ctx.user_agent,
            "updated_at": laravel(&now),
            "created_at": laravel(&now),
            "id": id,
        })),
    )
        .into_response())
}

/// A live (less than 5 minutes old) auth token: `(id, account_id)`.
async fn live_auth_token(db: &Db, token: &str) -> Result<Option<(i64, Option<i64>)>, sqlx::Error> {
    let since = flexiapi_core::time::now() - Duration::minutes(AUTH_TOKEN_MINUTES);
    with_db!(db, pool => sqlx::query_as(
        "SELECT id, account_id FROM auth_tokens WHERE token = $1 AND created_at > $2")
        .bind(token).bind(since)
        .fetch_optional(pool)
        .await)
}

/// `GET /api/accounts/auth_token/{auth_token}/attach` (user): empty 200, 404 when unknown/old/attached.
pub async fn attach_auth_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let Some((id, None)) = live_auth_token(&state.db, &token).await? else {
        return Err(empty_not_found().into());
    };
    let updated = with_db!(&state.db, pool => sqlx::query(
        "UPDATE auth_tokens SET account_id = $1, updated_at = $2 WHERE id = $3 AND account_id IS NULL")
        .bind(caller.account.id).bind(flexiapi_core::time::now()).bind(id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    if updated == 0 {
        return Err(empty_not_found().into());
    }
    Ok(StatusCode::OK.into_response())
}

/// `GET /api/accounts/me/api_key/{auth_token}` (public): `{"api_key"}` + cookie; the auth token is spent.
pub async fn exchange_auth_token(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let Some((id, Some(account_id))) = live_auth_token(&state.db, &token).await? else {
        return Err(empty_not_found().into());
    };
    // Deleting first makes the exchange one-shot even under concurrent calls.
    let deleted = with_db!(&state.db, pool => sqlx::query("DELETE FROM auth_tokens WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    if deleted == 0 {
        return Err(empty_not_found().into());
    }
    let key = access::generate_user_key(&state, account_id, &ctx.ip).await?;
    let mut response = Json(json!({"api_key": key})).into_response();
    crate::account::me::add_key_cookie(&mut response, &state, &ctx, &key);
    Ok(response)
}
