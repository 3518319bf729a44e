//! Accounts and their DIGEST password hashes.

use chrono::NaiveDateTime;
use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::db::Db;
use crate::with_db;

/// A row of `accounts`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub domain: String,
    pub email: Option<String>,
    pub activated: bool,
    pub ip_address: String,
    pub user_agent: String,
    pub display_name: Option<String>,
    pub dtmf_protocol: Option<String>,
    pub blocked: bool,
    pub admin: bool,
    pub phone: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: Option<NaiveDateTime>,
}

/// A stored DIGEST hash (`passwords` row).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Password {
    pub id: i64,
    pub account_id: i64,
    pub password: String,
    pub algorithm: String,
}

/// The two DIGEST algorithms FlexiAPI stores hashes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`.
    Md5,
    /// `SHA-256`.
    Sha256,
}

impl Algorithm {
    /// Parses the exact upstream spelling (`MD5`, `SHA-256`).
    pub fn parse(text: &str) -> Option<Algorithm> {
        match text {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// The upstream spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Lower-case hex digest of `input`.
    pub fn hex_digest(self, input: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(input)),
            Algorithm::Sha256 => hex::encode(Sha256::digest(input)),
        }
    }

    /// RFC 7616 HA1 = H(username:realm:password), what `passwords.password` stores.
    pub fn ha1(self, username: &str, realm: &str, password: &str) -> String {
        self.hex_digest(format!("{username}:{realm}:{password}").as_bytes())
    }
}

impl Account {
    /// `username@domain`.
    pub fn identifier(&self) -> String {
        format!("{}@{}", self.username, self.domain)
    }

    /// `sip:username@domain`.
    pub fn sip_uri(&self) -> String {
        format!("sip:{}@{}", self.username, self.domain)
    }

    /// The account with this id.
    pub async fn find(db: &Db, id: i64) -> Result<Option<Account>, sqlx::Error> {
        with_db!(db, pool => sqlx::query_as("SELECT * FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await)
    }

    /// The account `username@domain` (exact match, any space).
    pub async fn find_by_identity(
        db: &Db,
        username: &str,
        domain: &str,
    ) -> Result<Option<Account>, sqlx::Error> {
        with_db!(db, pool => sqlx::query_as(
            "SELECT * FROM accounts WHERE username = $1 AND domain = $2")
            .bind(username)
            .bind(domain)
            .fetch_optional(pool)
            .await)
    }

    /// The stored hashes of this account, in storage order (ascending id).
    pub async fn passwords(&self, db: &Db) -> Result<Vec<Password>, sqlx::Error> {
        with_db!(db, pool => sqlx::query_as(
            "SELECT id, account_id, password, algorithm FROM passwords WHERE account_id = $1 ORDER BY id")
            .bind(self.id)
            .fetch_all(pool)
            .await)
    }

    /// True when this account is an admin of a space flagged `super` for its own domain.
    pub async fn is_super_admin(&self, db: &Db) -> Result<bool, sqlx::Error> {
        if !self.admin {
            return Ok(false);
        }
        let is_super: Option<bool> = with_db!(db, pool => sqlx::query_scalar(
            "SELECT super FROM spaces WHERE domain = $1")
            .bind(&self.domain)
            .fetch_optional(pool)
            .await)?;
        Ok(is_super.unwrap_or(false))
    }

    /// Replaces the account's hashes for a new password (decision D2): stores the hash for `algorithm`, keeps a
    /// hash of the other algorithm only when it is the hash of this same password, removes it otherwise.
    pub async fn set_password(
        &self,
        db: &Db,
        password: &str,
        algorithm: Algorithm,
        realm: &str,
    ) -> Result<(), sqlx::Error> {
        let hash = algorithm.ha1(&self.username, realm, password);
        let existing = self.passwords(db).await?;
        let keep: Vec<i64> = existing
            .iter()
            .filter(|row| row.algorithm != algorithm.as_str())
            .filter(|row| {
                Algorithm::parse(&row.algorithm)
                    .is_some_and(|other| other.ha1(&self.username, realm, password) == row.password)
            })
            .map(|row| row.id)
            .collect();
        with_db!(db, pool => {
            let mut tx = crate::db::begin_write(pool).await?;
            for row in &existing {
                if !keep.contains(&row.id) {
                    sqlx::query("DELETE FROM passwords WHERE id = $1")
                        .bind(row.id).execute(&mut *tx).await?;
                }
            }
            sqlx::query("INSERT INTO passwords (account_id, password, algorithm) VALUES ($1, $2, $3)")
                .bind(self.id).bind(&hash).bind(algorithm.as_str())
                .execute(&mut *tx).await?;
            tx.commit().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        assert_eq!(
            Algorithm::Md5.ha1("alice", "sip.example.com", "secret"),
            "a0bbf6034b8565747c15ee9850d9215a"
        );
        assert_eq!(
            Algorithm::Sha256.ha1("alice", "sip.example.com", "secret"),
            "03d98b60177c9b919ba6998a126e370face2c50fb9e27767af8294541954d6ef"
        );
        assert_eq!(
            Algorithm::Md5.ha1("john", "hop.com", "1234"),
            "ce44af78c5f81f5870818b8db523fd95"
        );
        assert_eq!(Algorithm::parse("sha-256"), None);
    }
}
