//! Admin account endpoints (`/api/accounts`, `/api/accounts/{id}…`).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::StatusCode;
use serde_json::Value;

use flexiapi_core::http::pagination::{page_number, paginate};
use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::HttpError;
use flexiapi_core::model::{Account, Algorithm, Space};
use flexiapi_core::{with_db, Db};

use crate::access::{self, Authenticated};
use crate::account::public::unauthorized_action;
use crate::account::rules::{self, Mode};
use crate::account::store::{self, Flag, NewAccount};
use crate::account::{render, View};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::mail;
use crate::state::AppState;
use crate::token;

/// Accounts per page of `GET /api/accounts`.
const PER_PAGE: u64 = 20;

async fn full(state: &AppState, account: &Account) -> ApiResult<Response> {
    Ok(Json(render(&state.db, &state.config, account, View::Full).await?).into_response())
}

/// `POST /api/accounts`: create an account (200 with the full Account).
pub async fn store(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    // Only a super admin chooses the domain; everyone else creates in the request space.
    let domain = match (caller.is_super_admin, input.text("domain")) {
        (true, Some(domain)) => domain,
        _ => ctx.space.domain.clone(),
    };
    let Some(target) = Space::find_by_domain(db, &domain).await? else {
        return Err(unauthorized_action().into());
    };
    if store::space_is_full(db, &target).await? {
        return Err(unauthorized_action().into());
    }
    let facts = rules::facts(
        db,
        &input,
        &domain,
        Mode::AdminCreate,
        ctx.space.unique_email,
    )
    .await?;
    let mut v = Validator::new(&input.0, ctx.locale);
    rules::username(&mut v, &state.config, &facts, Mode::AdminCreate);
    rules::domain(&mut v, &facts);
    rules::dictionary(&mut v);
    v.field("password").required().min(rules::MIN_LENGTH);
    rules::email(&mut v, &facts);
    rules::dtmf_protocol(&mut v);
    rules::phone(&mut v, &facts);
    rules::algorithm(&mut v);
    v.field("admin").nullable().boolean();
    v.field("activated").nullable().boolean();
    v.finish()?;

    let algorithm = match input.str("algorithm").and_then(Algorithm::parse) {
        Some(algorithm) => Some(algorithm),
        None => store::space_algorithm(db, &ctx.space).await?,
    };
    let dictionary = input
        .get("dictionary")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let account = store::create(
        db,
        NewAccount {
            username: input.text("username").unwrap_or_default(),
            domain,
            email: input.text("email"),
            display_name: input.text("display_name"),
            dtmf_protocol: input.text("dtmf_protocol"),
            phone: input.text("phone"),
            activated: rules::truthy(input.get("activated")),
            admin: rules::truthy(input.get("admin")),
            ip_address: ctx.ip.clone(),
            user_agent: ctx.user_agent_or_space(),
            password: algorithm.map(|a| (input.text("password").unwrap_or_default(), a)),
            dictionary,
        },
    )
    .await?;
    full(&state, &account).await
}

