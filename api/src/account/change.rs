//! Email and phone changes of the caller (api-accounts.md §2.8, §2.9): a 4-digit code sent by mail or SMS,
//! confirmed within the configured minutes. Code requests feed the blocking service (too many → blocked).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{Duration, NaiveDateTime};
use http::StatusCode;
use serde_json::json;

use flexiapi_core::http::validation::Validator;
use flexiapi_core::http::HttpError;
use flexiapi_core::model::Account;
use flexiapi_core::{with_db, Db};

use crate::access::{self, Authenticated};
use crate::account::store::{self, Flag};
use crate::account::{render, View};
use crate::context::Ctx;
use crate::error::ApiResult;
use crate::input::Input;
use crate::phone::{self, PhoneCheck};
use crate::state::AppState;
use crate::{mail, sms, token};

fn blocked() -> HttpError {
    HttpError::message(StatusCode::FORBIDDEN, "Account blocked")
}

/// The checks every code request starts with: blocking service, then "validated" account.
async fn precheck(state: &AppState, account: &Account) -> ApiResult<()> {
    let db = &state.db;
    if account.blocked {
        return Err(blocked().into());
    }
    let limits = &state.config.limits;
    let threshold = limits.blocking_amount_events_authorized_during_period;
    if threshold > 0 {
        let since = flexiapi_core::time::now()
            - Duration::minutes(limits.blocking_time_period_check as i64);
        let count: i64 = with_db!(db, pool => sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM recovery_codes WHERE account_id = $1 AND created_at >= $2) \
             + (SELECT COUNT(*) FROM phone_change_codes WHERE account_id = $1 AND created_at >= $2) \
             + (SELECT COUNT(*) FROM email_change_codes WHERE account_id = $1 AND created_at >= $2)")
            .bind(account.id).bind(since)
            .fetch_one(pool)
            .await)?;
        if count >= threshold as i64 {
            store::set_flag(db, account.id, Flag::Blocked, true).await?;
            access::forget(state, account.id);
            return Err(blocked().into());
        }
    }
    let validated: i64 = with_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM account_creation_tokens WHERE account_id = $1 AND used = TRUE")
        .bind(account.id)
        .fetch_one(pool)
        .await)?;
    if validated == 0 {
        return Err(HttpError::message(StatusCode::FORBIDDEN, "Account unvalidated").into());
    }
    Ok(())
}

