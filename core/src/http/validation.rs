//! A small Laravel-style validator that reproduces upstream's 422 bodies exactly.
//!
//! Semantics kept from Laravel (shared/spec/api-accounts.md §5.3): rules of a field run in order and every
//! failure is collected, except that a failing implicit rule (`required`, `missing`, `required_with`…)
//! stops the field; an absent field or an empty string skips every non-implicit rule; an explicit `null`
//! skips them only when the field is `nullable`.

use serde_json::{Map, Value};

use super::locale::Locale;
use super::HttpError;

/// Field errors in declaration order, each with its messages in rule order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ValidationErrors {
    fields: Vec<(String, Vec<String>)>,
}

impl ValidationErrors {
    /// True when no rule failed.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Adds a message to a field (keeps the field's first position).
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        match self.fields.iter_mut().find(|(name, _)| name == field) {
            Some((_, messages)) => messages.push(message.into()),
            None => self.fields.push((field.to_owned(), vec![message.into()])),
        }
    }

    /// True when the field has at least one error.
    pub fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|(name, _)| name == field)
    }

    /// Laravel's body: first message (+ ` (and N more error[s])`, never translated) and the errors object.
    pub fn to_json(&self) -> Value {
        let total: usize = self.fields.iter().map(|(_, m)| m.len()).sum();
        let first = self
            .fields
            .first()
            .and_then(|(_, m)| m.first())
            .cloned()
            .unwrap_or_default();
        let message = match total.saturating_sub(1) {
            0 => first,
            1 => format!("{first} (and 1 more error)"),
            more => format!("{first} (and {more} more errors)"),
        };
        let errors: Map<String, Value> = self
            .fields
            .iter()
            .map(|(name, messages)| (name.clone(), Value::from(messages.clone())))
            .collect();
        serde_json::json!({ "message": message, "errors": errors })
    }

    /// `Ok(())` when empty, else the 422 error.
    // The error is built once per refused request; boxing it would cost every caller a `?` conversion.
    #[allow(clippy::result_large_err)]
    pub fn into_result(self) -> Result<(), HttpError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(HttpError::validation(self))
        }
    }
}

/// Validates one JSON document field by field.
pub struct Validator<'a> {
    input: &'a Value,
    locale: Locale,
    errors: ValidationErrors,
}

/// Where a field stands before its rules run.
#[derive(Clone, Copy, Debug)]
enum Presence<'a> {
    /// Key absent, or an empty / blank string (Laravel turns those into null and skips optional rules).
    Absent { key_present: bool },
    /// Explicit JSON `null`.
    Null,
    /// Any other value.
    Value(&'a Value),
}

impl<'a> Validator<'a> {
    /// Starts validating `input` (normally a JSON object) with messages in `locale`.
    pub fn new(input: &'a Value, locale: Locale) -> Self {
        Validator {
            input,
            locale,
            errors: ValidationErrors::default(),
        }
    }

    /// The locale messages are rendered in.
    pub fn locale(&self) -> Locale {
        self.locale
    }

    /// Begins the rules of a field; dots address nested objects (`invite_terminated.at`).
    pub fn field<'v>(&'v mut self, name: &str) -> Field<'v, 'a> {
        let raw = lookup(self.input, name);
        let presence = match raw {
            None => Presence::Absent { key_present: false },
            Some(Value::Null) => Presence::Null,
            Some(Value::String(s)) if s.trim().is_empty() => Presence::Absent { key_present: true },
            Some(value) => Presence::Value(value),
        };
        Field {
            validator: self,
            name: name.to_owned(),
            presence,
            stopped: false,
            nullable: false,
        }
    }

    /// Records a message for a field directly (custom checks done outside the rule chain).
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.errors.add(field, message);
    }

    /// Renders a template (`:attribute`, `:min`, `:max`, `:values`, `:other`…) for a field.
    pub fn render(&self, template: &str, field: &str, params: &[(&str, &str)]) -> String {
        render(template, self.locale, field, params)
    }

    /// True when a field already failed.
    pub fn failed(&self, field: &str) -> bool {
        self.errors.has(field)
    }

    /// The collected errors.
    pub fn into_errors(self) -> ValidationErrors {
        self.errors
    }

    /// `Ok(())` or the 422 error.
    #[allow(clippy::result_large_err)]
    pub fn finish(self) -> Result<(), HttpError> {
        self.errors.into_result()
    }
}

/// The rule chain of one field.
pub struct Field<'v, 'a> {
    validator: &'v mut Validator<'a>,
    name: String,
    presence: Presence<'a>,
    stopped: bool,
    nullable: bool,
}

