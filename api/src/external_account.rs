//! The external (third-party SIP) account of an account (api-accounts.md §2.15), consumed by Flexisip's B2BUA,
//! which is told about every change on the Redis channel `flexisip/B2BUA/account`.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::NaiveDateTime;
use http::StatusCode;
use regex::Regex;
use serde_json::{json, Value};

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::{text_response, HttpError};
use flexiapi_core::model::Algorithm;
use flexiapi_core::time::laravel_json;
use flexiapi_core::{with_db, Db};

use crate::access::{self, Authenticated};
use crate::context::Ctx;
use crate::devices::Registrar;
use crate::error::ApiResult;
use crate::input::Input;
use crate::space::is_domain;
use crate::state::AppState;

/// Redis channel the B2BUA listens on.
pub const B2BUA_CHANNEL: &str = "flexisip/B2BUA/account";

/// A row of `external_accounts`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ExternalAccount {
    pub id: i64,
    pub account_id: i64,
    pub username: String,
    pub domain: String,
    pub password: String,
    pub algorithm: String,
    pub realm: Option<String>,
    pub registrar: Option<String>,
    pub outbound_proxy: Option<String>,
    pub protocol: String,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
}

impl ExternalAccount {
    /// Upstream's JSON (nothing hidden: the password hash is part of it).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "username": self.username,
            "domain": self.domain,
            "password": self.password,
            "algorithm": self.algorithm,
            "realm": self.realm,
            "registrar": self.registrar,
            "outbound_proxy": self.outbound_proxy,
            "protocol": self.protocol,
            "account_id": self.account_id,
            "created_at": laravel_json(self.created_at.as_ref()),
            "updated_at": laravel_json(self.updated_at.as_ref()),
        })
    }

    /// The B2BUA notification (`identifier` is the id as a string).
    fn notification(&self) -> String {
        json!({"username": self.username, "domain": self.domain, "identifier": self.id.to_string()})
            .to_string()
    }
}

async fn of_account(db: &Db, account_id: i64) -> Result<Option<ExternalAccount>, sqlx::Error> {
    with_db!(db, pool => sqlx::query_as("SELECT * FROM external_accounts WHERE account_id = $1")
        .bind(account_id).fetch_optional(pool).await)
}

fn missing() -> HttpError {
    HttpError::not_found("ExternalAccount")
}

/// `GET /api/accounts/{id}/external`.
pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let account = access::space_account(&state.db, &ctx.space, access::parse_id(&id)?).await?;
    let external = of_account(&state.db, account.id)
        .await?
        .ok_or_else(missing)?;
    Ok(Json(external.to_json()).into_response())
}

