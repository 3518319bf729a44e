//! Writing accounts: creation (with password, dictionary, phone and the first provisioning token), deletion
//! with a tombstone, provisioning tokens.

use flexiapi_core::model::space::realm_for_domain;
use flexiapi_core::model::{Account, Algorithm, Space};
use flexiapi_core::{with_db, Db};

use crate::token;

/// Everything needed to insert an account.
#[derive(Debug, Default)]
pub struct NewAccount {
    pub username: String,
    pub domain: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub dtmf_protocol: Option<String>,
    pub phone: Option<String>,
    pub activated: bool,
    pub admin: bool,
    pub ip_address: String,
    pub user_agent: String,
    /// Clear password and the algorithm to hash it with (None: no password row).
    pub password: Option<(String, Algorithm)>,
    pub dictionary: Vec<(String, String)>,
}

/// Who a token / code was made for (stored next to it).
#[derive(Clone, Debug)]
pub struct Origin {
    pub ip: String,
    pub user_agent: Option<String>,
}

/// Inserts the account and everything it starts with, in one transaction; returns the stored row.
pub async fn create(db: &Db, new: NewAccount) -> Result<Account, sqlx::Error> {
    let realm = realm_for_domain(db, &new.domain).await?;
    let now = flexiapi_core::time::now();
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (username, domain, email, display_name, dtmf_protocol, phone, activated, admin, \
             blocked, ip_address, user_agent, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, FALSE, $9, $10, $11, $11) RETURNING id")
            .bind(&new.username).bind(&new.domain).bind(&new.email).bind(&new.display_name)
            .bind(&new.dtmf_protocol).bind(&new.phone).bind(new.activated).bind(new.admin)
            .bind(&new.ip_address).bind(&new.user_agent).bind(now)
            .fetch_one(&mut *tx).await?;
        for (key, value) in &new.dictionary {
            sqlx::query(
                "INSERT INTO account_dictionary_entries (account_id, key, value, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4)")
                .bind(id).bind(key).bind(value).bind(now)
                .execute(&mut *tx).await?;
        }
        if let Some((password, algorithm)) = &new.password {
            sqlx::query("INSERT INTO passwords (account_id, password, algorithm) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(algorithm.ha1(&new.username, &realm, password))
                .bind(algorithm.as_str())
                .execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO provisioning_tokens (account_id, token, used, ip, user_agent, created_at, updated_at) \
             VALUES ($1, $2, FALSE, $3, $4, $5, $5)")
            .bind(id).bind(token::alphanumeric(token::SHORT)).bind(&new.ip_address)
            .bind(&new.user_agent).bind(now)
            .execute(&mut *tx).await?;
        let account: Account = sqlx::query_as("SELECT * FROM accounts WHERE id = $1")
            .bind(id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(account)
    })
}

/// A new current provisioning token for the account (older unused ones stop being current).
pub async fn new_provisioning_token(
    db: &Db,
    account_id: i64,
    origin: &Origin,
) -> Result<String, sqlx::Error> {
    let token = token::alphanumeric(token::SHORT);
    let now = flexiapi_core::time::now();
    with_db!(db, pool => sqlx::query(
        "INSERT INTO provisioning_tokens (account_id, token, used, ip, user_agent, created_at, updated_at) \
         VALUES ($1, $2, FALSE, $3, $4, $5, $5)")
        .bind(account_id).bind(&token).bind(&origin.ip).bind(&origin.user_agent).bind(now)
        .execute(pool)
        .await.map(|r| r.rows_affected()))?;
    Ok(token)
}

/// Deletes the account after recording a tombstone (the username can never be registered again there).
pub async fn delete_with_tombstone(db: &Db, account: &Account) -> Result<(), sqlx::Error> {
    let now = flexiapi_core::time::now();
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        sqlx::query(
            "INSERT INTO accounts_tombstones (username, domain, created_at, updated_at) \
             SELECT $1, $2, $3, $3 WHERE NOT EXISTS \
             (SELECT 1 FROM accounts_tombstones WHERE username = $1 AND domain = $2)")
            .bind(&account.username).bind(&account.domain).bind(now)
            .execute(&mut *tx).await?;
        sqlx::query("DELETE FROM accounts WHERE id = $1")
            .bind(account.id)
            .execute(&mut *tx).await?;
        tx.commit().await
    })
}

/// The password algorithm a space hashes new passwords with (`None`: the space has no digest
/// configuration, "digest disabled").
pub async fn space_algorithm(db: &Db, space: &Space) -> Result<Option<Algorithm>, sqlx::Error> {
    Ok(space
        .digest_configuration(db)
        .await?
        .map(|c| Algorithm::parse(&c.default_password_algorithm).unwrap_or(Algorithm::Sha256)))
}

/// Replaces the account's password (decision D2), realm of the account's own space (D6).
pub async fn set_password(
    db: &Db,
    account: &Account,
    password: &str,
    algorithm: Algorithm,
) -> Result<(), sqlx::Error> {
    let realm = realm_for_domain(db, &account.domain).await?;
    account.set_password(db, password, algorithm, &realm).await
}

/// Sets one boolean column (`activated` / `blocked`) and returns the fresh row.
pub async fn set_flag(
    db: &Db,
    account_id: i64,
    column: Flag,
    value: bool,
) -> Result<Option<Account>, sqlx::Error> {
    let sql = match column {
        Flag::Activated => "UPDATE accounts SET activated = $1, updated_at = $2 WHERE id = $3",
        Flag::Blocked => "UPDATE accounts SET blocked = $1, updated_at = $2 WHERE id = $3",
    };
    let now = flexiapi_core::time::now();
    with_db!(db, pool => sqlx::query(sql).bind(value).bind(now).bind(account_id).execute(pool).await.map(|r| r.rows_affected()))?;
    Account::find(db, account_id).await
}

/// The account flags admins toggle.
#[derive(Clone, Copy, Debug)]
pub enum Flag {
    Activated,
    Blocked,
}

/// Number of accounts of a domain (for `max_accounts`).
pub async fn count_in_domain(db: &Db, domain: &str) -> Result<i64, sqlx::Error> {
    with_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE domain = $1")
        .bind(domain)
        .fetch_one(pool)
        .await)
}

/// True when the space cannot take one more account.
pub async fn space_is_full(db: &Db, space: &Space) -> Result<bool, sqlx::Error> {
    Ok(space.max_accounts > 0 && count_in_domain(db, &space.domain).await? >= space.max_accounts)
}
