//! Account types (api-accounts.md §2.18): global keys (`phone`, `door`…) attached to accounts; shown in the
//! Account JSON (`types`) and in vCards (`X-LINPHONE-ACCOUNT-TYPE`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::{json, Value};

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::{text_response, HttpError};
use flexiapi_core::{with_db, Db};

use crate::access;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::keys;
use crate::state::AppState;

async fn find(db: &Db, id: i64) -> Result<Option<(i64, String)>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as("SELECT id, key FROM account_types WHERE id = $1")
        .bind(id).fetch_optional(pool).await)
}

async fn key_taken(db: &Db, key: Option<String>, ignore: i64) -> Result<bool, sqlx::Error> {
    let Some(key) = key else { return Ok(false) };
    let count: i64 = with_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM account_types WHERE key = $1 AND id <> $2")
        .bind(key).bind(ignore).fetch_one(pool).await)?;
    Ok(count > 0)
}

fn not_found(id: impl std::fmt::Display) -> HttpError {
    HttpError::model_not_found("AccountType", id)
}

fn parse(id: &str) -> ApiResult<i64> {
    Ok(id.parse().map_err(|_| not_found(id))?)
}

/// `GET /api/account_types`.
pub async fn index(State(state): State<AppState>) -> ApiResult<Response> {
    let rows: Vec<(i64, String)> = with_db!(&state.db, pool => sqlx::query_as(
        "SELECT id, key FROM account_types ORDER BY id").fetch_all(pool).await)?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, key)| json!({"id": id, "key": key}))
        .collect();
    Ok(Json(Value::Array(items)).into_response())
}

/// `GET /api/account_types/{id}` (upstream answers 500: the intended object or 404, D1).
pub async fn show(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let (id, key) = find(&state.db, parse(&id)?)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({"id": id, "key": key})).into_response())
}

/// `POST /api/account_types`: 201 `{"key","id"}`.
pub async fn store(State(state): State<AppState>, ctx: Ctx, input: Input) -> ApiResult<Response> {
    let taken = key_taken(&state.db, input.text("key"), -1).await?;
    let mut v = Validator::new(&input.0, ctx.locale);
    let field = keys::alpha_dash(v.field("key").required());
    keys::unique(keys::no_uppercase(field).max(64), taken);
    v.finish()?;
    let key = input.text("key").unwrap_or_default();
    let now = flexiapi_core::time::now();
    let id: i64 = with_db!(&state.db, pool => sqlx::query_scalar(
        "INSERT INTO account_types (key, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id")
        .bind(&key).bind(now).fetch_one(pool).await)?;
    Ok((StatusCode::CREATED, Json(json!({"key": key, "id": id}))).into_response())
}

/// `PUT /api/account_types/{id}`. Decision: `key` is required and unique (upstream answers 500 otherwise).
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    input: Input,
) -> ApiResult<Response> {
    let type_id = id.parse::<i64>().unwrap_or(-1);
    let taken = key_taken(&state.db, input.text("key"), type_id).await?;
    let mut v = Validator::new(&input.0, ctx.locale);
    let field = keys::alpha_dash(v.field("key").required());
    keys::unique(keys::no_uppercase(field).max(64), taken);
    v.finish()?;
    let (type_id, _) = find(&state.db, parse(&id)?)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let key = input.text("key").unwrap_or_default();
    let now = flexiapi_core::time::now();
    with_db!(&state.db, pool => sqlx::query("UPDATE account_types SET key = $1, updated_at = $2 WHERE id = $3")
        .bind(&key).bind(now).bind(type_id).execute(pool).await.map(|_| ()))?;
    Ok(Json(json!({"id": type_id, "key": key})).into_response())
}

/// `DELETE /api/account_types/{id}`: the number of deleted types as text.
pub async fn destroy(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = id.parse::<i64>().unwrap_or(-1);
    let deleted = with_db!(&state.db, pool => sqlx::query("DELETE FROM account_types WHERE id = $1")
        .bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(text_response(StatusCode::OK, deleted.to_string()))
}

/// `POST /api/accounts/{id}/types/{type_id}`: 403 when already attached, 404 unknown type, else empty 200.
pub async fn attach(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, type_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::space_account(db, &ctx.space, access::parse_id(&id)?).await?;
    let type_id = parse(&type_id)?;
    if attached(db, account.id, type_id).await? {
        return Err(HttpError::message(StatusCode::FORBIDDEN, "").into());
    }
    find(db, type_id).await?.ok_or_else(|| not_found(type_id))?;
    let now = flexiapi_core::time::now();
    with_db!(db, pool => sqlx::query(
        "INSERT INTO account_account_type (account_id, account_type_id, created_at, updated_at) VALUES ($1, $2, $3, $3)")
        .bind(account.id).bind(type_id).bind(now).execute(pool).await.map(|_| ()))?;
    Ok(text_response(StatusCode::OK, ""))
}

/// `DELETE /api/accounts/{id}/types/{type_id}`: 403 when not attached, else `1`.
pub async fn detach(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, type_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::space_account(db, &ctx.space, access::parse_id(&id)?).await?;
    let type_id = type_id
        .parse::<i64>()
        .map_err(|_| HttpError::bare_not_found())?;
    let removed = with_db!(db, pool => sqlx::query(
        "DELETE FROM account_account_type WHERE account_id = $1 AND account_type_id = $2")
        .bind(account.id).bind(type_id).execute(pool).await.map(|r| r.rows_affected()))?;
    if removed == 0 {
        return Err(HttpError::message(StatusCode::FORBIDDEN, "").into());
    }
    Ok(text_response(StatusCode::OK, removed.to_string()))
}

async fn attached(db: &Db, account_id: i64, type_id: i64) -> Result<bool, sqlx::Error> {
    let count: i64 = with_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM account_account_type WHERE account_id = $1 AND account_type_id = $2")
        .bind(account_id).bind(type_id).fetch_one(pool).await)?;
    Ok(count > 0)
}