/// `POST /api/accounts/me/email/request`: store a code for the new address and mail it; empty 200.
pub async fn email_request(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::me(db, &caller).await?;
    precheck(&state, &account).await?;
    let taken = match (ctx.space.unique_email, input.str("email")) {
        (true, Some(email)) => {
            with_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM accounts WHERE email = $1")
                .bind(email)
                .fetch_one(pool)
                .await)?
                > 0
        }
        _ => false,
    };
    let current = account.email.clone();
    let mut v = Validator::new(&input.0, ctx.locale);
    v.field("email")
        .required()
        .email()
        .check_localized(
            |value| value.as_str() != current.as_deref(),
            "The selected :attribute is invalid.",
            "Le champ :attribute sélectionné n'est pas valide.",
        )
        .check_localized(
            |_| !taken,
            "The :attribute has already been taken.",
            "Le :attribute a déjà été pris.",
        );
    v.finish()?;
    let email = input.text("email").unwrap_or_default();
    let code = token::code();
    insert_code(db, Kind::Email, account.id, &email, &code, &ctx).await?;
    let minutes = state.config.limits.recovery_code_expiration_minutes;
    mail::send(
        &state,
        &ctx.space,
        &email,
        &format!("{}: Confirm your registration", ctx.space.name),
        &mail::email_code_body(&ctx.space, &code, minutes),
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /api/accounts/me/phone/request`: store a code for the new number and send it by SMS; empty 200.
pub async fn phone_request(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    input: Input,
) -> ApiResult<Response> {
    let db = &state.db;
    let account = access::me(db, &caller).await?;
    precheck(&state, &account).await?;
    let (check, taken) = match input.str("phone") {
        Some(number) => (
            Some(phone::check(db, number).await?),
            with_db!(db, pool => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM accounts WHERE phone = $1 OR username = $1")
                .bind(number)
                .fetch_one(pool)
                .await)?
                > 0,
        ),
        None => (None, false),
    };
    let mut v = Validator::new(&input.0, ctx.locale);
    v.field("phone")
        .required()
        .check(
            |value| value.is_string() && check != Some(PhoneCheck::Invalid),
            "The :attribute field contains an invalid number.",
        )
        .check(
            |_| check != Some(PhoneCheck::Valid { activated: false }),
            "The phone number must belong to an authorized country.",
        )
        .check_localized(
            |_| !taken,
            "The :attribute has already been taken.",
            "Le :attribute a déjà été pris.",
        );
    v.finish()?;
    let number = input.text("phone").unwrap_or_default();
    let code = token::code();
    let minutes = state.config.limits.recovery_code_expiration_minutes;
    let mut message = format!("Your {} validation code is {code}.", ctx.space.name);
    if minutes > 0 {
        message.push_str(&format!(" The code is available for {minutes} minutes"));
    }
    if let Err(error) = sms::send(&state, &ctx.space.name, &number, &message).await {
        tracing::warn!(%error, "validation SMS not sent");
        return Err(HttpError::message(StatusCode::SERVICE_UNAVAILABLE, "SMS not sent").into());
    }
    insert_code(db, Kind::Phone, account.id, &number, &code, &ctx).await?;
    Ok(StatusCode::OK.into_response())
}

/// Which change a code belongs to.
#[derive(Clone, Copy)]
enum Kind {
    Email,
    Phone,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Email => "email_change_codes",
            Kind::Phone => "phone_change_codes",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
        }
    }

    fn expiration(self, state: &AppState) -> u64 {
        match self {
            Kind::Email => state.config.limits.email_change_code_expiration_minutes,
            Kind::Phone => state.config.limits.phone_change_code_expiration_minutes,
        }
    }
}

async fn insert_code(
    db: &Db,
    kind: Kind,
    account_id: i64,
    value: &str,
    code: &str,
    ctx: &Ctx,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {} (account_id, code, {}, ip, user_agent, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
        kind.table(),
        kind.column()
    );
    let now = flexiapi_core::time::now();
    with_db!(db, pool => sqlx::query(&sql)
        .bind(account_id).bind(code).bind(value).bind(&ctx.ip).bind(&ctx.user_agent).bind(now)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    Ok(())
}

async fn confirm(
    state: AppState,
    ctx: Ctx,
    caller: Authenticated,
    input: Input,
    kind: Kind,
) -> ApiResult<Response> {
    let db = &state.db;
    let mut v = Validator::new(&input.0, ctx.locale);
    v.field("code").required().check_localized(
        |value| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit())
        },
        "The :attribute must be 4 digits.",
        "Le champ :attribute doit avoir 4 chiffres.",
    );
    v.finish()?;
    let account = access::me(db, &caller).await?;
    let sql = format!(
        "SELECT id, code, {}, created_at FROM {} WHERE account_id = $1 AND code IS NOT NULL ORDER BY id DESC LIMIT 1",
        kind.column(),
        kind.table()
    );
    let pending: Option<(i64, String, String, Option<NaiveDateTime>)> = with_db!(db, pool => sqlx::query_as(&sql)
        .bind(account.id)
        .fetch_optional(pool)
        .await)?;
    // Upstream crashes (500) when nothing is pending; a 404 says what happened.
    let Some((id, code, value, created_at)) = pending else {
        return Err(HttpError::message(StatusCode::NOT_FOUND, "No pending change").into());
    };
    let minutes = kind.expiration(&state);
    if minutes > 0
        && created_at.is_none_or(|created| {
            created + Duration::minutes(minutes as i64) < flexiapi_core::time::now()
        })
    {
        return Err(HttpError::message(StatusCode::GONE, "Expired code").into());
    }
    if input.text("code").as_deref() != Some(code.as_str()) {
        return Err(HttpError::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "The code should be valid", "errors": {"code": ["The code should be valid"]}}),
        )
        .into());
    }
    let now = flexiapi_core::time::now();
    let consume = format!(
        "UPDATE {} SET code = NULL, updated_at = $1 WHERE id = $2",
        kind.table()
    );
    let apply = format!(
        "UPDATE accounts SET {} = $1, activated = TRUE, updated_at = $2 WHERE id = $3",
        kind.column()
    );
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        sqlx::query(&consume).bind(now).bind(id).execute(&mut *tx).await?;
        sqlx::query(&apply).bind(&value).bind(now).bind(account.id).execute(&mut *tx).await?;
        tx.commit().await
    })?;
    access::forget(&state, account.id);
    let account = access::me(db, &caller).await?;
    Ok(Json(render(db, &state.config, &account, View::Full).await?).into_response())
}

/// `POST /api/accounts/me/email`: confirm the pending email with its code.
pub async fn email_confirm(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    input: Input,
) -> ApiResult<Response> {
    confirm(state, ctx, caller, input, Kind::Email).await
}

/// `POST /api/accounts/me/phone`: confirm the pending phone number with its code.
pub async fn phone_confirm(
    State(state): State<AppState>,
    ctx: Ctx,
    Extension(caller): Extension<Authenticated>,
    input: Input,
) -> ApiResult<Response> {
    confirm(state, ctx, caller, input, Kind::Phone).await
}
