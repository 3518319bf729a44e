//! Contacts lists of a space (api-accounts.md §2.17): named groups of accounts that, once attached to an
//! account, become part of that account's contacts ([`crate::contacts::contact_set`]).
//!
//! Decision: lists are only reachable through their own space (upstream finds them in any space on PUT and on
//! attach, and PUT even moves them to the caller's space); the title stays globally unique and a duplicate is a
//! 422 instead of upstream's 500.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDateTime;
use http::StatusCode;
use serde_json::{json, Value};

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::{text_response, HttpError};
use flexiapi_core::model::Space;
use flexiapi_core::time::laravel_json;
use flexiapi_core::{with_db, Db};

use crate::access;
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::keys;
use crate::state::AppState;

#[derive(sqlx::FromRow)]
struct ListRow {
    id: i64,
    title: String,
    description: Option<String>,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
    space_id: Option<i64>,
    contacts_count: i64,
}

impl ListRow {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "created_at": laravel_json(self.created_at.as_ref()),
            "updated_at": laravel_json(self.updated_at.as_ref()),
            "space_id": self.space_id,
            "contacts_count": self.contacts_count,
        })
    }
}

const SELECT: &str = "SELECT l.id, l.title, l.description, l.created_at, l.updated_at, l.space_id, \
     (SELECT COUNT(*) FROM contacts_list_contact m WHERE m.contacts_list_id = l.id) AS contacts_count \
     FROM contacts_lists l";

fn not_found(id: &str) -> HttpError {
    HttpError::model_not_found("ContactsList", id)
}

async fn find(db: &Db, space: &Space, id: &str) -> ApiResult<ListRow> {
    let list_id = id.parse::<i64>().map_err(|_| not_found(id))?;
    let sql = format!("{SELECT} WHERE l.id = $1 AND l.space_id = $2");
    let row: Option<ListRow> = with_db!(db, pool => sqlx::query_as(&sql)
        .bind(list_id).bind(space.id).fetch_optional(pool).await)?;
    Ok(row.ok_or_else(|| not_found(id))?)
}

async fn validate(db: &Db, ctx: &Ctx, input: &Input, ignore: i64) -> ApiResult<()> {
    let taken = match input.text("title") {
        Some(title) => {
            with_db!(db, pool => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM contacts_lists WHERE title = $1 AND id <> $2")
                .bind(title).bind(ignore).fetch_one(pool).await)?
                > 0
        }
        None => false,
    };
    let mut v = Validator::new(&input.0, ctx.locale);
    keys::unique(
        keys::scalar_text(v.field("title").required()).max(255),
        taken,
    );
    keys::scalar_text(v.field("description").required());
    Ok(v.finish()?)
}

/// `GET /api/contacts_lists`: the lists of the request space with their `contacts_count`.
pub async fn index(State(state): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    let sql = format!("{SELECT} WHERE l.space_id = $1 ORDER BY l.id");
    let rows: Vec<ListRow> = with_db!(&state.db, pool => sqlx::query_as(&sql)
        .bind(ctx.space.id).fetch_all(pool).await)?;
    let items: Vec<Value> = rows.iter().map(ListRow::to_json).collect();
    Ok(Json(Value::Array(items)).into_response())
}

/// `GET /api/contacts_lists/{id}` (upstream answers 500: the intended object or 404, D1).
pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(find(&state.db, &ctx.space, &id).await?.to_json()).into_response())
}

/// `POST /api/contacts_lists`: 201 without `contacts_count`.
pub async fn store(State(state): State<AppState>, ctx: Ctx, input: Input) -> ApiResult<Response> {
    validate(&state.db, &ctx, &input, -1).await?;
    let title = input.text("title").unwrap_or_default();
    let description = input.text("description");
    let now = flexiapi_core::time::now();
    let id: i64 = with_db!(&state.db, pool => sqlx::query_scalar(
        "INSERT INTO contacts_lists (space_id, title, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING id")
        .bind(ctx.space.id).bind(&title).bind(&description).bind(now).fetch_one(pool).await)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "space_id": ctx.space.id,
            "title": title,
            "description": description,
            "updated_at": laravel_json(Some(&now)),
            "created_at": laravel_json(Some(&now)),
            "id": id,
        })),
    )
        .into_response())
}

