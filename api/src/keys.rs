//! The string rules shared by account types, actions and contacts lists (Laravel's `alpha_dash`,
//! `alpha_num`, the NoUppercase rule, `unique`), with their en/fr messages.

use regex::Regex;
use serde_json::Value;

use flexiapi_core::http::validation::Field;

/// The text a rule sees for a scalar (PHP casts numbers to strings), None for arrays/objects/null.
pub fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `alpha_dash`: Unicode letters, marks, digits, `-` and `_`.
pub fn alpha_dash<'v, 'a>(field: Field<'v, 'a>) -> Field<'v, 'a> {
    let pattern = Regex::new(r"^[\p{L}\p{M}\p{N}_-]+$").expect("static regex");
    field.check_localized(
        move |value| scalar(value).is_some_and(|s| pattern.is_match(&s)),
        "The :attribute may only contain letters, numbers, dashes and underscores.",
        "Le champ :attribute doit seulement contenir des lettres, des chiffres et des tirets.",
    )
}

/// `alpha_num`: Unicode letters, marks and digits.
pub fn alpha_num<'v, 'a>(field: Field<'v, 'a>) -> Field<'v, 'a> {
    let pattern = Regex::new(r"^[\p{L}\p{M}\p{N}]+$").expect("static regex");
    field.check_localized(
        move |value| scalar(value).is_some_and(|s| pattern.is_match(&s)),
        "The :attribute may only contain letters and numbers.",
        "Le champ :attribute doit seulement contenir des chiffres et des lettres.",
    )
}

/// NoUppercase (English in both locales, as upstream).
pub fn no_uppercase<'v, 'a>(field: Field<'v, 'a>) -> Field<'v, 'a> {
    field.check(
        |value| scalar(value).is_none_or(|s| s.to_lowercase() == s),
        "No uppercase letters are allowed.",
    )
}

/// `unique`: fails when `taken` (the database fact, fetched before the rule chain).
pub fn unique<'v, 'a>(field: Field<'v, 'a>, taken: bool) -> Field<'v, 'a> {
    field.check_localized(
        move |_| !taken,
        "The :attribute has already been taken.",
        "Le :attribute a déjà été pris.",
    )
}

/// A scalar (string or number, as PHP reads both as text); arrays and objects get the `string` message
/// instead of reaching the database as nothing.
pub fn scalar_text<'v, 'a>(field: Field<'v, 'a>) -> Field<'v, 'a> {
    field.check_localized(
        |value| scalar(value).is_some(),
        "The :attribute must be a string.",
        "Le :attribute doit être une chaîne.",
    )
}
