//! A read-through cache of database lookups whose entries are trusted for a bounded time.
//!
//! The hot paths (the request Space, API keys, a Space's JWT settings) read memory. The database sees at most
//! one load of a key at a time: requests that miss together wait for that one load instead of each querying
//! (under 64 busy connections, a thundering herd of misses held requests for over 100 ms). A key still in use
//! is loaded again in the background once half its time is gone, so a steady stream never waits for it,
//! while no answer is ever older than the time-to-live.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

/// A value and when the load that produced it started (its data is at least that old).
struct Entry<V> {
    loaded: Instant,
    value: V,
    /// Set while a background load of this key runs, so only one is started.
    refreshing: AtomicBool,
}

struct Inner<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: RwLock<HashMap<K, Entry<V>>>,
    /// The keys being loaded in the foreground, each with the gate that requests missing it queue on.
    gates: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped by every invalidation: a load that started before one does not store what it read.
    generation: AtomicU64,
}

/// A time-bounded read-through cache; clones share the same entries.
pub struct TtlCache<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for TtlCache<K, V> {
    fn clone(&self) -> Self {
        TtlCache {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> TtlCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache whose answers are at most `ttl` old, holding up to `capacity` keys (then it starts over).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            inner: Arc::new(Inner {
                ttl,
                capacity: capacity.max(1),
                entries: RwLock::new(HashMap::new()),
                gates: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// The value of `key`: from memory when younger than the time-to-live, else from `load` (one load per
    /// key at a time; errors are not cached). Past half its time, a used entry is loaded again in the
    /// background and the current value is answered meanwhile.
    pub async fn get<Q, F, Fut, E>(&self, key: &Q, load: F) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let (value, refresh) = match self.fresh(key) {
            Some(found) => found,
            None => return self.load_gated(key, load).await,
        };
        if refresh {
            let inner = self.inner.clone();
            let key = key.to_owned();
            let generation = inner.generation.load(Ordering::Acquire);
            let started = Instant::now();
            let loading = load();
            tokio::spawn(async move {
                match loading.await {
                    Ok(value) => inner.store(key, value, started, generation),
                    Err(error) => {
                        // The entry stays until it expires; the next foreground load reports the error.
                        tracing::warn!(%error, "background cache refresh failed");
                        if let Some(entry) = inner.entries.read().expect("cache").get::<K>(&key) {
                            entry.refreshing.store(false, Ordering::Release);
                        }
                    }
                }
            });
        }
        Ok(value)
    }

    /// Changes the cached value of `key` in place, if there is one (its age is unchanged).
    pub fn modify<Q>(&self, key: &Q, change: impl FnOnce(&mut V))
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(entry) = self.inner.entries.write().expect("cache").get_mut(key) {
            change(&mut entry.value);
        }
    }

    /// Forgets every entry; loads under way do not store their result.
    pub fn clear(&self) {
        self.retain(|_| false);
    }

    /// Keeps only the entries whose value passes `keep`; loads under way do not store their result.
    pub fn retain(&self, keep: impl Fn(&V) -> bool) {
        let mut entries = self.inner.entries.write().expect("cache");
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, entry| keep(&entry.value));
    }

    /// The cached value if young enough, and whether this caller should start its background reload.
    fn fresh<Q>(&self, key: &Q) -> Option<(V, bool)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.inner.entries.read().expect("cache");
        let entry = entries.get(key)?;
        let age = entry.loaded.elapsed();
        if age >= self.inner.ttl {
            return None;
        }
        let refresh = age >= self.inner.ttl / 2
            && entry
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        Some((entry.value.clone(), refresh))
    }

    /// Loads `key` in the foreground; callers that miss the same key meanwhile wait and reuse the result.
    async fn load_gated<Q, F, Fut, E>(&self, key: &Q, load: F) -> Result<V, E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let gate = self
            .inner
            .gates
            .lock()
            .expect("cache gates")
            .entry(key.to_owned())
            .or_default()
            .clone();
        // Also when this request is dropped mid-load (client gone), so the map cannot grow.
        let _leave = Leave {
            inner: &self.inner,
            key: key.to_owned(),
            gate: gate.clone(),
        };
        let _held = gate.lock().await;
        // The caller ahead in the queue may have loaded it.
        if let Some((value, _)) = self.fresh(key) {
            return Ok(value);
        }
        let generation = self.inner.generation.load(Ordering::Acquire);
        let started = Instant::now();
        let result = load().await;
        if let Ok(value) = &result {
            self.inner
                .store(key.to_owned(), value.clone(), started, generation);
        }
        result
    }
}

/// Takes a key's gate out of the map when its load ends: later arrivals find the stored entry, and those
/// already queued on this gate re-check it.
struct Leave<'a, K: Hash + Eq, V> {
    inner: &'a Inner<K, V>,
    key: K,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl<K: Hash + Eq, V> Drop for Leave<'_, K, V> {
    fn drop(&mut self) {
        let mut gates = self.inner.gates.lock().expect("cache gates");
        if gates
            .get(&self.key)
            .is_some_and(|g| Arc::ptr_eq(g, &self.gate))
        {
            gates.remove(&self.key);
        }
    }
}