/// `PUT /api/accounts/{id}`: full replacement of the account's fields (200 with the full Account).
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    Path(id): Path<String>,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    let id = id.parse::<i64>().unwrap_or(-1);
    // Validation comes first (upstream order); the lookup only tells which domain uniqueness applies to.
    let found = access::scoped_account(db, &ctx.space, &caller, id)
        .await
        .ok();
    let domain = match (caller.is_super_admin, input.text("domain"), &found) {
        (true, Some(domain), _) => domain,
        (_, _, Some(account)) if caller.is_super_admin => account.domain.clone(),
        _ => ctx.space.domain.clone(),
    };
    let facts = rules::facts(
        db,
        &input,
        &domain,
        Mode::AdminUpdate { id },
        ctx.space.unique_email,
    )
    .await?;
    let mut v = Validator::new(&input.0, ctx.locale);
    rules::username(&mut v, &state.config, &facts, Mode::AdminUpdate { id });
    v.field("admin").nullable().boolean();
    v.field("activated").nullable().boolean();
    rules::domain(&mut v, &facts);
    rules::email(&mut v, &facts);
    v.field("role").nullable().one_of(&["admin", "end_user"]);
    rules::dtmf_protocol(&mut v);
    rules::phone(&mut v, &facts);
    rules::algorithm(&mut v);
    v.field("password").min(rules::MIN_LENGTH);
    v.field("dictionary").check(
        |value| match value {
            Value::Object(map) => map.values().all(is_scalar),
            Value::Array(items) => items.iter().all(is_scalar),
            _ => false,
        },
        "The dictionary must be an associative dictionary of strings",
    );
    v.finish()?;
    let account = match found {
        Some(account) => account,
        None => access::scoped_account(db, &ctx.space, &caller, id).await?,
    };

    let flag = |key: &str| input.has(key).then(|| rules::truthy(input.get(key)));
    let new_domain = if input.has("domain") {
        domain
    } else {
        account.domain.clone()
    };
    let now = flexiapi_core::time::now();
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        sqlx::query(
            "UPDATE accounts SET username = $1, domain = $2, email = $3, display_name = $4, dtmf_protocol = $5, \
             phone = $6, user_agent = $7, activated = COALESCE($8, activated), blocked = COALESCE($9, blocked), \
             admin = COALESCE($10, admin), updated_at = $11 WHERE id = $12")
            .bind(input.text("username").unwrap_or_default())
            .bind(&new_domain)
            .bind(input.text("email"))
            .bind(input.text("display_name"))
            .bind(input.text("dtmf_protocol"))
            .bind(input.text("phone"))
            .bind(ctx.user_agent_or_space())
            .bind(flag("activated"))
            .bind(flag("blocked"))
            .bind(flag("admin"))
            .bind(now)
            .bind(account.id)
            .execute(&mut *tx).await?;
        if input.has("dictionary") {
            sqlx::query("DELETE FROM account_dictionary_entries WHERE account_id = $1")
                .bind(account.id).execute(&mut *tx).await?;
            for (key, value) in dictionary_pairs(input.0.get("dictionary")) {
                sqlx::query(
                    "INSERT INTO account_dictionary_entries (account_id, key, value, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4)")
                    .bind(account.id).bind(key).bind(value).bind(now)
                    .execute(&mut *tx).await?;
            }
        }
        tx.commit().await
    })?;
    let account = Account::find(db, account.id)
        .await?
        .ok_or_else(|| HttpError::not_found("Account"))?;
    if let Some(password) = input.text("password").filter(|p| !p.is_empty() && p != "0") {
        let algorithm = match input.str("algorithm").and_then(Algorithm::parse) {
            Some(algorithm) => Some(algorithm),
            None => store::space_algorithm(db, &ctx.space).await?,
        };
        if let Some(algorithm) = algorithm {
            store::set_password(db, &account, &password, algorithm).await?;
        }
    }
    access::forget(&state, account.id);
    full(&state, &account).await
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Dictionary pairs of a PUT body: objects by key, lists by index, scalars as PHP strings.
fn dictionary_pairs(value: Option<&Value>) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "1".into(),
        Value::Bool(false) => String::new(),
        other => other.to_string(),
    };
    match value {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), text(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// `GET /api/accounts`: the request space's accounts, 20 per page.
pub async fn index(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Response> {
    let db = &state.db;
    let page = page_number(query.get("page").map(String::as_str));
    let total: i64 = with_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM accounts WHERE domain = $1")
        .bind(&ctx.space.domain)
        .fetch_one(pool)
        .await)?;
    let offset = (page.saturating_sub(1))
        .saturating_mul(PER_PAGE)
        .min(i64::MAX as u64) as i64;
    let accounts: Vec<Account> = with_db!(db, pool => sqlx::query_as(
        "SELECT * FROM accounts WHERE domain = $1 ORDER BY id LIMIT $2 OFFSET $3")
        .bind(&ctx.space.domain)
        .bind(PER_PAGE as i64)
        .bind(offset)
        .fetch_all(pool)
        .await)?;
    let mut data = Vec::with_capacity(accounts.len());
    for account in &accounts {
        data.push(render(db, &state.config, account, View::AdminList).await?);
    }
    let body = paginate(
        data,
        total as u64,
        page,
        PER_PAGE,
        &ctx.url("/api/accounts"),
        ctx.locale,
    );
    Ok(Json(body).into_response())
}

/// `GET /api/accounts/{id}`: one account of the space, with pending change codes.
pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    Ok(Json(render(&state.db, &state.config, &account, View::AdminShow).await?).into_response())
}

/// `GET /api/accounts/{sip}/search`.
pub async fn search(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(sip): Path<String>,
) -> ApiResult<Response> {
    let sip = sip.strip_prefix("sip:").unwrap_or(&sip);
    let found = match sip.split_once('@') {
        Some((username, domain)) if domain == ctx.space.domain => {
            Account::find_by_identity(&state.db, username, domain).await?
        }
        _ => None,
    };
    let account =
        found.ok_or_else(|| HttpError::message(StatusCode::NOT_FOUND, "SIP address not found"))?;
    Ok(Json(render(&state.db, &state.config, &account, View::Search).await?).into_response())
}