impl<'a> Field<'_, 'a> {
    fn fail(&mut self, rule: Rule, params: &[(&str, &str)]) {
        let template = rule.template(self.validator.locale);
        self.fail_with(template, params);
    }

    fn fail_with(&mut self, template: &str, params: &[(&str, &str)]) {
        let message = render(template, self.validator.locale, &self.name, params);
        self.validator.errors.add(&self.name, message);
    }

    /// The value a non-implicit rule checks, or None when the rule is skipped.
    fn checked(&self) -> Option<&'a Value> {
        if self.stopped {
            return None;
        }
        match self.presence {
            Presence::Absent { .. } => None,
            Presence::Null if self.nullable => None,
            Presence::Null => Some(&Value::Null),
            Presence::Value(value) => Some(value),
        }
    }

    /// The value, if present and not null.
    pub fn value(&self) -> Option<&'a Value> {
        match self.presence {
            Presence::Value(value) => Some(value),
            _ => None,
        }
    }

    /// `required`: present, not null, not blank, not an empty array (stops the field on failure).
    pub fn required(mut self) -> Self {
        let missing = match self.presence {
            Presence::Absent { .. } | Presence::Null => true,
            Presence::Value(Value::Array(items)) => items.is_empty(),
            Presence::Value(_) => false,
        };
        if !self.stopped && missing {
            self.fail(Rule::Required, &[]);
            self.stopped = true;
        }
        self
    }

    /// `required_with:other`: required when `other` is present and not null.
    pub fn required_with(mut self, other: &str) -> Self {
        let other_present = !matches!(
            lookup(self.validator.input, other),
            None | Some(Value::Null)
        );
        let missing = matches!(self.presence, Presence::Absent { .. } | Presence::Null);
        if !self.stopped && other_present && missing {
            let other_name = attribute_name(other, self.validator.locale);
            self.fail(Rule::RequiredWith, &[("values", &other_name)]);
            self.stopped = true;
        }
        self
    }

    /// `missing`: the key must not be sent at all, whatever its value.
    pub fn missing(mut self) -> Self {
        let present = match self.presence {
            Presence::Absent { key_present } => key_present,
            _ => true,
        };
        if !self.stopped && present {
            self.fail(Rule::Missing, &[]);
            self.stopped = true;
        }
        self
    }

    /// `nullable`: an explicit null skips the following rules.
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    /// `string`.
    pub fn string(mut self) -> Self {
        if let Some(value) = self.checked() {
            if !value.is_string() {
                self.fail(Rule::String, &[]);
            }
        }
        self
    }

    /// `boolean`: `true`, `false`, `1`, `0`, `"1"`, `"0"`.
    pub fn boolean(mut self) -> Self {
        if let Some(value) = self.checked() {
            if as_bool(value).is_none() {
                self.fail(Rule::Boolean, &[]);
            }
        }
        self
    }

    /// `integer`: an integer or an integer string.
    pub fn integer(mut self) -> Self {
        if let Some(value) = self.checked() {
            if as_integer(value).is_none() {
                self.fail(Rule::Integer, &[]);
            }
        }
        self
    }

    /// `array` (a JSON object or array, as PHP arrays are both).
    pub fn array(mut self) -> Self {
        if let Some(value) = self.checked() {
            if !(value.is_object() || value.is_array()) {
                self.fail(Rule::Array, &[]);
            }
        }
        self
    }

    /// `max:n`: characters for strings, value for numbers, items for arrays.
    pub fn max(mut self, max: usize) -> Self {
        if let Some(value) = self.checked() {
            let max_text = max.to_string();
            match value {
                Value::String(s) if s.chars().count() > max => {
                    self.fail(Rule::MaxString, &[("max", &max_text)])
                }
                Value::Number(n) if n.as_f64().is_some_and(|n| n > max as f64) => {
                    self.fail(Rule::MaxNumeric, &[("max", &max_text)])
                }
                Value::Array(items) if items.len() > max => {
                    self.fail(Rule::MaxArray, &[("max", &max_text)])
                }
                _ => {}
            }
        }
        self
    }

    /// `min:n`: characters for strings, value for numbers.
    pub fn min(mut self, min: usize) -> Self {
        if let Some(value) = self.checked() {
            let min_text = min.to_string();
            match value {
                Value::String(s) if s.chars().count() < min => {
                    self.fail(Rule::MinString, &[("min", &min_text)])
                }
                Value::Number(n) if n.as_f64().is_some_and(|n| n < min as f64) => {
                    self.fail(Rule::MinNumeric, &[("min", &min_text)])
                }
                _ => {}
            }
        }
        self
    }

    /// `in:a,b,c` (loose string comparison, as PHP does).
    pub fn one_of(mut self, allowed: &[&str]) -> Self {
        if let Some(value) = self.checked() {
            let text = scalar_text(value);
            if !text.is_some_and(|t| allowed.contains(&t.as_str())) {
                self.fail(Rule::In, &[]);
            }
        }
        self
    }

    /// `email` (a pragmatic RFC shape: one `@`, non-empty local part, dotted or bracketed domain).
    pub fn email(mut self) -> Self {
        if let Some(value) = self.checked() {
            if !value.as_str().is_some_and(is_email) {
                self.fail(Rule::Email, &[]);
            }
        }
        self
    }

    /// A custom rule: `check` returns false to fail with `template` (`:attribute` is replaced).
    pub fn check(mut self, check: impl FnOnce(&Value) -> bool, template: &str) -> Self {
        if let Some(value) = self.checked() {
            if !check(value) {
                self.fail_with(template, &[]);
            }
        }
        self
    }

    /// A custom rule with a translated template pair.
    pub fn check_localized(
        self,
        check: impl FnOnce(&Value) -> bool,
        english: &str,
        french: &str,
    ) -> Self {
        let template = match self.validator.locale {
            Locale::En => english,
            Locale::Fr => french,
        }
        .to_owned();
        self.check(check, &template)
    }
}