impl<K: Hash + Eq, V> Inner<K, V> {
    /// Stores a loaded value unless an invalidation happened since its load started.
    fn store(&self, key: K, value: V, started: Instant, generation: u64) {
        let mut entries = self.entries.write().expect("cache");
        if self.generation.load(Ordering::Acquire) != generation {
            // An entry an invalidation kept may be waiting for this reload: let the next reader start one.
            if let Some(entry) = entries.get(&key) {
                entry.refreshing.store(false, Ordering::Release);
            }
            return;
        }
        // Bound memory under a flood of distinct keys (random API keys, unknown hosts): start over.
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                loaded: started,
                value,
                refreshing: AtomicBool::new(false),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const TTL: Duration = Duration::from_secs(4);

    /// A loader that counts its calls, takes 10 ms and answers `value`.
    fn loader(
        calls: &Arc<AtomicUsize>,
        value: u32,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<u32, String>> + Send>> {
        let calls = calls.clone();
        move || {
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(value)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_that_miss_together_share_one_load() {
        let cache = TtlCache::<String, u32>::new(TTL, 100);
        let calls = Arc::new(AtomicUsize::new(0));
        let mut gets = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (cache, load) = (cache.clone(), loader(&calls, 7));
            gets.spawn(async move { cache.get("k", load).await });
        }
        while let Some(value) = gets.join_next().await {
            assert_eq!(value.unwrap(), Ok(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_used_entry_is_reloaded_in_the_background_and_never_served_past_its_ttl() {
        let cache = TtlCache::<String, u32>::new(TTL, 100);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(cache.get("k", loader(&calls, 1)).await, Ok(1));

        // Young: from memory, no load.
        tokio::time::advance(TTL / 4).await;
        assert_eq!(cache.get("k", loader(&calls, 2)).await, Ok(1));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // Past half its time: the old value at once, one reload behind it.
        tokio::time::advance(TTL / 2).await;
        assert_eq!(cache.get("k", loader(&calls, 2)).await, Ok(1));
        assert_eq!(cache.get("k", loader(&calls, 3)).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.get("k", loader(&calls, 4)).await, Ok(2));

        // Unused past its time: the caller waits for a fresh load.
        tokio::time::advance(TTL).await;
        assert_eq!(cache.get("k", loader(&calls, 5)).await, Ok(5));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_load_that_overlaps_an_invalidation_is_not_kept() {
        let cache = TtlCache::<String, u32>::new(TTL, 100);
        let calls = Arc::new(AtomicUsize::new(0));
        let racing = {
            let cache = cache.clone();
            let calls = calls.clone();
            tokio::spawn(async move { cache.get("k", loader(&calls, 1)).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache.clear();
        assert_eq!(racing.await.unwrap(), Ok(1));
        // What that load read predates the invalidation: the next caller loads again.
        assert_eq!(cache.get("k", loader(&calls, 2)).await, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_not_cached_and_retain_forgets_selected_values() {
        let cache = TtlCache::<String, u32>::new(TTL, 100);
        let failed: Result<u32, String> = cache.get("k", || async { Err("down".to_owned()) }).await;
        assert_eq!(failed, Err("down".to_owned()));
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(cache.get("k", loader(&calls, 1)).await, Ok(1));
        assert_eq!(cache.get("j", loader(&calls, 2)).await, Ok(2));
        cache.retain(|v| *v != 1);
        assert_eq!(cache.get("j", loader(&calls, 9)).await, Ok(2));
        assert_eq!(cache.get("k", loader(&calls, 3)).await, Ok(3));
        cache.modify("k", |v| *v = 30);
        assert_eq!(cache.get("k", loader(&calls, 9)).await, Ok(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_dropped_mid_load_leaves_no_gate_behind() {
        let cache = TtlCache::<String, u32>::new(TTL, 100);
        let calls = Arc::new(AtomicUsize::new(0));
        let dropped =
            tokio::time::timeout(Duration::from_millis(5), cache.get("k", loader(&calls, 1)));
        assert!(dropped.await.is_err(), "the load takes 10 ms");
        assert!(cache.inner.gates.lock().unwrap().is_empty());
        assert_eq!(cache.get("k", loader(&calls, 2)).await, Ok(2));
        assert!(cache.inner.gates.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_discarded_by_an_invalidation_does_not_stop_later_reloads() {
        let cache = TtlCache::<String, u32>::new(TTL, 100);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(cache.get("k", loader(&calls, 1)).await, Ok(1));
        tokio::time::advance(TTL * 3 / 4).await;
        // A background reload starts; an invalidation that keeps this entry lands while it runs.
        assert_eq!(cache.get("k", loader(&calls, 2)).await, Ok(1));
        cache.retain(|_| true);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(cache.get("k", loader(&calls, 3)).await, Ok(1), "discarded");
        // The next reader starts another reload, which is kept.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(cache.get("k", loader(&calls, 4)).await, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_starts_over_instead_of_growing() {
        let cache = TtlCache::<String, u32>::new(TTL, 2);
        let calls = Arc::new(AtomicUsize::new(0));
        for (key, value) in [("a", 1), ("b", 2), ("c", 3)] {
            cache.get(key, loader(&calls, value)).await.unwrap();
        }
        assert_eq!(cache.inner.entries.read().unwrap().len(), 1);
        assert_eq!(cache.get("a", loader(&calls, 10)).await, Ok(10));
    }
}
