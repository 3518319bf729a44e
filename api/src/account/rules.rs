//! The shared account validation rules (api-accounts.md §2.7 table), with their database facts fetched
//! before the rule chain runs so that the chain itself stays synchronous and ordered.

use regex::Regex;
use serde_json::Value;

use flexiapi_core::http::validation::Validator;
use flexiapi_core::{with_db, Config, Db};

use crate::input::Input;
use crate::phone::{self, PhoneCheck};

/// Which endpoint the rules serve (they differ slightly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `POST /accounts/with-account-creation-token`.
    PublicCreate,
    /// `POST /accounts`.
    AdminCreate,
    /// `PUT /accounts/{id}` (uniqueness ignores the account itself).
    AdminUpdate { id: i64 },
}

impl Mode {
    fn ignored_id(self) -> i64 {
        match self {
            Mode::AdminUpdate { id } => id,
            _ => -1,
        }
    }
}

/// Database facts the rules need, fetched up front.
#[derive(Debug, Default)]
pub struct Facts {
    username_taken: bool,
    tombstoned: bool,
    domain_exists: bool,
    email_taken: bool,
    phone: Option<PhoneCheck>,
    phone_taken: bool,
}

/// Fetches the facts for `input` targeting domain `domain`.
pub async fn facts(
    db: &Db,
    input: &Input,
    domain: &str,
    mode: Mode,
    unique_email: bool,
) -> Result<Facts, sqlx::Error> {
    let ignore = mode.ignored_id();
    let mut facts = Facts::default();
    if let Some(username) = input.str("username") {
        facts.username_taken = with_db!(db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM accounts WHERE username = $1 AND domain = $2 AND id <> $3")
            .bind(username).bind(domain).bind(ignore)
            .fetch_one(pool).await)?
            > 0;
        if !matches!(mode, Mode::AdminUpdate { .. }) {
            facts.tombstoned = with_db!(db, pool => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM accounts_tombstones WHERE username = $1 AND domain = $2")
                .bind(username).bind(domain)
                .fetch_one(pool).await)?
                > 0;
        }
    }
    if let Some(requested) = input.text("domain") {
        facts.domain_exists = with_db!(db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM spaces WHERE domain = $1")
            .bind(&requested)
            .fetch_one(pool).await)?
            > 0;
    }
    if let (true, Some(email)) = (unique_email, input.str("email")) {
        facts.email_taken = with_db!(db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM accounts WHERE email = $1 AND domain = $2 AND id <> $3")
            .bind(email).bind(domain).bind(ignore)
            .fetch_one(pool).await)?
            > 0;
    }
    if let Some(number) = input.str("phone") {
        facts.phone = Some(phone::check(db, number).await?);
        facts.phone_taken = with_db!(db, pool => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM accounts WHERE (phone = $1 OR username = $1) AND domain = $2 AND id <> $3")
            .bind(number).bind(domain).bind(ignore)
            .fetch_one(pool).await)?
            > 0;
    }
    Ok(facts)
}

/// Minimum username / password length on the endpoints where the seed doc states it (decision D8).
pub const MIN_LENGTH: usize = 6;

const UNIQUE_EN: &str = "The :attribute has already been taken.";
const UNIQUE_FR: &str = "Le :attribute a déjà été pris.";

/// `username`: required, no uppercase, not a phone number, not blacklisted, SIP username, unique.
pub fn username(v: &mut Validator, config: &Config, facts: &Facts, mode: Mode) {
    let limits = &config.limits;
    let allow_phone = mode != Mode::PublicCreate && limits.allow_phone_number_username_admin_api;
    let regex = Regex::new(&limits.account_username_regex).ok();
    let blacklist = &limits.account_blacklisted_usernames;
    let mut field = v.field("username").required().check(
        |value| value.as_str().is_none_or(|s| s.to_lowercase() == s),
        "No uppercase letters are allowed.",
    );
    if !allow_phone {
        field = field.check_localized(
            |value| value.as_str().is_none_or(|s| phone::digits(s).is_none()),
            "The :attribute should not be a phone number",
            "Le champ :attribute ne peut pas être un numéro de téléphone",
        );
    }
    let field = field
        .check(
            |value| {
                let text = scalar(value);
                !blacklist.iter().any(|item| {
                    item == &text
                        || Regex::new(&format!("^(?:{item})$")).is_ok_and(|r| r.is_match(&text))
                })
            },
            "Username already used.",
        )
        .check(
            |value| {
                value
                    .as_str()
                    .is_some_and(|s| regex.as_ref().is_some_and(|r| r.is_match(s)))
            },
            "The :attribute should be a valid SIP username",
        )
        // Decision D8: the seed doc's minimum of 6 characters for usernames.
        .min(MIN_LENGTH)
        .check_localized(|_| !facts.username_taken, UNIQUE_EN, UNIQUE_FR);
    let field = if matches!(mode, Mode::AdminUpdate { .. }) {
        field
    } else {
        field.check_localized(|_| !facts.tombstoned, UNIQUE_EN, UNIQUE_FR)
    };
    drop(field);
}

/// `domain`: exists among spaces.
pub fn domain(v: &mut Validator, facts: &Facts) {
    let exists = facts.domain_exists;
    v.field("domain").check_localized(
        |_| exists,
        "The selected :attribute is invalid.",
        "Le champ :attribute sélectionné est invalide.",
    );
}

/// `dictionary`: an object of strings.
pub fn dictionary(v: &mut Validator) {
    v.field("dictionary").check(
        |value| {
            value
                .as_object()
                .is_some_and(|map| map.values().all(Value::is_string))
        },
        "The dictionary must be an associative dictionary of strings",
    );
}

/// `email`: nullable, email, unique in the target domain when the space wants unique emails.
pub fn email(v: &mut Validator, facts: &Facts) {
    let taken = facts.email_taken;
    v.field("email")
        .nullable()
        .email()
        .check_localized(|_| !taken, UNIQUE_EN, UNIQUE_FR);
}

/// `dtmf_protocol`: nullable, one of the three protocols.
pub fn dtmf_protocol(v: &mut Validator) {
    v.field("dtmf_protocol")
        .nullable()
        .one_of(&["sipinfo", "rfc2833", "sipmessage"]);
}

/// `phone`: nullable, valid international number, authorized country, unique as phone and username.
pub fn phone(v: &mut Validator, facts: &Facts) {
    let check = facts.phone;
    let taken = facts.phone_taken;
    v.field("phone")
        .nullable()
        .check(
            |value| value.is_string() && check != Some(PhoneCheck::Invalid),
            "The :attribute field contains an invalid number.",
        )
        .check(
            |_| check != Some(PhoneCheck::Valid { activated: false }),
            "The phone number must belong to an authorized country.",
        )
        .check_localized(|_| !taken, UNIQUE_EN, UNIQUE_FR);
}

/// `algorithm`: nullable, `MD5` or `SHA-256` (decision D2).
pub fn algorithm(v: &mut Validator) {
    v.field("algorithm").nullable().one_of(&["MD5", "SHA-256"]);
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Laravel-ish lenient truthiness used when storing flags (`true`, `1`, `"1"`, `"true"`, `"on"`, `"yes"`).
pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => {
            matches!(s.to_ascii_lowercase().as_str(), "1" | "true" | "on" | "yes")
        }
        _ => false,
    }
}
