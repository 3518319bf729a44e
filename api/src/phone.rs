//! Phone numbers and phone countries (api-accounts.md §2.21, rules `phone` and FilteredPhone).
//!
//! A phone number is valid when it is in international form: `+`, a calling code known to the
//! `phone_countries` table, then digits, 8 to 15 digits in all (E.164); spaces, dots, dashes and brackets
//! between digits are tolerated. Calling codes are prefix-free, so the code is found unambiguously, and
//! since activation is per calling code (activating `US` activates every `+1` region) the code alone decides
//! whether the number "belongs to an authorized country".

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde_json::json;

use flexiapi_core::http::{text_response, HttpError};
use flexiapi_core::{with_db, Db};

use crate::error::ApiResult;
use crate::state::AppState;

/// What the database says about a phone number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneCheck {
    /// Not an international number with a known calling code.
    Invalid,
    /// Valid; `activated` tells whether its country is authorized.
    Valid { activated: bool },
}

/// The digits of an international number (`+` removed), or None when the text is not one.
pub fn digits(text: &str) -> Option<String> {
    let rest = text.trim().strip_prefix('+')?;
    let mut digits = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let ok = (8..=15).contains(&digits.len()) && !digits.starts_with('0');
    ok.then_some(digits)
}

/// Checks `text` against the calling codes of `phone_countries`.
pub async fn check(db: &Db, text: &str) -> Result<PhoneCheck, sqlx::Error> {
    let Some(digits) = digits(text) else {
        return Ok(PhoneCheck::Invalid);
    };
    let prefixes: Vec<String> = (1..=3).map(|n| digits[..n].to_owned()).collect();
    let rows: Vec<(String, bool)> = with_db!(db, pool => sqlx::query_as(
        "SELECT country_code, activated FROM phone_countries WHERE country_code IN ($1, $2, $3)")
        .bind(&prefixes[0]).bind(&prefixes[1]).bind(&prefixes[2])
        .fetch_all(pool)
        .await)?;
    if rows.is_empty() {
        return Ok(PhoneCheck::Invalid);
    }
    Ok(PhoneCheck::Valid {
        activated: rows.iter().any(|(_, activated)| *activated),
    })
}

/// `GET /api/phone_countries` (and the doc's `/api/phones_countries`): every country, by code.
pub async fn list(State(state): State<AppState>) -> ApiResult<Response> {
    let rows: Vec<(String, String, bool)> = with_db!(&state.db, pool => sqlx::query_as(
        "SELECT code, country_code, activated FROM phone_countries ORDER BY code")
        .fetch_all(pool)
        .await)?;
    let body: Vec<_> = rows
        .into_iter()
        .map(|(code, country_code, activated)| {
            json!({"code": code, "country_code": country_code, "activated": activated})
        })
        .collect();
    Ok(Json(body).into_response())
}

/// `POST /api/phone_countries/{code}/activate`.
pub async fn activate(state: State<AppState>, code: Path<String>) -> ApiResult<Response> {
    set_activated(state, code, true).await
}

/// `POST /api/phone_countries/{code}/deactivate`.
pub async fn deactivate(state: State<AppState>, code: Path<String>) -> ApiResult<Response> {
    set_activated(state, code, false).await
}

/// Flips every country sharing the calling code of `code`; answers the number of rows updated.
async fn set_activated(
    State(state): State<AppState>,
    Path(code): Path<String>,
    activated: bool,
) -> ApiResult<Response> {
    let country_code: Option<String> = with_db!(&state.db, pool => sqlx::query_scalar(
        "SELECT country_code FROM phone_countries WHERE code = $1")
        .bind(code.to_ascii_uppercase())
        .fetch_optional(pool)
        .await)?;
    let Some(country_code) = country_code else {
        return Err(HttpError::message(
            StatusCode::NOT_FOUND,
            "No query results for model [App\\PhoneCountry].",
        )
        .into());
    };
    let now = flexiapi_core::time::now();
    let updated = with_db!(&state.db, pool => sqlx::query(
        "UPDATE phone_countries SET activated = $1, updated_at = $2 WHERE country_code = $3")
        .bind(activated).bind(now).bind(&country_code)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    Ok(text_response(StatusCode::OK, updated.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_form() {
        assert_eq!(digits("+33612121212").as_deref(), Some("33612121212"));
        assert_eq!(digits("+33 6 12-12.12 12").as_deref(), Some("33612121212"));
        assert_eq!(digits("0612121212"), None);
        assert_eq!(digits("blabla"), None);
        assert_eq!(digits("+3361"), None);
        assert_eq!(digits("+0612121212"), None);
        assert_eq!(digits("+1234567890123456"), None);
    }
}