/// `PUT /api/contacts_lists/{id}`.
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    input: Input,
) -> ApiResult<Response> {
    let list_id = id.parse::<i64>().unwrap_or(-1);
    validate(&state.db, &ctx, &input, list_id).await?;
    let list = find(&state.db, &ctx.space, &id).await?;
    let now = flexiapi_core::time::now();
    with_db!(&state.db, pool => sqlx::query(
        "UPDATE contacts_lists SET title = $1, description = $2, updated_at = $3 WHERE id = $4")
        .bind(input.text("title")).bind(input.text("description")).bind(now).bind(list.id)
        .execute(pool).await.map(|_| ()))?;
    Ok(Json(find(&state.db, &ctx.space, &id).await?.to_json()).into_response())
}

/// `DELETE /api/contacts_lists/{id}`: the number of deleted lists as text (`0` when unknown).
pub async fn destroy(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = id.parse::<i64>().unwrap_or(-1);
    let deleted = with_db!(&state.db, pool => sqlx::query(
        "DELETE FROM contacts_lists WHERE id = $1 AND space_id = $2")
        .bind(id).bind(ctx.space.id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(text_response(StatusCode::OK, deleted.to_string()))
}

/// `POST /api/contacts_lists/{list}/contacts/{contact_id}`: adds an account of the space (idempotent).
pub async fn add_contact(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((list_id, contact_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let db = &state.db;
    let list = find(db, &ctx.space, &list_id).await?;
    let contact = access::space_account(db, &ctx.space, access::parse_id(&contact_id)?).await?;
    let now = flexiapi_core::time::now();
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        sqlx::query("DELETE FROM contacts_list_contact WHERE contacts_list_id = $1 AND contact_id = $2")
            .bind(list.id).bind(contact.id).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO contacts_list_contact (contacts_list_id, contact_id, created_at, updated_at) VALUES ($1, $2, $3, $3)")
            .bind(list.id).bind(contact.id).bind(now).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    Ok(text_response(StatusCode::OK, ""))
}

/// `DELETE /api/contacts_lists/{list}/contacts/{contact_id}`: 404 when not a member, else `1`.
pub async fn remove_contact(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((list_id, contact_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let db = &state.db;
    let list = find(db, &ctx.space, &list_id).await?;
    let contact_id = contact_id
        .parse::<i64>()
        .map_err(|_| HttpError::bare_not_found())?;
    let removed = with_db!(db, pool => sqlx::query(
        "DELETE FROM contacts_list_contact WHERE contacts_list_id = $1 AND contact_id = $2")
        .bind(list.id).bind(contact_id).execute(pool).await.map(|r| r.rows_affected()))?;
    if removed == 0 {
        return Err(HttpError::bare_not_found().into());
    }
    Ok(text_response(StatusCode::OK, removed.to_string()))
}

/// `POST /api/accounts/{id}/contacts_lists/{list}`: 403 when already attached, else empty 200.
pub async fn attach(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, list_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::space_account(db, &ctx.space, access::parse_id(&id)?).await?;
    let numeric = list_id.parse::<i64>().unwrap_or(-1);
    let attached: i64 = with_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM account_contacts_list WHERE account_id = $1 AND contacts_list_id = $2")
        .bind(account.id).bind(numeric).fetch_one(pool).await)?;
    if attached > 0 {
        return Err(HttpError::message(StatusCode::FORBIDDEN, "").into());
    }
    let list = find(db, &ctx.space, &list_id).await?;
    let now = flexiapi_core::time::now();
    with_db!(db, pool => sqlx::query(
        "INSERT INTO account_contacts_list (account_id, contacts_list_id, created_at, updated_at) VALUES ($1, $2, $3, $3)")
        .bind(account.id).bind(list.id).bind(now).execute(pool).await.map(|_| ()))?;
    Ok(text_response(StatusCode::OK, ""))
}

/// `DELETE /api/accounts/{id}/contacts_lists/{list}`: 403 when not attached, else `1`.
pub async fn detach(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, list_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::space_account(db, &ctx.space, access::parse_id(&id)?).await?;
    let list_id = list_id.parse::<i64>().unwrap_or(-1);
    let removed = with_db!(db, pool => sqlx::query(
        "DELETE FROM account_contacts_list WHERE account_id = $1 AND contacts_list_id = $2")
        .bind(account.id).bind(list_id).execute(pool).await.map(|r| r.rows_affected()))?;
    if removed == 0 {
        return Err(HttpError::message(StatusCode::FORBIDDEN, "").into());
    }
    Ok(text_response(StatusCode::OK, removed.to_string()))
}
