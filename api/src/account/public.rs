//! Public account endpoints: creation with an account creation token, and `{sip}/info`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::json;

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::HttpError;
use flexiapi_core::model::space::realm_for_domain;
use flexiapi_core::model::Account;
use flexiapi_core::{with_db, Db};

use crate::account::rules::{self, Mode};
use crate::account::store::{self, NewAccount};
use crate::account::{render, View};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::state::AppState;

/// 403 `This action is unauthorized.` (form-request authorization refused).
pub fn unauthorized_action() -> HttpError {
    HttpError::message(StatusCode::FORBIDDEN, "This action is unauthorized.")
}

/// An unused account creation token row.
#[derive(sqlx::FromRow)]
struct CreationToken {
    id: i64,
    created_at: Option<chrono::NaiveDateTime>,
}

async fn unused_creation_token(db: &Db, token: &str) -> Result<Option<CreationToken>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as(
        "SELECT id, created_at FROM account_creation_tokens WHERE token = $1 AND used = FALSE ORDER BY id LIMIT 1")
        .bind(token)
        .fetch_optional(pool)
        .await)
}

/// `POST /api/accounts/with-account-creation-token`.
pub async fn create_with_token(
    State(state): State<AppState>,
    ctx: Ctx,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    if store::space_is_full(db, &ctx.space).await? {
        return Err(unauthorized_action().into());
    }
    let domain = ctx.space.domain.clone();
    let facts = rules::facts(
        db,
        &input,
        &domain,
        Mode::PublicCreate,
        ctx.space.unique_email,
    )
    .await?;
    let token = match input.str("account_creation_token") {
        Some(text) => unused_creation_token(db, text).await?,
        None => None,
    };
    let expiration = state
        .config
        .limits
        .account_creation_token_expiration_minutes;
    let expired = token.as_ref().is_none_or(|t| {
        expiration > 0
            && t.created_at.is_none_or(|created| {
                created + chrono::Duration::minutes(expiration as i64) < flexiapi_core::time::now()
            })
    });
    let token_valid = token.is_some()
        && input
            .str("account_creation_token")
            .is_some_and(|t| t.chars().count() == crate::token::SHORT);

    let mut v = Validator::new(&input.0, ctx.locale);
    rules::username(&mut v, &state.config, &facts, Mode::PublicCreate);
    rules::domain(&mut v, &facts);
    rules::dictionary(&mut v);
    v.field("password").required().min(rules::MIN_LENGTH);
    rules::email(&mut v, &facts);
    rules::dtmf_protocol(&mut v);
    rules::phone(&mut v, &facts);
    v.field("account_creation_token")
        .required()
        .check(
            |_| token_valid,
            "Please provide a valid account_creation_token",
        )
        .check(|_| !expired, "The provided token is expired");
    rules::algorithm(&mut v);
    v.field("admin").missing();
    v.field("activated").missing();
    v.finish()?;

    let algorithm = match input
        .str("algorithm")
        .and_then(flexiapi_core::model::Algorithm::parse)
    {
        Some(algorithm) => Some(algorithm),
        None => store::space_algorithm(db, &ctx.space).await?,
    };
    let password = input.text("password").unwrap_or_default();
    let account = store::create(
        db,
        NewAccount {
            username: input.text("username").unwrap_or_default(),
            domain,
            dtmf_protocol: input.text("dtmf_protocol"),
            ip_address: ctx.ip.clone(),
            // Upstream records the space name, not the client's User-Agent, for self-created accounts.
            user_agent: ctx.space.name.clone(),
            password: algorithm.map(|a| (password, a)),
            ..NewAccount::default()
        },
    )
    .await?;
    let token_id = token.map(|t| t.id).unwrap_or_default();
    with_db!(db, pool => sqlx::query(
        "UPDATE account_creation_tokens SET used = TRUE, account_id = $1, updated_at = $2 WHERE id = $3")
        .bind(account.id).bind(flexiapi_core::time::now()).bind(token_id)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    Ok(Json(render(db, &state.config, &account, View::Full).await?).into_response())
}

/// `GET /api/accounts/{sip}/info` (decision D3): `{"activated", "realm"}` of `username@domain` in this space.
pub async fn info(
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
    let Some(account) = found else {
        return Err(HttpError::not_found("Account").into());
    };
    let realm = realm_for_domain(&state.db, &account.domain).await?;
    Ok(Json(json!({"activated": account.activated, "realm": realm})).into_response())
}
