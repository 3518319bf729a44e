//! The Account JSON object (api-accounts.md §4.1) in each of its variants.
//!
//! Columns come first, then the appended keys (`provisioning_token`, `provisioning_token_expire_at`,
//! `dictionary`, `sip_uri`), then the relations (`passwords`, `email_change_code`, `types`, `actions`,
//! `carddav_servers`, and per variant `phone_change_code` / `call_forwardings`). Everything the object needs
//! beyond the row is read in ONE round trip (a tagged `UNION ALL`), because `GET /api/accounts/me` is hot.

use chrono::{Duration, NaiveDateTime};
use serde_json::{json, Map, Value};

use flexiapi_core::model::Account;
use flexiapi_core::time::{laravel, laravel_json};
use flexiapi_core::{with_db, Config, Db};

/// Which serialisation of an account an endpoint answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// `GET /accounts/me`, creation, update, flags, provision, password, confirmations.
    Full,
    /// Admin search endpoints: full plus `call_forwardings`.
    Search,
    /// `GET /accounts` items: no `passwords`, adds `phone_change_code`, codes hidden.
    AdminList,
    /// `GET /accounts/{id}`: as the list, with the pending codes visible.
    AdminShow,
    /// `GET /accounts/me/contacts`: a reduced set of columns. Decision: the contact's provisioning token,
    /// pending email change and password algorithms are left out (upstream leaks them to every contact).
    Contact,
}

/// One row of the relation query; `kind` says which relation it belongs to.
#[derive(sqlx::FromRow)]
struct RelationRow {
    kind: String,
    n: Option<i64>,
    a: Option<String>,
    b: Option<String>,
    c: Option<String>,
    d: Option<String>,
    t: Option<NaiveDateTime>,
    u: Option<NaiveDateTime>,
}

const RELATIONS_SQL: &str = "\
SELECT 'provisioning' AS kind, p.id AS n, p.token AS a, NULL AS b, NULL AS c, NULL AS d, p.created_at AS t, CAST(NULL AS TIMESTAMP) AS u \
  FROM (SELECT id, token, created_at FROM provisioning_tokens WHERE account_id = $1 AND used = FALSE ORDER BY id DESC LIMIT 1) p \
UNION ALL SELECT 'dictionary', id, key, value, NULL, NULL, NULL, NULL FROM account_dictionary_entries WHERE account_id = $1 \
UNION ALL SELECT 'password', id, algorithm, NULL, NULL, NULL, NULL, NULL FROM passwords WHERE account_id = $1 \
UNION ALL SELECT 'email_code', e.id, e.email, e.code, e.ip, e.user_agent, e.created_at, e.updated_at \
  FROM (SELECT id, email, code, ip, user_agent, created_at, updated_at FROM email_change_codes \
        WHERE account_id = $1 AND code IS NOT NULL ORDER BY id DESC LIMIT 1) e \
UNION ALL SELECT 'phone_code', f.id, f.phone, f.code, f.ip, f.user_agent, f.created_at, f.updated_at \
  FROM (SELECT id, phone, code, ip, user_agent, created_at, updated_at FROM phone_change_codes \
        WHERE account_id = $1 AND code IS NOT NULL ORDER BY id DESC LIMIT 1) f \
UNION ALL SELECT 'type', t.id, t.key, NULL, NULL, NULL, NULL, NULL \
  FROM account_types t JOIN account_account_type l ON l.account_type_id = t.id WHERE l.account_id = $1 \
UNION ALL SELECT 'action', id, key, code, NULL, NULL, NULL, NULL FROM account_actions WHERE account_id = $1 \
UNION ALL SELECT 'carddav', COUNT(*), NULL, NULL, NULL, NULL, NULL, NULL FROM account_carddav_credentials WHERE account_id = $1";

/// A CardDAV server of the account with its credentials (the `pivot`).
#[derive(sqlx::FromRow)]
struct CardDavRow {
    id: i64,
    enabled: bool,
    uri: String,
    min_characters: i64,
    results_limit: i64,
    timeout: i64,
    delay: i64,
    fields_for_user_input: Option<String>,
    fields_for_domain: Option<String>,
    use_exact_match_policy: bool,
    created_at: Option<NaiveDateTime>,
    updated_at: Option<NaiveDateTime>,
    username: String,
    realm: String,
    algorithm: String,
    password: String,
}