/// `POST /api/accounts/{id}/external`: creates (201) or updates (200) the external account.
pub async fn store(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    Path(id): Path<String>,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::scoped_account(db, &ctx.space, &caller, access::parse_id(&id)?).await?;
    let account_id = account.id;
    // Decision: the uniqueness of (username, domain) ignores this account's own external account (upstream
    // refuses to re-post unchanged values).
    let taken = match (input.text("username"), input.text("domain")) {
        (Some(username), Some(domain)) => {
            with_db!(db, pool => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM external_accounts WHERE username = $1 AND domain = $2 AND account_id <> $3")
                .bind(username).bind(domain).bind(account_id).fetch_one(pool).await)?
                > 0
        }
        _ => false,
    };
    let username_regex = Regex::new(&state.config.limits.account_username_regex).ok();
    let domain = input.text("domain");
    let mut v = Validator::new(&input.0, ctx.locale);
    crate::keys::unique(v.field("username").required(), taken)
        .check(
            |value| {
                crate::keys::scalar(value)
                    .is_some_and(|s| username_regex.as_ref().is_some_and(|r| r.is_match(&s)))
            },
            "The :attribute should be a valid SIP username",
        )
        .max(64);
    v.field("domain")
        .required()
        .check(
            |value| {
                value
                    .as_str()
                    .is_some_and(|s| is_domain(s) || s.parse::<IpAddr>().is_ok())
            },
            "The :attribute should be a valid domain",
        )
        .max(64);
    for field in ["realm", "registrar", "outbound_proxy"] {
        let different = v.render(
            match ctx.locale {
                flexiapi_core::http::Locale::En => "The :attribute and :other must be different.",
                flexiapi_core::http::Locale::Fr => {
                    "Les champs :attribute et :other doivent être différents."
                }
            },
            field,
            &[("other", "domain")],
        );
        let domain = domain.clone();
        crate::keys::scalar_text(v.field(field).nullable())
            .check(
                move |value| crate::keys::scalar(value) != domain,
                &different,
            )
            .max(64);
    }
    v.field("protocol")
        .required()
        .one_of(&["UDP", "TCP", "TLS"]);
    v.finish()?;

    let existing = of_account(db, account.id).await?;
    let realm = input.text("realm");
    let domain = domain.unwrap_or_default();
    let username = input.text("username").unwrap_or_default();
    // Decision: the stored hash is H(username:realm-or-domain:password), so the password is required whenever
    // one of those inputs changes (upstream only asks when realm or domain changes and can keep a stale hash).
    let hash_realm = realm.clone().unwrap_or_else(|| domain.clone());
    let keeps_hash = existing.as_ref().is_some_and(|e| {
        !e.password.is_empty()
            && e.username == username
            && e.realm.clone().unwrap_or_else(|| e.domain.clone()) == hash_realm
    });
    let mut v = Validator::new(&input.0, ctx.locale);
    let password = v.field("password");
    let password = if keeps_hash {
        password.nullable()
    } else {
        password.required()
    };
    crate::keys::scalar_text(password);
    v.finish()?;

    let hash = input.text("password").map(|password| {
        Algorithm::Md5.ha1(&username, realm.as_deref().unwrap_or(&domain), &password)
    });
    let now = flexiapi_core::time::now();
    let values = (
        username,
        domain.clone(),
        realm.clone(),
        input.text("registrar"),
        input.text("outbound_proxy"),
        input.text("protocol").unwrap_or_default(),
    );
    let created = existing.is_none();
    let external: ExternalAccount = match existing {
        None => with_db!(db, pool => sqlx::query_as(
            "INSERT INTO external_accounts (account_id, username, domain, realm, registrar, outbound_proxy, protocol, \
             algorithm, password, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'MD5', $8, $9, $9) RETURNING *")
            .bind(account.id).bind(&values.0).bind(&values.1).bind(&values.2).bind(&values.3).bind(&values.4)
            .bind(&values.5).bind(hash.clone().unwrap_or_default()).bind(now)
            .fetch_one(pool).await)?,
        Some(e) => with_db!(db, pool => sqlx::query_as(
            "UPDATE external_accounts SET username = $1, domain = $2, realm = $3, registrar = $4, outbound_proxy = $5, \
             protocol = $6, algorithm = 'MD5', password = COALESCE($7, password), updated_at = $8 WHERE id = $9 RETURNING *")
            .bind(&values.0).bind(&values.1).bind(&values.2).bind(&values.3).bind(&values.4)
            .bind(&values.5).bind(hash.clone()).bind(now).bind(e.id)
            .fetch_one(pool).await)?,
    };
    Registrar::from_config(&state.config)
        .publish(B2BUA_CHANNEL, &external.notification())
        .await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(external.to_json())).into_response())
}

/// `DELETE /api/accounts/{id}/external`: `1` when there was one, an empty body otherwise.
pub async fn destroy(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::scoped_account(db, &ctx.space, &caller, access::parse_id(&id)?).await?;
    let Some(external) = of_account(db, account.id).await? else {
        return Ok(text_response(StatusCode::OK, ""));
    };
    Registrar::from_config(&state.config)
        .publish(B2BUA_CHANNEL, &external.notification())
        .await;
    with_db!(db, pool => sqlx::query("DELETE FROM external_accounts WHERE id = $1")
        .bind(external.id).execute(pool).await.map(|_| ()))?;
    Ok(text_response(StatusCode::OK, "1"))
}
