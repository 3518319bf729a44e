//! vCards storage (api-accounts.md §2.12, provisioning.md §8.3): cards an account keeps on the server, keyed
//! by their `UID`. The same functions serve the user routes (`/api/accounts/me/vcards-storage…`), the admin
//! routes (`/api/accounts/{id}/vcards-storage…`, account of the request space) and the raw-text pages
//! (`/vcards-storage…`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::NaiveDateTime;
use http::StatusCode;
use serde_json::{json, Map, Value};

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::{text_response, HttpError};
use flexiapi_core::time::laravel_json;
use flexiapi_core::{with_db, Db};

use crate::access::{self, Authenticated};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::state::AppState;
use crate::vcard::Vcard;

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    uuid: String,
    vcard: String,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
}

impl Row {
    fn to_json(&self) -> Value {
        json!({
            "vcard": self.vcard,
            "created_at": laravel_json(self.created_at.as_ref()),
            "updated_at": laravel_json(self.updated_at.as_ref()),
        })
    }
}

async fn all(db: &Db, account_id: i64) -> Result<Vec<Row>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as(
        "SELECT id, uuid, vcard, created_at, updated_at FROM vcards_storage WHERE account_id = $1 ORDER BY id")
        .bind(account_id).fetch_all(pool).await)
}

async fn one(db: &Db, account_id: i64, uuid: &str) -> ApiResult<Row> {
    let row: Option<Row> = with_db!(db, pool => sqlx::query_as(
        "SELECT id, uuid, vcard, created_at, updated_at FROM vcards_storage WHERE account_id = $1 AND uuid = $2")
        .bind(account_id).bind(uuid).fetch_optional(pool).await)?;
    Ok(row.ok_or_else(|| HttpError::not_found("VcardStorage"))?)
}

/// The `vcard` field: required, then upstream's Vcard rule; returns the parsed card.
fn validated(input: &Input, ctx: &Ctx) -> ApiResult<Vcard> {
    let mut v = Validator::new(&input.0, ctx.locale);
    let parsed = input.str("vcard").and_then(Vcard::parse_valid);
    v.field("vcard")
        .required()
        .check(|_| parsed.is_some(), "Invalid vcard passed");
    v.finish()?;
    Ok(parsed.ok_or_else(|| HttpError::internal("vcard validated but not parsed"))?)
}

async fn index(state: &AppState, account_id: i64) -> ApiResult<Response> {
    let map: Map<String, Value> = all(&state.db, account_id)
        .await?
        .into_iter()
        .map(|row| (row.uuid.clone(), row.to_json()))
        .collect();
    Ok(Json(Value::Object(map)).into_response())
}

async fn show(state: &AppState, account_id: i64, uuid: &str) -> ApiResult<Response> {
    Ok(Json(one(&state.db, account_id, uuid).await?.to_json()).into_response())
}

async fn store(state: &AppState, account_id: i64, card: Vcard) -> ApiResult<Response> {
    let uuid = card.uid().unwrap_or_default().to_owned();
    let exists: i64 = with_db!(&state.db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM vcards_storage WHERE account_id = $1 AND uuid = $2")
        .bind(account_id).bind(&uuid).fetch_one(pool).await)?;
    if exists > 0 {
        return Err(HttpError::message(StatusCode::CONFLICT, "Vcard already exists").into());
    }
    if uuid.chars().count() > 45 {
        // The column holds 45 characters; longer UIDs cannot be stored (refused like an invalid card).
        let mut errors = flexiapi_core::http::validation::ValidationErrors::default();
        errors.add("vcard", "Invalid vcard passed");
        return Err(HttpError::validation(errors).into());
    }
    let text = card.serialize();
    let now = flexiapi_core::time::now();
    with_db!(&state.db, pool => sqlx::query(
        "INSERT INTO vcards_storage (account_id, uuid, vcard, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)")
        .bind(account_id).bind(&uuid).bind(&text).bind(now).execute(pool).await.map(|_| ()))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "vcard": text,
            "updated_at": laravel_json(Some(&now)),
            "created_at": laravel_json(Some(&now)),
        })),
    )
        .into_response())
}

async fn update(state: &AppState, account_id: i64, uuid: &str, card: Vcard) -> ApiResult<Response> {
    let row = one(&state.db, account_id, uuid).await?;
    let text = card.serialize();
    let now = flexiapi_core::time::now();
    with_db!(&state.db, pool => sqlx::query(
        "UPDATE vcards_storage SET vcard = $1, updated_at = $2 WHERE id = $3")
        .bind(&text).bind(now).bind(row.id).execute(pool).await.map(|_| ()))?;
    Ok(Json(json!({
        "vcard": text,
        "created_at": laravel_json(row.created_at.as_ref()),
        "updated_at": laravel_json(Some(&now)),
    }))
    .into_response())
}

