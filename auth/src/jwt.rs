//! JWT bearer tokens (shared/spec/auth.md §5): RS256/384/512 and ES256/384, `exp` and `nbf` checked, the account
//! named by the SIP identity claim (else the `email` claim) must exist.

use flexiapi_core::{with_db, Db};
use http::HeaderValue;
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};

use crate::error::AuthError;
use crate::sip;

/// Where a token is verified: a public key, the identity claim, and what the challenge says.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// PEM public key.
    pub public_key_pem: Vec<u8>,
    /// Claim carrying `sip:user@domain`.
    pub sip_identifier: String,
    /// Attributes of the `WWW-Authenticate: Bearer …` challenge, without the error part.
    pub challenge: String,
}

/// The bearer token of an `Authorization` value: text after the last `Bearer `, cut at the first comma.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let lower = authorization.to_ascii_lowercase();
    let start = lower.rfind("bearer ")? + "bearer ".len();
    let token = authorization[start..].split(',').next()?.trim();
    (!token.is_empty()).then_some(token)
}

fn invalid(settings: &JwtSettings, description: &str) -> AuthError {
    let value = format!(
        "Bearer {}, error=\"invalid_token\", error_description=\"{}\"",
        settings.challenge,
        description.replace('"', "'")
    );
    AuthError::InvalidBearer {
        challenge: HeaderValue::from_str(&value)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\"")),
    }
}

/// Verifies the token and returns the id of the account it names.
pub async fn verify(db: &Db, token: &str, settings: &JwtSettings) -> Result<i64, AuthError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| invalid(settings, &format!("Invalid bearer {e}")))?;
    let key = match header.alg {
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            DecodingKey::from_rsa_pem(&settings.public_key_pem)
        }
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&settings.public_key_pem),
        _ => return Err(invalid(settings, "Unsupported signature algorithm")),
    }
    .map_err(|_| {
        invalid(
            settings,
            "Unsupported signature algorithm for the configured key",
        )
    })?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = 0;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map_err(|e| {
            let description = match e.kind() {
                ErrorKind::ExpiredSignature => "Expired JWT token".to_owned(),
                ErrorKind::ImmatureSignature => "The JWT token is not valid yet".to_owned(),
                ErrorKind::InvalidSignature => "Invalid JWT token signature".to_owned(),
                ErrorKind::InvalidAlgorithm => "Unsupported signature algorithm".to_owned(),
                other => format!("Invalid bearer {other:?}"),
            };
            invalid(settings, &description)
        })?
        .claims;

    let account: Option<i64> = if let Some(identity) = claims.get(&settings.sip_identifier) {
        let address = identity
            .as_str()
            .and_then(sip::parse_uri)
            .ok_or_else(|| invalid(settings, "Invalid SIP address"))?;
        with_db!(db, pool => sqlx::query_scalar("SELECT id FROM accounts WHERE username = $1 AND domain = $2")
            .bind(&address.username).bind(&address.domain).fetch_optional(pool).await)?
    } else if let Some(email) = claims.get("email").and_then(|e| e.as_str()) {
        with_db!(db, pool => sqlx::query_scalar("SELECT id FROM accounts WHERE email = $1 ORDER BY id LIMIT 1")
            .bind(email).fetch_optional(pool).await)?
    } else {
        None
    };
    account.ok_or(AuthError::Forbidden(
        "The JWT token is not related to someone in the system",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_extraction() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer x, other"), Some("x"));
        assert_eq!(bearer_token("Digest a=b"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
