//! HTTP DIGEST (RFC 7616, MD5 and SHA-256) as FlexiAPI runs it (shared/spec/auth.md §3).
//!
//! A challenge stores one opaque record (fresh nonce + opaque) bound to the account and the client IP. A reply
//! is checked against that record: opaque and IP, nonce, the `nc` counter (replays refused), the fields,
//! then the response computed from the stored HA1 of the chosen algorithm. Success answers carry the same
//! challenge lines with the reused nonce/opaque so the client can go on counting.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::Duration;
use flexiapi_core::http::ValidationErrors;
use flexiapi_core::model::account::Password;
use flexiapi_core::model::{Account, Algorithm};
use flexiapi_core::{time, with_db, Db};
use http::HeaderValue;
use rand::RngCore;

use crate::error::AuthError;

/// Most live opaques kept per account and IP (upstream grows without bound between cron runs).
const MAX_OPAQUES_PER_CLIENT: i64 = 20;

/// The parameters of an `Authorization: Digest …` header, scanned as tolerantly as upstream does.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DigestParams {
    pub realm: Option<String>,
    pub username: Option<String>,
    pub nonce: Option<String>,
    pub uri: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub response: Option<String>,
    pub opaque: Option<String>,
    pub algorithm: Option<String>,
}

impl DigestParams {
    /// Collects `name=value` pairs (value quoted or bare, ending at the first quote or comma); later duplicates win.
    pub fn parse(header: &str) -> DigestParams {
        let mut values: HashMap<&str, String> = HashMap::new();
        let names = [
            "realm",
            "username",
            "nonce",
            "uri",
            "nc",
            "cnonce",
            "qop",
            "response",
            "opaque",
            "algorithm",
        ];
        let text = header
            .trim_start()
            .strip_prefix("Digest")
            .or_else(|| header.trim_start().strip_prefix("digest"))
            .unwrap_or(header);
        for part in split_params(text) {
            let Some((name, value)) = part.split_once('=') else {
                continue;
            };
            let name = name.trim();
            if let Some(known) = names.iter().find(|n| **n == name) {
                values.insert(known, value.to_owned());
            }
        }
        let mut take = |name: &str| values.remove(name);
        DigestParams {
            realm: take("realm"),
            username: take("username"),
            nonce: take("nonce"),
            uri: take("uri"),
            nc: take("nc"),
            cnonce: take("cnonce"),
            qop: take("qop"),
            response: take("response"),
            opaque: take("opaque"),
            algorithm: take("algorithm"),
        }
    }
}

/// Splits `a="x, y",b=c` into `a=x, y` / `b=c` (quotes removed).
fn split_params(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"') | (None, '\'') => quote = Some(c),
            (None, ',') => {
                parts.push(std::mem::take(&mut current).trim().to_owned());
            }
            (None, c) => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        parts.push(current.trim().to_owned());
    }
    parts
}

/// RFC 7616 response = H(HA1:nonce:nc:cnonce:qop:H(method:uri)).
// One parameter per term of the RFC formula reads better than a struct built only to call this.
#[allow(clippy::too_many_arguments)]
pub fn expected_response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hex_digest(format!("{method}:{uri}").as_bytes());
    algorithm.hex_digest(format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes())
}

/// One `WWW-Authenticate` line, upstream's exact spelling (no spaces after commas, bare algorithm).
pub fn challenge_line(realm: &str, algorithm: &str, nonce: &str, opaque: &str) -> HeaderValue {
    let line = format!(
        "Digest realm=\"{realm}\",qop=\"auth\",algorithm={algorithm},nonce=\"{nonce}\",opaque=\"{opaque}\""
    );
    HeaderValue::from_str(&line).unwrap_or_else(|_| HeaderValue::from_static("Digest"))
}

/// The value of `nc` as upstream reads it: hexadecimal digits only, others ignored.
fn nc_value(nc: &str) -> u64 {
    nc.chars()
        .filter(char::is_ascii_hexdigit)
        .fold(0u64, |acc, c| {
            acc.saturating_mul(16)
                .saturating_add(c.to_digit(16).unwrap_or(0) as u64)
        })
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What a DIGEST exchange needs from the request.
pub struct DigestRequest<'a> {
    /// The account named by `From`.
    pub account: &'a Account,
    /// Its realm (decision D6).
    pub realm: &'a str,
    /// The `From` username.
    pub from_username: &'a str,
    /// Client IP.
    pub ip: IpAddr,
    /// Request method.
    pub method: &'a str,
    /// Request path.
    pub path: &'a str,
    /// Path and query, as a spec-following client puts it in `uri`.
    pub path_and_query: &'a str,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// Opaques older than this many minutes are refused.
    pub opaque_expiration_minutes: u64,
}