/// The framework rules whose messages are templated.
#[derive(Clone, Copy, Debug)]
enum Rule {
    Required,
    RequiredWith,
    Missing,
    String,
    Boolean,
    Integer,
    Array,
    MaxString,
    MaxNumeric,
    MaxArray,
    MinString,
    MinNumeric,
    In,
    Email,
}

impl Rule {
    fn template(self, locale: Locale) -> &'static str {
        match (self, locale) {
            (Rule::Required, Locale::En) => "The :attribute field is required.",
            (Rule::Required, Locale::Fr) => "Le champ :attribute est obligatoire.",
            (Rule::RequiredWith, Locale::En) => {
                "The :attribute field is required when :values is present."
            }
            (Rule::RequiredWith, Locale::Fr) => {
                "Le champ :attribute est obligatoire quand :values est présent."
            }
            (Rule::Missing, _) => "The :attribute field must be missing.",
            (Rule::String, Locale::En) => "The :attribute must be a string.",
            (Rule::String, Locale::Fr) => "Le :attribute doit être une chaîne.",
            (Rule::Boolean, Locale::En) => "The :attribute field must be true or false.",
            (Rule::Boolean, Locale::Fr) => "Le champ :attribute doit être vrai ou faux.",
            (Rule::Integer, Locale::En) => "The :attribute must be an integer.",
            (Rule::Integer, Locale::Fr) => {
                "Le champ :attribute doit être un entier (un nombre sans virgule)."
            }
            (Rule::Array, Locale::En) => "The :attribute must be an array.",
            (Rule::Array, Locale::Fr) => "Le champ :attribute doit être un tableau.",
            (Rule::MaxString, Locale::En) => {
                "The :attribute may not be greater than :max characters."
            }
            (Rule::MaxString, Locale::Fr) => {
                "Le texte de :attribute ne peut contenir plus de :max caractères."
            }
            (Rule::MaxNumeric, Locale::En) => "The :attribute may not be greater than :max.",
            (Rule::MaxNumeric, Locale::Fr) => {
                "La valeur de :attribute ne peut être supérieure à :max."
            }
            (Rule::MaxArray, Locale::En) => "The :attribute may not have more than :max items.",
            (Rule::MaxArray, Locale::Fr) => {
                "Le tableau :attribute ne peut contenir plus de :max éléments."
            }
            (Rule::MinString, Locale::En) => "The :attribute must be at least :min characters.",
            (Rule::MinString, Locale::Fr) => {
                "Le texte du champ :attribute doit contenir au moins :min caractères."
            }
            (Rule::MinNumeric, Locale::En) => "The :attribute must be at least :min.",
            (Rule::MinNumeric, Locale::Fr) => {
                "La valeur de :attribute ne peut être inférieure à :min."
            }
            (Rule::In, Locale::En) => "The selected :attribute is invalid.",
            (Rule::In, Locale::Fr) => "Le champ :attribute est invalide.",
            (Rule::Email, Locale::En) => "The :attribute must be a valid email address.",
            (Rule::Email, Locale::Fr) => "Le champ :attribute doit être une adresse email valide.",
        }
    }
}

