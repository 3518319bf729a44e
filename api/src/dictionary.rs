//! An account's dictionary (api-accounts.md §2.14): free key/value strings, exposed in the Account JSON.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::{json, Map, Value};

use flexiapi_core::http::text_response;
use flexiapi_core::http::validation::Validator;
use flexiapi_core::with_db;

use crate::access;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::keys;
use crate::state::AppState;

/// Largest key and value (the columns are 255 characters; longer input is a 422, never a 500).
const MAX_LENGTH: usize = 255;

/// `GET /api/accounts/{id}/dictionary`: `{"key":"value",…}` or `{}`.
pub async fn index(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let rows: Vec<(String, String)> = with_db!(&state.db, pool => sqlx::query_as(
        "SELECT key, value FROM account_dictionary_entries WHERE account_id = $1 ORDER BY id")
        .bind(account.id).fetch_all(pool).await)?;
    let map: Map<String, Value> = rows.into_iter().map(|(k, v)| (k, json!(v))).collect();
    Ok(Json(Value::Object(map)).into_response())
}

/// `GET /api/accounts/{id}/dictionary/{key}`: `{"value"}`, or an empty 200 for an unknown key.
pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let value: Option<String> = with_db!(&state.db, pool => sqlx::query_scalar(
        "SELECT value FROM account_dictionary_entries WHERE account_id = $1 AND key = $2")
        .bind(account.id).bind(&key).fetch_optional(pool).await)?;
    Ok(match value {
        Some(value) => Json(json!({ "value": value })).into_response(),
        None => text_response(StatusCode::OK, ""),
    })
}

/// `POST /api/accounts/{id}/dictionary/{key}`: sets the entry; always 201 `{"value"}`.
pub async fn store(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
    input: Input,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let mut v = Validator::new(&input.0, ctx.locale);
    // Decision: arrays/objects are refused with the `string` message (upstream answers 500).
    v.field("value")
        .required()
        .check_localized(
            |value| keys::scalar(value).is_some() || value.is_boolean(),
            "The :attribute must be a string.",
            "Le :attribute doit être une chaîne.",
        )
        .max(MAX_LENGTH);
    if key.chars().count() > MAX_LENGTH {
        let message = v.render(
            "The :attribute may not be greater than :max characters.",
            "key",
            &[("max", "255")],
        );
        v.add("key", message);
    }
    v.finish()?;
    let value = input.text("value").unwrap_or_default();
    let now = flexiapi_core::time::now();
    with_db!(&state.db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        sqlx::query("DELETE FROM account_dictionary_entries WHERE account_id = $1 AND key = $2")
            .bind(account.id).bind(&key).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO account_dictionary_entries (account_id, key, value, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
            .bind(account.id).bind(&key).bind(&value).bind(now).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    Ok((StatusCode::CREATED, Json(json!({ "value": value }))).into_response())
}

/// `DELETE /api/accounts/{id}/dictionary/{key}`: the number of deleted entries as text.
pub async fn destroy(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let deleted = with_db!(&state.db, pool => sqlx::query(
        "DELETE FROM account_dictionary_entries WHERE account_id = $1 AND key = $2")
        .bind(account.id).bind(&key).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(text_response(StatusCode::OK, deleted.to_string()))
}

/// `DELETE /api/accounts/{id}/dictionary`: clears the dictionary; the count as text.
pub async fn clear(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let deleted = with_db!(&state.db, pool => sqlx::query(
        "DELETE FROM account_dictionary_entries WHERE account_id = $1")
        .bind(account.id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(text_response(StatusCode::OK, deleted.to_string()))
}
