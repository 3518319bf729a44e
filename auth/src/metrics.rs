//! Metric names of the auth crate, in one place.

/// Counter: authentication attempts, labels `method` (digest, api_key, jwt, none) and `outcome` (ok, failed).
pub const ATTEMPTS: &str = "flexiapi_auth_attempts_total";
/// Counter: API key cache lookups, label `result` (hit, miss).
pub const KEY_CACHE: &str = "flexiapi_auth_key_cache_total";
/// Counter: requests refused by the failed-authentication limit.
pub const THROTTLED: &str = "flexiapi_auth_throttled_total";

/// Records an authentication attempt.
pub fn attempt(method: &'static str, ok: bool) {
    metrics::counter!(ATTEMPTS, "method" => method, "outcome" => if ok { "ok" } else { "failed" })
        .increment(1);
}

/// Records an API key cache lookup.
pub fn key_cache(hit: bool) {
    metrics::counter!(KEY_CACHE, "result" => if hit { "hit" } else { "miss" }).increment(1);
}
