//! Account actions (api-accounts.md §2.16): DTMF key/code pairs of an account (door openers…), only meaningful
//! when the account has a DTMF protocol; shown in the Account JSON and in vCards (`X-LINPHONE-ACCOUNT-ACTION`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::{json, Value};

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::{text_response, HttpError};
use flexiapi_core::model::Account;
use flexiapi_core::with_db;

use crate::access;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::keys;
use crate::state::AppState;

/// The account `{id}` of the request space, refused (403) while it has no DTMF protocol.
async fn account(state: &AppState, ctx: &Ctx, id: &str) -> ApiResult<Account> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(id)?).await?;
    if account.dtmf_protocol.is_none() {
        return Err(
            HttpError::message(StatusCode::FORBIDDEN, "DTMF Protocol must be configured").into(),
        );
    }
    Ok(account)
}

fn not_found(id: &str) -> HttpError {
    HttpError::model_not_found("AccountAction", id)
}

/// `key` and `code` rules; `required` on both (PUT too: upstream answers 500 when one is missing).
fn validate(input: &Input, ctx: &Ctx) -> ApiResult<()> {
    let mut v = Validator::new(&input.0, ctx.locale);
    keys::no_uppercase(keys::alpha_dash(v.field("key").required())).max(255);
    keys::no_uppercase(keys::alpha_num(v.field("code").required())).max(255);
    Ok(v.finish()?)
}

/// `GET /api/accounts/{id}/actions`.
pub async fn index(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account = account(&state, &ctx, &id).await?;
    let rows: Vec<(i64, String, String)> = with_db!(&state.db, pool => sqlx::query_as(
        "SELECT id, key, code FROM account_actions WHERE account_id = $1 ORDER BY id")
        .bind(account.id).fetch_all(pool).await)?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|(id, key, code)| json!({"id": id, "key": key, "code": code}))
        .collect();
    Ok(Json(Value::Array(items)).into_response())
}

async fn find(
    state: &AppState,
    account_id: i64,
    action_id: &str,
) -> ApiResult<(i64, String, String)> {
    let id = action_id.parse::<i64>().map_err(|_| not_found(action_id))?;
    let row: Option<(i64, String, String)> = with_db!(&state.db, pool => sqlx::query_as(
        "SELECT id, key, code FROM account_actions WHERE account_id = $1 AND id = $2")
        .bind(account_id).bind(id).fetch_optional(pool).await)?;
    Ok(row.ok_or_else(|| not_found(action_id))?)
}

/// `GET /api/accounts/{id}/actions/{action_id}` (upstream answers 500: the intended object or 404, D1).
pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, action_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = account(&state, &ctx, &id).await?;
    let (id, key, code) = find(&state, account.id, &action_id).await?;
    Ok(Json(json!({"id": id, "key": key, "code": code})).into_response())
}

/// `POST /api/accounts/{id}/actions`: 201 `{"key","code","id"}`.
pub async fn store(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    input: Input,
) -> ApiResult<Response> {
    let account = account(&state, &ctx, &id).await?;
    validate(&input, &ctx)?;
    let key = input.text("key").unwrap_or_default();
    let code = input.text("code").unwrap_or_default();
    let now = flexiapi_core::time::now();
    let action_id: i64 = with_db!(&state.db, pool => sqlx::query_scalar(
        "INSERT INTO account_actions (account_id, key, code, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING id")
        .bind(account.id).bind(&key).bind(&code).bind(now).fetch_one(pool).await)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": key, "code": code, "id": action_id})),
    )
        .into_response())
}

/// `PUT /api/accounts/{id}/actions/{action_id}`.
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, action_id)): Path<(String, String)>,
    input: Input,
) -> ApiResult<Response> {
    let account = account(&state, &ctx, &id).await?;
    validate(&input, &ctx)?;
    let (action_id, _, _) = find(&state, account.id, &action_id).await?;
    let key = input.text("key").unwrap_or_default();
    let code = input.text("code").unwrap_or_default();
    let now = flexiapi_core::time::now();
    with_db!(&state.db, pool => sqlx::query(
        "UPDATE account_actions SET key = $1, code = $2, updated_at = $3 WHERE id = $4")
        .bind(&key).bind(&code).bind(now).bind(action_id).execute(pool).await.map(|_| ()))?;
    Ok(Json(json!({"id": action_id, "key": key, "code": code})).into_response())
}

/// `DELETE /api/accounts/{id}/actions/{action_id}`: the number of deleted actions as text (`0` when unknown).
pub async fn destroy(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, action_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = account(&state, &ctx, &id).await?;
    let action_id = action_id.parse::<i64>().unwrap_or(-1);
    let deleted = with_db!(&state.db, pool => sqlx::query(
        "DELETE FROM account_actions WHERE account_id = $1 AND id = $2")
        .bind(account.id).bind(action_id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(text_response(StatusCode::OK, deleted.to_string()))
}