/// Serialises `account` in the given variant.
pub async fn render(
    db: &Db,
    config: &Config,
    account: &Account,
    view: View,
) -> Result<Value, sqlx::Error> {
    let mut rows: Vec<RelationRow> = with_db!(db, pool => sqlx::query_as(RELATIONS_SQL)
        .bind(account.id)
        .fetch_all(pool)
        .await)?;
    rows.sort_by(|x, y| (x.kind.as_str(), x.n).cmp(&(y.kind.as_str(), y.n)));
    let of = |kind: &'static str| rows.iter().filter(move |r| r.kind == kind);

    let mut object = Map::new();
    object.insert("id".into(), json!(account.id));
    object.insert("username".into(), json!(account.username));
    object.insert("domain".into(), json!(account.domain));
    if view == View::Contact {
        object.insert("activated".into(), json!(account.activated));
        object.insert("dtmf_protocol".into(), json!(account.dtmf_protocol));
        object.insert("display_name".into(), json!(account.display_name));
    } else {
        object.insert("email".into(), json!(account.email));
        object.insert("activated".into(), json!(account.activated));
        object.insert("ip_address".into(), json!(account.ip_address));
        object.insert("user_agent".into(), json!(account.user_agent));
        object.insert("created_at".into(), json!(laravel(&account.created_at)));
        object.insert("display_name".into(), json!(account.display_name));
        object.insert("dtmf_protocol".into(), json!(account.dtmf_protocol));
        object.insert(
            "updated_at".into(),
            laravel_json(account.updated_at.as_ref()),
        );
        object.insert("blocked".into(), json!(account.blocked));
        object.insert("admin".into(), json!(account.admin));
        object.insert("phone".into(), json!(account.phone));
        let provisioning = of("provisioning").next();
        object.insert(
            "provisioning_token".into(),
            json!(provisioning.and_then(|p| p.a.clone())),
        );
        let minutes = config.limits.provisioning_token_expiration_minutes;
        let expire_at = provisioning
            .and_then(|p| p.t)
            .filter(|_| minutes > 0)
            .map(|created| created + Duration::minutes(minutes as i64));
        object.insert(
            "provisioning_token_expire_at".into(),
            laravel_json(expire_at.as_ref()),
        );
    }
    let dictionary: Map<String, Value> = of("dictionary")
        .map(|r| (r.a.clone().unwrap_or_default(), json!(r.b)))
        .collect();
    object.insert("dictionary".into(), Value::Object(dictionary));
    object.insert("sip_uri".into(), json!(account.sip_uri()));
    if matches!(view, View::Full | View::Search) {
        let passwords: Vec<Value> = of("password").map(|r| json!({"algorithm": r.a})).collect();
        object.insert("passwords".into(), Value::Array(passwords));
    }
    if view != View::Contact {
        let show_code = view == View::AdminShow;
        object.insert(
            "email_change_code".into(),
            change_code(of("email_code").next(), "email", show_code),
        );
    }
    let types: Vec<Value> = of("type").map(|r| json!({"id": r.n, "key": r.a})).collect();
    object.insert("types".into(), Value::Array(types));
    let actions: Vec<Value> = if account.dtmf_protocol.is_some() {
        of("action")
            .map(|r| json!({"id": r.n, "key": r.a, "code": r.b}))
            .collect()
    } else {
        Vec::new()
    };
    object.insert("actions".into(), Value::Array(actions));
    let carddav_count = of("carddav").next().and_then(|r| r.n).unwrap_or(0);
    let carddav_servers = if carddav_count > 0 {
        carddav_servers(db, account.id).await?
    } else {
        Vec::new()
    };
    object.insert("carddav_servers".into(), Value::Array(carddav_servers));
    if matches!(view, View::AdminList | View::AdminShow) {
        let show_code = view == View::AdminShow;
        object.insert(
            "phone_change_code".into(),
            change_code(of("phone_code").next(), "phone", show_code),
        );
    }
    if view == View::Search {
        // Call forwardings are beyond the seed doc and not stored by flexiapi-rs: always empty.
        object.insert("call_forwardings".into(), json!([]));
    }
    Ok(Value::Object(object))
}

/// A pending email / phone change (`{"email"|"phone", created_at, updated_at, ip, user_agent[, code]}`).
fn change_code(row: Option<&RelationRow>, field: &str, show_code: bool) -> Value {
    let Some(row) = row else {
        return Value::Null;
    };
    let mut object = Map::new();
    object.insert(field.into(), json!(row.a));
    object.insert("created_at".into(), laravel_json(row.t.as_ref()));
    object.insert("updated_at".into(), laravel_json(row.u.as_ref()));
    object.insert("ip".into(), json!(row.c));
    object.insert("user_agent".into(), json!(row.d));
    if show_code {
        object.insert("code".into(), json!(row.b));
    }
    Value::Object(object)
}

async fn carddav_servers(db: &Db, account_id: i64) -> Result<Vec<Value>, sqlx::Error> {
    let rows: Vec<CardDavRow> = with_db!(db, pool => sqlx::query_as(
        "SELECT s.id, s.enabled, s.uri, s.min_characters, s.results_limit, s.timeout, s.delay, \
         s.fields_for_user_input, s.fields_for_domain, s.use_exact_match_policy, s.created_at, s.updated_at, \
         c.username, c.realm, c.algorithm, c.password \
         FROM space_carddav_servers s JOIN account_carddav_credentials c ON c.space_carddav_server_id = s.id \
         WHERE c.account_id = $1 ORDER BY s.id")
        .bind(account_id)
        .fetch_all(pool)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "enabled": r.enabled,
                "uri": r.uri,
                "min_characters": r.min_characters,
                "results_limit": r.results_limit,
                "timeout": r.timeout,
                "delay": r.delay,
                "fields_for_user_input": r.fields_for_user_input,
                "fields_for_domain": r.fields_for_domain,
                "use_exact_match_policy": r.use_exact_match_policy,
                "created_at": laravel_json(r.created_at.as_ref()),
                "updated_at": laravel_json(r.updated_at.as_ref()),
                "pivot": {
                    "account_id": account_id,
                    "space_carddav_server_id": r.id,
                    "username": r.username,
                    "realm": r.realm,
                    "algorithm": r.algorithm,
                    "password": r.password,
                }
            })
        })
        .collect())
}
