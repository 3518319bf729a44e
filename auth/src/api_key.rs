//! API keys: `x-api-key` header or cookie, user keys bound to their creator's IP, expiry after inactivity.
//!
//! Lookups are cached for the configured TTL (5 s by default) so the statistics hot path does not query the
//! database per request; revocation, blocking and expiry therefore show within that delay. Usage counters
//! (`requests`, `last_used_at`) are accumulated in memory and flushed about once a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use flexiapi_core::cache::TtlCache;
use flexiapi_core::model::Account;
use flexiapi_core::{time, with_db, Db};
use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::metrics;

/// Name given to the stable keys made by `flexiapi accounts create-admin`.
pub const STABLE_KEY_NAME: &str = "flexiapi accounts create-admin";

/// A random key of 40 `[A-Za-z0-9]` characters.
pub fn random_key() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

/// Creates the account's user key bound to `ip`, deleting its previous user key; returns the key.
pub async fn generate_user_key(db: &Db, account_id: i64, ip: &str) -> Result<String, sqlx::Error> {
    let key = random_key();
    let now = time::now();
    with_db!(db, pool => {
        let mut tx = flexiapi_core::db::begin_write(pool).await?;
        sqlx::query("DELETE FROM api_keys WHERE account_id = $1 AND expires_after_last_used_minutes IS NULL")
            .bind(account_id).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO api_keys (account_id, key, ip, requests, last_used_at, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, $4, $4, $4)")
            .bind(account_id).bind(&key).bind(ip).bind(now)
            .execute(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(key)
}

/// Creates a key that never expires (admin-panel style), optionally bound to an IP; returns the key.
pub async fn create_stable_key(
    db: &Db,
    account_id: i64,
    ip: Option<&str>,
) -> Result<String, sqlx::Error> {
    let key = random_key();
    let now = time::now();
    with_db!(db, pool => sqlx::query(
        "INSERT INTO api_keys (account_id, key, name, ip, requests, last_used_at, expires_after_last_used_minutes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 0, $5, 0, $5, $5)")
        .bind(account_id).bind(&key).bind(STABLE_KEY_NAME).bind(ip).bind(now)
        .execute(pool).await.map(|_| ()))?;
    Ok(key)
}

/// What a valid key resolves to.
#[derive(Clone, Debug)]
pub struct KeyEntry {
    /// `api_keys.id`.
    pub key_id: i64,
    /// The owner.
    pub account: Arc<Account>,
    /// Whether the owner is a super admin.
    pub is_super_admin: bool,
    /// IP the key is bound to, if any.
    pub ip: Option<String>,
    /// Last use (kept current in memory between flushes).
    pub last_used_at: NaiveDateTime,
    /// NULL for user keys; minutes of allowed inactivity for admin-panel keys (0 = never expires).
    pub expires_after_last_used_minutes: Option<i64>,
}

impl KeyEntry {
    /// True when the key may be used from `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        match &self.ip {
            None => true,
            Some(bound) if bound.is_empty() => true,
            Some(bound) => match bound.parse::<IpAddr>() {
                Ok(parsed) => normalize(parsed) == normalize(ip),
                Err(_) => bound == &ip.to_string(),
            },
        }
    }

    /// True when inactivity has expired the key (checked at request time, unlike upstream's cron).
    pub fn is_expired(&self, now: NaiveDateTime, user_key_expiration_minutes: u64) -> bool {
        let idle_limit = match self.expires_after_last_used_minutes {
            None if user_key_expiration_minutes > 0 => user_key_expiration_minutes as i64,
            Some(minutes) if minutes > 0 => minutes,
            _ => return false,
        };
        self.last_used_at + chrono::Duration::minutes(idle_limit) < now
    }
}

fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// `api_keys` columns a lookup reads: id, account_id, ip, last_used_at, expires_after_last_used_minutes.
type KeyRow = (i64, i64, Option<String>, NaiveDateTime, Option<i64>);

/// Keys kept at most; a flood of random keys starts the cache over rather than growing it.
const KEYS_CACHED: usize = 100_000;

/// The key cache and the pending usage counters.
pub(crate) struct KeyStore {
    db: Db,
    cache: TtlCache<String, Option<KeyEntry>>,
    usage: Mutex<HashMap<i64, (i64, NaiveDateTime)>>,
}

impl KeyStore {
    pub(crate) fn new(db: Db, ttl: Duration) -> Arc<KeyStore> {
        Arc::new(KeyStore {
            db,
            cache: TtlCache::new(ttl, KEYS_CACHED),
            usage: Mutex::new(HashMap::new()),
        })
    }

    /// The entry of `key`, from the cache when fresh.
    pub(crate) async fn lookup(
        self: &Arc<Self>,
        key: &str,
    ) -> Result<Option<KeyEntry>, sqlx::Error> {
        let mut hit = true;
        let entry = self
            .cache
            .get(key, || {
                hit = false;
                let (store, key) = (self.clone(), key.to_owned());
                async move { store.load(&key).await }
            })
            .await;
        metrics::key_cache(hit);
        entry
    }

    async fn load(&self, key: &str) -> Result<Option<KeyEntry>, sqlx::Error> {
        let row: Option<KeyRow> = with_db!(&self.db, pool =>
            sqlx::query_as(
                "SELECT id, account_id, ip, last_used_at, expires_after_last_used_minutes FROM api_keys WHERE key = $1")
                .bind(key).fetch_optional(pool).await)?;
        let Some((key_id, account_id, ip, last_used_at, expires)) = row else {
            return Ok(None);
        };
        let Some(account) = Account::find(&self.db, account_id).await? else {
            return Ok(None);
        };
        let is_super_admin = account.is_super_admin(&self.db).await?;
        let pending = self
            .usage
            .lock()
            .expect("usage")
            .get(&key_id)
            .map(|(_, at)| *at);
        Ok(Some(KeyEntry {
            key_id,
            account: Arc::new(account),
            is_super_admin,
            ip,
            last_used_at: pending.map_or(last_used_at, |p| p.max(last_used_at)),
            expires_after_last_used_minutes: expires,
        }))
    }

    /// Counts one use of a key (flushed later) and refreshes its cached `last_used_at`.
    pub(crate) fn record_use(&self, key: &str, key_id: i64) {
        let now = time::now();
        {
            let mut usage = self.usage.lock().expect("usage");
            let entry = usage.entry(key_id).or_insert((0, now));
            entry.0 += 1;
            entry.1 = now;
        }
        self.cache.modify(key, |entry| {
            if let Some(entry) = entry {
                entry.last_used_at = now;
            }
        });
    }

    /// Writes the pending usage counters.
    pub(crate) async fn flush(&self) -> Result<(), sqlx::Error> {
        let pending: Vec<(i64, (i64, NaiveDateTime))> =
            self.usage.lock().expect("usage").drain().collect();
        for (key_id, (count, last)) in pending {
            with_db!(&self.db, pool => sqlx::query(
                "UPDATE api_keys SET requests = requests + $1, last_used_at = $2, updated_at = $2 WHERE id = $3")
                .bind(count).bind(last).bind(key_id).execute(pool).await.map(|_| ()))?;
        }
        Ok(())
    }

    /// Forgets cached entries of one account (or all when `None`).
    pub(crate) fn invalidate(&self, account_id: Option<i64>) {
        match account_id {
            None => self.cache.clear(),
            Some(id) => self
                .cache
                .retain(|entry| entry.as_ref().is_none_or(|e| e.account.id != id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ip: Option<&str>, expires: Option<i64>, last: NaiveDateTime) -> KeyEntry {
        KeyEntry {
            key_id: 1,
            account: Arc::new(Account {
                id: 1,
                username: "a".into(),
                domain: "d".into(),
                email: None,
                activated: true,
                ip_address: "127.0.0.1".into(),
                user_agent: "t".into(),
                display_name: None,
                dtmf_protocol: None,
                blocked: false,
                admin: false,
                phone: None,
                created_at: last,
                updated_at: None,
            }),
            is_super_admin: false,
            ip: ip.map(str::to_owned),
            last_used_at: last,
            expires_after_last_used_minutes: expires,
        }
    }

    #[test]
    fn ip_binding_and_expiry() {
        let now = time::now();
        let user = entry(Some("10.0.0.1"), None, now - chrono::Duration::minutes(61));
        assert!(user.allows("10.0.0.1".parse().unwrap()));
        assert!(user.allows("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!user.allows("10.0.0.2".parse().unwrap()));
        assert!(user.is_expired(now, 60));
        assert!(!user.is_expired(now, 0));
        let stable = entry(None, Some(0), now - chrono::Duration::days(400));
        assert!(stable.allows("192.0.2.1".parse().unwrap()));
        assert!(!stable.is_expired(now, 60));
        let panel = entry(None, Some(5), now - chrono::Duration::minutes(6));
        assert!(panel.is_expired(now, 60));
        let key = random_key();
        assert_eq!(key.len(), 40);
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