/// Runs the exchange: Ok(challenge lines for the success answer) or the failure (with a new challenge).
pub async fn verify(db: &Db, request: &DigestRequest<'_>) -> Result<Vec<HeaderValue>, AuthError> {
    let passwords = request.account.passwords(db).await?;
    let Some(header) = request.authorization else {
        return Err(challenge(db, request, &passwords, "Unauthenticated request").await?);
    };
    let params = DigestParams::parse(header);
    let ip = request.ip.to_string();

    // 1. The opaque must be ours, for this account and IP, and still fresh.
    let Some(opaque) = params.opaque.as_deref() else {
        return Err(challenge(db, request, &passwords, "Invalid opaque").await?);
    };
    let record: Option<(i64, String, i64, Option<chrono::NaiveDateTime>)> = with_db!(db, pool =>
        sqlx::query_as("SELECT id, nonce, nc, created_at FROM opaques WHERE account_id = $1 AND opaque = $2 AND ip = $3")
            .bind(request.account.id).bind(opaque).bind(&ip)
            .fetch_optional(pool).await)?;
    let oldest_accepted = time::now()
        - Duration::minutes(request.opaque_expiration_minutes.min(i64::MAX as u64) as i64);
    let Some((record_id, stored_nonce, counter, _)) = record.filter(|(_, _, _, created)| {
        request.opaque_expiration_minutes == 0 || created.is_some_and(|c| c >= oldest_accepted)
    }) else {
        return Err(challenge(db, request, &passwords, "Invalid opaque").await?);
    };
    // Upstream never compares the nonce; we do (no legitimate client sends another one).
    if params.nonce.as_deref() != Some(stored_nonce.as_str()) {
        return Err(challenge(db, request, &passwords, "Invalid opaque").await?);
    }

    // 2-3. Replay check, then count this use before anything else can fail (upstream's order).
    let nc = params.nc.clone().unwrap_or_default();
    if counter as u64 >= nc_value(&nc) {
        with_db!(db, pool => sqlx::query("DELETE FROM opaques WHERE id = $1").bind(record_id).execute(pool).await.map(|_| ()))?;
        return Err(challenge(db, request, &passwords, "Nonce replayed").await?);
    }
    let counted = with_db!(db, pool =>
        sqlx::query("UPDATE opaques SET nc = nc + 1, updated_at = $3 WHERE id = $1 AND nc = $2")
            .bind(record_id).bind(counter).bind(time::now()).execute(pool).await.map(|r| r.rows_affected()))?;
    if counted == 0 {
        // Another request with the same counter got there first: that one is the replay.
        return Err(challenge(db, request, &passwords, "Nonce replayed").await?);
    }

    // 4. Field validation (422, no challenge).
    let mut errors = ValidationErrors::default();
    if let Some(uri) = &params.uri {
        if uri != request.path && uri != request.path_and_query {
            errors.add("uri", "The selected uri is invalid.");
        }
    }
    if params.qop.as_deref() != Some("auth") {
        errors.add("qop", "The selected qop is invalid.");
    }
    if params.realm.as_deref() != Some(request.realm) {
        errors.add("realm", "The selected realm is invalid.");
    }
    if params.nc.is_none() {
        errors.add("nc", "The nc field is required.");
    }
    if params.cnonce.is_none() {
        errors.add("cnonce", "The cnonce field is required.");
    }
    let algorithm_name = params.algorithm.as_deref().unwrap_or("MD5");
    let algorithm = Algorithm::parse(algorithm_name);
    if algorithm.is_none() {
        errors.add("algorithm", "The selected algorithm is invalid.");
    }
    if params.username.as_deref() != Some(request.from_username) {
        errors.add("username", "The selected username is invalid.");
    }
    if !errors.is_empty() {
        return Err(AuthError::InvalidDigestField(errors));
    }
    let algorithm = algorithm.expect("validated above");
    let (Some(uri), Some(response)) = (params.uri.as_deref(), params.response.as_deref()) else {
        return Err(challenge(db, request, &passwords, "Unauthorized").await?);
    };

    // 5-6. A hash for that algorithm, then the response itself.
    let Some(hash) = passwords.iter().find(|p| p.algorithm == algorithm.as_str()) else {
        return Err(challenge(db, request, &passwords, "Wrong algorithm").await?);
    };
    let expected = expected_response(
        algorithm,
        &hash.password,
        &stored_nonce,
        &nc,
        params.cnonce.as_deref().unwrap_or(""),
        "auth",
        request.method,
        uri,
    );
    if !constant_time_eq(
        expected.as_bytes(),
        response.to_ascii_lowercase().as_bytes(),
    ) {
        return Err(challenge(db, request, &passwords, "Unauthorized").await?);
    }
    Ok(lines(request.realm, &passwords, &stored_nonce, opaque))
}

