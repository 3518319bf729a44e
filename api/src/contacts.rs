//! Contacts of an account (api-accounts.md §2.11, §2.13) and their vCard 4.0 export (provisioning.md §8.1–8.2).
//!
//! The contact set of an account = accounts linked directly (`contacts`) ∪ members of every contacts list
//! attached to the account (`account_contacts_list` → `contacts_list_contact`), any space, ascending id.
//! Admins manage the direct links here; lists live in [`crate::contacts_list`].

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde_json::Value;

use flexiapi_core::http::{text_response, HttpError};
use flexiapi_core::model::Account;
use flexiapi_core::{with_db, Db};

use crate::access::{self, Authenticated};
use crate::account::{render, View};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

const CONTACT_SET: &str = "SELECT * FROM accounts WHERE id IN (\
     SELECT contact_id FROM contacts WHERE account_id = $1 \
     UNION SELECT m.contact_id FROM contacts_list_contact m \
     JOIN account_contacts_list l ON l.contacts_list_id = m.contacts_list_id WHERE l.account_id = $1)";

/// The whole contact set of `account_id`, ascending id.
pub async fn contact_set(db: &Db, account_id: i64) -> Result<Vec<Account>, sqlx::Error> {
    let sql = format!("{CONTACT_SET} ORDER BY id");
    with_db!(db, pool => sqlx::query_as(&sql).bind(account_id).fetch_all(pool).await)
}

/// The contact `username@domain` of `account_id`'s contact set (a value without `@` never matches).
pub async fn find_in_set(
    db: &Db,
    account_id: i64,
    sip: &str,
) -> Result<Option<Account>, sqlx::Error> {
    let Some((username, domain)) = sip.split_once('@') else {
        return Ok(None);
    };
    let sql = format!("{CONTACT_SET} AND username = $2 AND domain = $3 ORDER BY id LIMIT 1");
    with_db!(db, pool => sqlx::query_as(&sql)
        .bind(account_id).bind(username).bind(domain)
        .fetch_optional(pool).await)
}

/// The vCard 4.0 of a contact, lines separated by `\n`, no trailing newline.
pub async fn vcard4(db: &Db, contact: &Account) -> Result<String, sqlx::Error> {
    let types: Vec<String> = with_db!(db, pool => sqlx::query_scalar(
        "SELECT t.key FROM account_types t JOIN account_account_type l ON l.account_type_id = t.id \
         WHERE l.account_id = $1 ORDER BY t.id")
        .bind(contact.id).fetch_all(pool).await)?;
    let actions: Vec<(String, String)> = if contact.dtmf_protocol.is_some() {
        with_db!(db, pool => sqlx::query_as(
            "SELECT key, code FROM account_actions WHERE account_id = $1 ORDER BY id")
            .bind(contact.id).fetch_all(pool).await)?
    } else {
        Vec::new()
    };
    let identifier = contact.identifier();
    let mut lines = vec![
        "BEGIN:VCARD".to_owned(),
        "VERSION:4.0".to_owned(),
        "KIND:individual".to_owned(),
        format!("IMPP:sip:{identifier}"),
    ];
    let name = contact
        .display_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(&identifier);
    lines.push(format!("FN:{name}"));
    if let Some(dtmf) = &contact.dtmf_protocol {
        lines.push(format!("X-LINPHONE-ACCOUNT-DTMF-PROTOCOL:{dtmf}"));
    }
    lines.extend(
        types
            .iter()
            .map(|key| format!("X-LINPHONE-ACCOUNT-TYPE:{key}")),
    );
    lines.extend(
        actions
            .iter()
            .map(|(key, code)| format!("X-LINPHONE-ACCOUNT-ACTION:{key};{code}")),
    );
    lines.push("END:VCARD".to_owned());
    Ok(lines.join("\n"))
}

