//! User endpoints about the caller's own account (`/api/accounts/me…`).

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http::header::{HeaderValue, CONTENT_TYPE, SET_COOKIE};
use http::StatusCode;
use serde_json::json;

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::{text_response, HttpError};
use flexiapi_core::model::Algorithm;

use crate::access::{self, Authenticated};
use crate::account::{render, rules, store, View};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::state::AppState;

/// `GET /api/accounts/me`: the full Account, from the rendered-body cache when no write happened since.
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
) -> ApiResult<Response> {
    let (id, username, domain) = (
        caller.account.id,
        &caller.account.username,
        &caller.account.domain,
    );
    if let Some(body) = state.me_cache.get(id, username, domain) {
        return Ok(json_bytes(body));
    }
    let generation = state.me_cache.generation();
    let account = access::me(&state.db, &caller).await?;
    let value = render(&state.db, &state.config, &account, View::Full).await?;
    let body = Bytes::from(serde_json::to_vec(&value).map_err(HttpError::internal)?);
    state
        .me_cache
        .put(id, username, domain, generation, body.clone());
    Ok(json_bytes(body))
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// `DELETE /api/accounts/me`: tombstone, delete, text `1`.
pub async fn destroy(
    State(state): State<AppState>,
    Extension(caller): Extension<Authenticated>,
) -> ApiResult<Response> {
    let account = access::me(&state.db, &caller).await?;
    store::delete_with_tombstone(&state.db, &account).await?;
    access::forget(&state, account.id);
    Ok(text_response(StatusCode::OK, "1"))
}

/// `GET /api/accounts/me/api_key`: a new user key as text, plus the `x-api-key` cookie.
pub async fn api_key(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
) -> ApiResult<Response> {
    let key = access::generate_user_key(&state, caller.account.id, &ctx.ip).await?;
    let mut response = text_response(StatusCode::OK, key.clone());
    add_key_cookie(&mut response, &state, &ctx, &key);
    Ok(response)
}

/// Adds `Set-Cookie: x-api-key=…` with upstream's attributes (auth.md §4.5).
pub fn add_key_cookie(response: &mut Response, state: &AppState, ctx: &Ctx, key: &str) {
    let minutes = state.config.limits.api_key_expiration_minutes;
    let mut cookie = format!("x-api-key={key}");
    if minutes > 0 {
        let expires = chrono::Utc::now() + chrono::Duration::minutes(minutes as i64);
        cookie.push_str(&format!(
            "; expires={}; Max-Age={}",
            expires.format("%a, %d %b %Y %H:%M:%S GMT"),
            minutes * 60
        ));
    }
    cookie.push_str("; path=/");
    if state.config.session_secure_cookie.unwrap_or(ctx.secure) {
        cookie.push_str("; secure");
    }
    cookie.push_str("; httponly");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

/// `GET /api/accounts/me/provision`: a new provisioning token, then the full Account.
pub async fn provision(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
) -> ApiResult<Response> {
    let account = access::me(&state.db, &caller).await?;
    store::new_provisioning_token(&state.db, account.id, &ctx.origin()).await?;
    Ok(Json(render(&state.db, &state.config, &account, View::Full).await?).into_response())
}

/// `POST /api/accounts/me/password`: set or change the caller's password.
pub async fn password(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    let Some(space_default) = store::space_algorithm(db, &ctx.space).await? else {
        return Err(HttpError::message(
            StatusCode::FORBIDDEN,
            "Digest is not enabled on this space",
        )
        .into());
    };
    let mut v = Validator::new(&input.0, ctx.locale);
    rules::algorithm(&mut v);
    v.field("password").required();
    v.finish()?;
    let account = access::me(db, &caller).await?;
    // Upstream marks the account activated as soon as validation passes, before the old-password check.
    let account = store::set_flag(db, account.id, store::Flag::Activated, true)
        .await?
        .unwrap_or(account);
    let algorithm = input
        .str("algorithm")
        .and_then(Algorithm::parse)
        .unwrap_or(space_default);
    let new_password = input.text("password").unwrap_or_default();
    let stored = account.passwords(db).await?;
    if !stored.is_empty() {
        let mut v = Validator::new(&input.0, ctx.locale);
        v.field("old_password").required();
        v.finish()?;
        let old = input.text("old_password").unwrap_or_default();
        let realm = flexiapi_core::model::space::realm_for_domain(db, &account.domain).await?;
        let matches = stored.iter().any(|row| {
            Algorithm::parse(&row.algorithm)
                .is_some_and(|alg| alg.ha1(&account.username, &realm, &old) == row.password)
        });
        if !matches {
            return Err(HttpError::json(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"errors": {"old_password": "Incorrect old password"}}),
            )
            .into());
        }
    }
    store::set_password(db, &account, &new_password, algorithm).await?;
    access::forget(&state, account.id);
    let account = access::me(db, &caller).await?;
    Ok(Json(render(db, &state.config, &account, View::Full).await?).into_response())
}