fn lines(realm: &str, passwords: &[Password], nonce: &str, opaque: &str) -> Vec<HeaderValue> {
    passwords
        .iter()
        .map(|p| challenge_line(realm, &p.algorithm, nonce, opaque))
        .collect()
}

/// Stores a fresh opaque for (account, IP) and builds the 401 with one line per stored algorithm.
async fn challenge(
    db: &Db,
    request: &DigestRequest<'_>,
    passwords: &[Password],
    message: &'static str,
) -> Result<AuthError, sqlx::Error> {
    let nonce = random_hex();
    let opaque = random_hex();
    let ip = request.ip.to_string();
    let now = time::now();
    with_db!(db, pool => {
        sqlx::query(
            "INSERT INTO opaques (account_id, nonce, opaque, ip, nc, created_at, updated_at) VALUES ($1, $2, $3, $4, 0, $5, $5)")
            .bind(request.account.id).bind(&nonce).bind(&opaque).bind(&ip).bind(now)
            .execute(pool).await?;
        sqlx::query(
            "DELETE FROM opaques WHERE account_id = $1 AND ip = $2 AND id NOT IN \
             (SELECT id FROM opaques WHERE account_id = $1 AND ip = $2 ORDER BY id DESC LIMIT $3)")
            .bind(request.account.id).bind(&ip).bind(MAX_OPAQUES_PER_CLIENT)
            .execute(pool).await?;
    });
    Ok(AuthError::Unauthenticated {
        message,
        challenges: lines(request.realm, passwords, &nonce, &opaque),
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7616_example() {
        // RFC 7616 §3.9.1: Mufasa / "Circle of Life" on http-auth@example.org, GET /dir/index.html.
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (algorithm, expected) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ha1 = algorithm.ha1("Mufasa", "http-auth@example.org", "Circle of Life");
            let response = expected_response(
                algorithm,
                &ha1,
                nonce,
                "00000001",
                cnonce,
                "auth",
                "GET",
                "/dir/index.html",
            );
            assert_eq!(response, expected, "{}", algorithm.as_str());
        }
    }

    #[test]
    fn worked_example_of_the_spec() {
        let nonce = "37c5ab2a983c5cd6fd5a1fd0b969476fb28fefcce02f54000904cf32ee60b9e7";
        let md5 = Algorithm::Md5.ha1("alice", "sip.example.com", "secret");
        let sha = Algorithm::Sha256.ha1("alice", "sip.example.com", "secret");
        let uri = "/api/accounts/me";
        assert_eq!(
            expected_response(
                Algorithm::Md5,
                &md5,
                nonce,
                "00000001",
                "0a4f113b",
                "auth",
                "GET",
                uri
            ),
            "df4a299470d4ee2b207c01f3fb04b6e6"
        );
        assert_eq!(
            expected_response(
                Algorithm::Md5,
                &md5,
                nonce,
                "00000002",
                "0a4f113b",
                "auth",
                "GET",
                uri
            ),
            "e0ff0afd38baabf58c54e533ceccc740"
        );
        assert_eq!(
            expected_response(
                Algorithm::Sha256,
                &sha,
                nonce,
                "00000001",
                "0a4f113b",
                "auth",
                "GET",
                uri
            ),
            "b8bc1c45f32f8e101000d5cea9a1a204671f1ebb23dc6de27443e10518c9a825"
        );
    }

    #[test]
    fn header_scanning() {
        let params = DigestParams::parse(
            "Digest username=\"alice\", realm='r', nonce=\"n\",nc=00000001,cnonce=\"c\",uri=\"/a?b=1\",qop=auth,response=\"R\",opaque=\"o\",algorithm=SHA-256,userhash=false",
        );
        assert_eq!(params.username.as_deref(), Some("alice"));
        assert_eq!(params.realm.as_deref(), Some("r"));
        assert_eq!(params.uri.as_deref(), Some("/a?b=1"));
        assert_eq!(params.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(params.qop.as_deref(), Some("auth"));
        assert_eq!(nc_value("00000002"), 2);
        assert_eq!(nc_value("zz"), 0);
        assert_eq!(
            challenge_line("r", "MD5", "n", "o").to_str().unwrap(),
            "Digest realm=\"r\",qop=\"auth\",algorithm=MD5,nonce=\"n\",opaque=\"o\""
        );
    }
}