/// `GET /api/accounts/me/contacts`: the caller's contact set.
pub async fn my_contacts(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
) -> ApiResult<Response> {
    let mut items = Vec::new();
    for contact in contact_set(&state.db, caller.account.id).await? {
        items.push(render(&state.db, &state.config, &contact, View::Contact).await?);
    }
    Ok(Json(Value::Array(items)).into_response())
}

/// `GET /api/accounts/me/contacts/{sip}`.
pub async fn my_contact(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
    Path(sip): Path<String>,
) -> ApiResult<Response> {
    let contact = find_in_set(&state.db, caller.account.id, &sip)
        .await?
        .ok_or_else(|| HttpError::not_found("Account"))?;
    Ok(Json(render(&state.db, &state.config, &contact, View::Contact).await?).into_response())
}

/// `GET /contacts/vcard`: one vCard per contact, joined by `\n`.
pub async fn vcards(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
) -> ApiResult<Response> {
    let mut cards = Vec::new();
    for contact in contact_set(&state.db, caller.account.id).await? {
        cards.push(vcard4(&state.db, &contact).await?);
    }
    Ok(text_response(StatusCode::OK, cards.join("\n")))
}

/// `GET /contacts/vcard/{sip}`.
pub async fn vcard(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
    Path(sip): Path<String>,
) -> ApiResult<Response> {
    let contact = find_in_set(&state.db, caller.account.id, &sip)
        .await?
        .ok_or_else(|| HttpError::not_found("Account"))?;
    Ok(text_response(
        StatusCode::OK,
        vcard4(&state.db, &contact).await?,
    ))
}

async fn direct_contacts(db: &Db, account_id: i64) -> Result<Vec<Account>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as(
        "SELECT a.* FROM accounts a JOIN contacts c ON c.contact_id = a.id WHERE c.account_id = $1 ORDER BY a.id")
        .bind(account_id).fetch_all(pool).await)
}

/// `GET /api/accounts/{id}/contacts`: the direct contacts, as full Account objects.
pub async fn index(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let mut items = Vec::new();
    for contact in direct_contacts(&state.db, account.id).await? {
        items.push(render(&state.db, &state.config, &contact, View::Full).await?);
    }
    Ok(Json(Value::Array(items)).into_response())
}

/// `GET /api/accounts/{id}/contacts/{contact_id}`.
pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, contact_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let contact_id = access::parse_id(&contact_id)?;
    let contact = direct_contacts(&state.db, account.id)
        .await?
        .into_iter()
        .find(|c| c.id == contact_id)
        .ok_or_else(|| HttpError::not_found("Account"))?;
    Ok(Json(render(&state.db, &state.config, &contact, View::Full).await?).into_response())
}

/// `POST /api/accounts/{id}/contacts/{contact_id}`: links an account of the same space (idempotent).
pub async fn add(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, contact_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::space_account(db, &ctx.space, access::parse_id(&id)?).await?;
    let contact = access::space_account(db, &ctx.space, access::parse_id(&contact_id)?).await?;
    let now = flexiapi_core::time::now();
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        sqlx::query("DELETE FROM contacts WHERE account_id = $1 AND contact_id = $2")
            .bind(account.id).bind(contact.id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO contacts (account_id, contact_id, created_at, updated_at) VALUES ($1, $2, $3, $3)")
            .bind(account.id).bind(contact.id).bind(now).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    Ok(text_response(StatusCode::OK, ""))
}

/// `DELETE /api/accounts/{id}/contacts/{contact_id}`: 404 when not a contact, else `1`.
pub async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((id, contact_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::space_account(db, &ctx.space, access::parse_id(&id)?).await?;
    let contact_id = contact_id
        .parse::<i64>()
        .map_err(|_| HttpError::bare_not_found())?;
    let removed = with_db!(db, pool => sqlx::query(
        "DELETE FROM contacts WHERE account_id = $1 AND contact_id = $2")
        .bind(account.id).bind(contact_id).execute(pool).await.map(|r| r.rows_affected()))?;
    if removed == 0 {
        return Err(HttpError::bare_not_found().into());
    }
    Ok(text_response(StatusCode::OK, removed.to_string()))
}