fn same_uid(card: &Vcard, uuid: &str) -> ApiResult<()> {
    if card.uid() != Some(uuid) {
        return Err(HttpError::message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UUID should be the same",
        )
        .into());
    }
    Ok(())
}

async fn destroy(state: &AppState, account_id: i64, uuid: &str) -> ApiResult<Response> {
    let row = one(&state.db, account_id, uuid).await?;
    with_db!(&state.db, pool => sqlx::query("DELETE FROM vcards_storage WHERE id = $1")
        .bind(row.id).execute(pool).await.map(|_| ()))?;
    Ok(text_response(StatusCode::OK, "1"))
}

/// `GET /api/accounts/me/vcards-storage`.
pub async fn my_index(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
) -> ApiResult<Response> {
    index(&state, caller.account.id).await
}

/// `GET /api/accounts/me/vcards-storage/{uuid}`.
pub async fn my_show(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
    Path(uuid): Path<String>,
) -> ApiResult<Response> {
    show(&state, caller.account.id, &uuid).await
}

/// `POST /api/accounts/me/vcards-storage`.
pub async fn my_store(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    input: Input,
) -> ApiResult<Response> {
    let card = validated(&input, &ctx)?;
    store(&state, caller.account.id, card).await
}

/// `PUT|PATCH /api/accounts/me/vcards-storage/{uuid}`.
pub async fn my_update(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    Path(uuid): Path<String>,
    input: Input,
) -> ApiResult<Response> {
    let card = validated(&input, &ctx)?;
    same_uid(&card, &uuid)?;
    update(&state, caller.account.id, &uuid, card).await
}

/// `DELETE /api/accounts/me/vcards-storage/{uuid}`.
pub async fn my_destroy(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
    Path(uuid): Path<String>,
) -> ApiResult<Response> {
    destroy(&state, caller.account.id, &uuid).await
}

async fn account_id(state: &AppState, ctx: &Ctx, id: &str) -> ApiResult<i64> {
    Ok(
        access::space_account(&state.db, &ctx.space, access::parse_id(id)?)
            .await?
            .id,
    )
}

/// `GET /api/accounts/{id}/vcards-storage`.
pub async fn admin_index(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account_id = account_id(&state, &ctx, &id).await?;
    index(&state, account_id).await
}

/// `GET /api/accounts/{id}/vcards-storage/{uuid}`.
pub async fn admin_show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, uuid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account_id = account_id(&state, &ctx, &id).await?;
    show(&state, account_id, &uuid).await
}

/// `POST /api/accounts/{id}/vcards-storage`.
pub async fn admin_store(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    input: Input,
) -> ApiResult<Response> {
    let account_id = account_id(&state, &ctx, &id).await?;
    let card = validated(&input, &ctx)?;
    store(&state, account_id, card).await
}

/// `PUT|PATCH /api/accounts/{id}/vcards-storage/{uuid}`.
pub async fn admin_update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, uuid)): Path<(String, String)>,
    input: Input,
) -> ApiResult<Response> {
    let account_id = account_id(&state, &ctx, &id).await?;
    let card = validated(&input, &ctx)?;
    same_uid(&card, &uuid)?;
    update(&state, account_id, &uuid, card).await
}

/// `DELETE /api/accounts/{id}/vcards-storage/{uuid}`.
pub async fn admin_destroy(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, uuid)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account_id = account_id(&state, &ctx, &id).await?;
    destroy(&state, account_id, &uuid).await
}

/// `GET /vcards-storage` (and `/vcards-storage/`): every stored card, each followed by `\n`.
pub async fn text_index(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
) -> ApiResult<Response> {
    let body: String = all(&state.db, caller.account.id)
        .await?
        .into_iter()
        .map(|row| row.vcard + "\n")
        .collect();
    Ok(text_response(StatusCode::OK, body))
}

/// `GET /vcards-storage/{uuid}`: the stored card as text.
pub async fn text_show(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
    Path(uuid): Path<String>,
) -> ApiResult<Response> {
    let row = one(&state.db, caller.account.id, &uuid).await?;
    Ok(text_response(StatusCode::OK, row.vcard))
}