/// The display name of a field: French table when there is one, else `_` → space.
pub fn attribute_name(field: &str, locale: Locale) -> String {
    if locale == Locale::Fr {
        let french = match field {
            "username" => Some("pseudo"),
            "password" => Some("mot de passe"),
            "phone" => Some("téléphone"),
            "name" => Some("nom"),
            "title" => Some("titre"),
            "value" => Some("valeur"),
            "file" => Some("fichier"),
            "role" => Some("rôle"),
            "content" => Some("contenu"),
            "address" => Some("adresse"),
            "size" => Some("taille"),
            "password_confirmation" => Some("confirmation du mot de passe"),
            _ => None,
        };
        if let Some(french) = french {
            return french.to_owned();
        }
    }
    field.replace('_', " ")
}

/// Replaces `:attribute` and the given `:name` parameters in a template.
pub fn render(template: &str, locale: Locale, field: &str, params: &[(&str, &str)]) -> String {
    let mut message = template.replace(":attribute", &attribute_name(field, locale));
    for (name, value) in params {
        message = message.replace(&format!(":{name}"), value);
    }
    message
}

/// Follows a dotted path into nested objects.
fn lookup<'a>(input: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(input, |node, key| node.get(key))
}

/// PHP's boolean rule: `true`, `false`, `1`, `0`, `"1"`, `"0"`.
pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        Value::String(s) if s == "1" => Some(true),
        Value::String(s) if s == "0" => Some(false),
        _ => None,
    }
}

/// PHP's integer rule: an integer, or a string holding one.
pub fn as_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let trimmed = s.trim();
            let digits = trimmed.strip_prefix(['-', '+']).unwrap_or(trimmed);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                trimmed.parse().ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The text PHP would compare for `in:` rules.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("1".into()),
        Value::Bool(false) => Some("0".into()),
        _ => None,
    }
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains(char::is_whitespace)
        && !local.contains('@');
    let domain_ok =
        if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
            !literal.is_empty()
        } else {
            !domain.is_empty()
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                })
        };
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn laravel_shape_and_counts() {
        let input = json!({"password": "ab", "algorithm": "SHA-1"});
        let mut v = Validator::new(&input, Locale::En);
        v.field("username").required().string();
        v.field("password").required().min(3);
        v.field("algorithm").one_of(&["MD5", "SHA-256"]);
        let body = v.into_errors().to_json();
        assert_eq!(
            body,
            json!({
                "message": "The username field is required. (and 2 more errors)",
                "errors": {
                    "username": ["The username field is required."],
                    "password": ["The password must be at least 3 characters."],
                    "algorithm": ["The selected algorithm is invalid."]
                }
            })
        );
    }

    #[test]
    fn french_attribute_and_untranslated_suffix() {
        let input = json!({"email": "x"});
        let mut v = Validator::new(&input, Locale::Fr);
        v.field("username").required();
        v.field("email").email();
        let body = v.into_errors().to_json();
        assert_eq!(
            body["message"],
            "Le champ pseudo est obligatoire. (and 1 more error)"
        );
        assert_eq!(
            body["errors"]["email"][0],
            "Le champ email doit être une adresse email valide."
        );
    }

    #[test]
    fn presence_semantics() {
        let input = json!({"a": null, "b": "  ", "c": null, "d": 5, "e": {"at": "x"}});
        let mut v = Validator::new(&input, Locale::En);
        v.field("a").string(); // explicit null, not nullable: the rule runs
        v.field("b").string().max(1); // blank string: skipped
        v.field("c").nullable().string(); // nullable null: skipped
        v.field("d").string().max(3); // both fail, collected
        v.field("e.state").required_with("e.at");
        v.field("f").missing();
        v.field("d2").missing();
        let errors = v.into_errors();
        assert!(errors.has("a"));
        assert!(!errors.has("b"));
        assert!(!errors.has("c"));
        let body = errors.to_json();
        assert_eq!(
            body["errors"]["d"],
            json!([
                "The d must be a string.",
                "The d may not be greater than 3."
            ])
        );
        assert_eq!(
            body["errors"]["e.state"][0],
            "The e.state field is required when e.at is present."
        );
        let input = json!({"admin": false});
        let mut v = Validator::new(&input, Locale::En);
        v.field("admin").missing().boolean();
        assert_eq!(
            v.into_errors().to_json()["errors"]["admin"],
            json!(["The admin field must be missing."])
        );
    }

    #[test]
    fn scalars() {
        assert_eq!(as_bool(&json!("1")), Some(true));
        assert_eq!(as_bool(&json!("true")), None);
        assert_eq!(as_integer(&json!("42")), Some(42));
        assert_eq!(as_integer(&json!("4.2")), None);
        assert!(is_email("john@example.com"));
        assert!(!is_email("john"));
        assert!(!is_email("john@"));
    }
}
