//! The rendered `GET /api/accounts/me` bodies, kept so that an app polling its own account costs no query.
//!
//! Correctness rests on a generation counter rather than on tracking which rows each body depends on:
//! - [`track_writes`] wraps the whole account API and bumps the generation after every request that may have
//!   written (anything but the read-only routes), before its reply leaves, so a client never reads its own
//!   write stale from this node;
//! - a body is stored with the generation read *before* its queries and only if no bump happened meanwhile,
//!   so a render racing with a write is never kept;
//! - writes this process cannot see (another node on the same PostgreSQL, `flexiapi accounts create-admin`)
//!   show within the TTL, the same bound as the API key cache (`FLEXIAPI_AUTH_CACHE_TTL_MS`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;

/// Bodies kept at most; beyond it the map is emptied (it refills from the accounts that keep asking).
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    /// The account rendered: an id the database reused for another account never matches.
    username: String,
    domain: String,
    generation: u64,
    at: Instant,
    body: Bytes,
}

/// Rendered `me` bodies by account id, valid for one generation and at most `ttl`.
pub struct MeCache {
    generation: AtomicU64,
    ttl: Duration,
    entries: RwLock<HashMap<i64, Entry>>,
}

impl MeCache {
    /// An empty cache whose bodies live at most `ttl` (zero disables it).
    pub fn new(ttl: Duration) -> MeCache {
        MeCache {
            generation: AtomicU64::new(0),
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The current generation: read it before the queries whose result goes to [`MeCache::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Invalidates every body (something may have changed).
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The body of account `account_id` (`username@domain`) if it is of the current generation and younger than
    /// the TTL.
    pub fn get(&self, account_id: i64, username: &str, domain: &str) -> Option<Bytes> {
        let generation = self.generation();
        let entries = self.entries.read().expect("me cache");
        let entry = entries.get(&account_id)?;
        (entry.generation == generation
            && entry.at.elapsed() < self.ttl
            && entry.username == username
            && entry.domain == domain)
            .then(|| entry.body.clone())
    }

    /// Keeps `body`, rendered from data read at `generation`, unless a write happened since.
    pub fn put(&self, account_id: i64, username: &str, domain: &str, generation: u64, body: Bytes) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().expect("me cache");
        // Checked under the lock: a bump between this check and the insert is caught by `get`'s comparison.
        if self.generation() != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            account_id,
            Entry {
                username: username.to_owned(),
                domain: domain.to_owned(),
                generation,
                at: Instant::now(),
                body,
            },
        );
    }
}

/// True for the requests known to write nothing, which leave the cache valid.
fn read_only(request: &Request) -> bool {
    request.method() == Method::GET
        && matches!(request.uri().path(), "/api/accounts/me" | "/api/ping")
}

/// Middleware: after any request that may have written, invalidates the cached `me` bodies before replying.
pub async fn track_writes(
    State(cache): State<Arc<MeCache>>,
    request: Request,
    next: Next,
) -> Response {
    if read_only(&request) {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    cache.bump();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_served_until_the_next_write() {
        let cache = MeCache::new(Duration::from_secs(60));
        let generation = cache.generation();
        cache.put(7, "bob", "a", generation, Bytes::from_static(b"{\"id\":7}"));
        assert_eq!(
            cache.get(7, "bob", "a").as_deref(),
            Some(&b"{\"id\":7}"[..])
        );
        assert_eq!(cache.get(8, "bob", "a"), None);
        // The id reused by another account.
        assert_eq!(cache.get(7, "eve", "a"), None);
        assert_eq!(cache.get(7, "bob", "b"), None);
        cache.bump();
        assert_eq!(cache.get(7, "bob", "a"), None);
    }

    #[test]
    fn a_render_that_raced_with_a_write_is_not_kept() {
        let cache = MeCache::new(Duration::from_secs(60));
        let before_queries = cache.generation();
        cache.bump();
        cache.put(7, "bob", "a", before_queries, Bytes::from_static(b"old"));
        assert_eq!(cache.get(7, "bob", "a"), None);
    }

    #[test]
    fn bodies_expire_after_the_ttl() {
        let cache = MeCache::new(Duration::from_millis(20));
        cache.put(7, "bob", "a", cache.generation(), Bytes::from_static(b"x"));
        assert!(cache.get(7, "bob", "a").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(7, "bob", "a"), None);
        let off = MeCache::new(Duration::ZERO);
        off.put(7, "bob", "a", off.generation(), Bytes::from_static(b"x"));
        assert_eq!(off.get(7, "bob", "a"), None);
    }
}