/// `GET /api/accounts/{email}/search-by-email`.
pub async fn search_by_email(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(email): Path<String>,
) -> ApiResult<Response> {
    let db = &state.db;
    let found: Option<Account> = with_db!(db, pool => sqlx::query_as(
        "SELECT * FROM accounts WHERE domain = $1 AND email = $2 ORDER BY id LIMIT 1")
        .bind(&ctx.space.domain)
        .bind(&email)
        .fetch_optional(pool)
        .await)?;
    let account = found
        .ok_or_else(|| HttpError::message(StatusCode::NOT_FOUND, "Email address not found"))?;
    Ok(Json(render(db, &state.config, &account, View::Search).await?).into_response())
}

/// `DELETE /api/accounts/{id}`: tombstone and delete; empty 200.
pub async fn destroy(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    store::delete_with_tombstone(&state.db, &account).await?;
    access::forget(&state, account.id);
    Ok(StatusCode::OK.into_response())
}

async fn set_flag(
    state: AppState,
    ctx: Ctx,
    id: String,
    flag: Flag,
    value: bool,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::space_account(db, &ctx.space, access::parse_id(&id)?).await?;
    let account = store::set_flag(db, account.id, flag, value)
        .await?
        .ok_or_else(|| HttpError::not_found("Account"))?;
    access::forget(&state, account.id);
    full(&state, &account).await
}

/// `POST /api/accounts/{id}/activate`.
pub async fn activate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_flag(state, ctx, id, Flag::Activated, true).await
}

/// `POST /api/accounts/{id}/deactivate`.
pub async fn deactivate(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_flag(state, ctx, id, Flag::Activated, false).await
}

/// `POST /api/accounts/{id}/block`.
pub async fn block(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_flag(state, ctx, id, Flag::Blocked, true).await
}

/// `POST /api/accounts/{id}/unblock`.
pub async fn unblock(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    set_flag(state, ctx, id, Flag::Blocked, false).await
}

/// `GET /api/accounts/{id}/provision`: a new provisioning token.
pub async fn provision(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    store::new_provisioning_token(&state.db, account.id, &ctx.origin()).await?;
    full(&state, &account).await
}

fn no_email() -> HttpError {
    HttpError::message(StatusCode::FORBIDDEN, "No email configured")
}

/// `POST /api/accounts/{id}/send_provisioning_email`: new provisioning token, welcome mail; empty 200.
pub async fn send_provisioning_email(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::space_account(db, &ctx.space, access::parse_id(&id)?).await?;
    let email = account.email.clone().ok_or_else(no_email)?;
    let token = store::new_provisioning_token(db, account.id, &ctx.origin()).await?;
    let base = format!("{}://{}", ctx.host.scheme, ctx.space.host);
    let body = mail::provisioning_body(&ctx.space, &account, &base, &token);
    mail::send(
        &state,
        &ctx.space,
        &email,
        &format!(
            "Welcome to {}: Start using your account today",
            ctx.space.name
        ),
        &body,
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /api/accounts/{id}/send_reset_password_email`: reset token, mail with the link; empty 200.
pub async fn send_reset_password_email(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::space_account(db, &ctx.space, access::parse_id(&id)?).await?;
    let email = account.email.clone().ok_or_else(no_email)?;
    let token = token::alphanumeric(token::RESET_PASSWORD);
    insert_reset_token(db, &account, &email, &token, &ctx).await?;
    let url = format!(
        "{}://{}/reset_password/{token}",
        ctx.host.scheme, ctx.space.host
    );
    let hours = state
        .config
        .limits
        .reset_password_email_token_expiration_minutes
        / 60;
    let body = mail::reset_password_body(&ctx.space, &account, &url, hours);
    mail::send(
        &state,
        &ctx.space,
        &email,
        &format!("{}: Reset your password", ctx.space.name),
        &body,
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

async fn insert_reset_token(
    db: &Db,
    account: &Account,
    email: &str,
    token: &str,
    ctx: &Ctx,
) -> Result<(), sqlx::Error> {
    let now = flexiapi_core::time::now();
    with_db!(db, pool => sqlx::query(
        "INSERT INTO reset_password_email_tokens (token, used, email, account_id, ip, user_agent, created_at, updated_at) \
         VALUES ($1, FALSE, $2, $3, $4, $5, $6, $6)")
        .bind(token).bind(email).bind(account.id).bind(&ctx.ip).bind(&ctx.user_agent).bind(now)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}
