//! The one typed configuration of flexiapi-rs.
//!
//! Values come from an optional dotenv-style file (`FLEXIAPI_CONFIG`, `KEY=VALUE` lines, the same format as
//! FlexiAPI's Laravel `.env`, so an operator can reuse theirs) overlaid by the process environment. Upstream's
//! setting names (`APP_…`, `ACCOUNT_…`, `BLOCKING_…`, `COTURN_…`) are kept so existing deployments carry over.
//! A value that does not parse stops the start with an error naming the setting.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that does not parse.
    #[error("invalid value for {name}: {value:?} ({reason})")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line of the configuration file is not `KEY=VALUE`.
    #[error("{path}:{line}: expected KEY=VALUE")]
    FileSyntax { path: PathBuf, line: usize },
}

/// Everything flexiapi-rs can be told, with upstream's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds (`FLEXIAPI_LISTEN`).
    pub listen: SocketAddr,
    /// `sqlite://…` (embedded, default) or `postgres://…` (`FLEXIAPI_DATABASE_URL`).
    pub database_url: String,
    /// Upper bound of the database pool (`FLEXIAPI_DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// Comma-separated Kafka bootstrap servers; set = scale mode (`FLEXIAPI_KAFKA_BROKERS`).
    pub kafka_brokers: Option<String>,
    /// Topic the statistics events are appended to (`FLEXIAPI_KAFKA_TOPIC`).
    pub kafka_topic: String,
    /// Consumer group of the sink (`FLEXIAPI_KAFKA_GROUP`).
    pub kafka_group: String,
    /// ClickHouse HTTP URL; set = statistics reads and the sink use ClickHouse (`FLEXIAPI_CLICKHOUSE_URL`).
    pub clickhouse_url: Option<String>,
    /// ClickHouse database (`FLEXIAPI_CLICKHOUSE_DATABASE`).
    pub clickhouse_database: String,
    /// ClickHouse user (`FLEXIAPI_CLICKHOUSE_USER`).
    pub clickhouse_user: Option<String>,
    /// ClickHouse password (`FLEXIAPI_CLICKHOUSE_PASSWORD`).
    pub clickhouse_password: Option<String>,
    /// PEM public key verifying JWT bearer tokens, global fallback (`FLEXIAPI_JWT_PUBLIC_KEY_PATH`).
    pub jwt_public_key_path: Option<PathBuf>,
    /// Claim naming the SIP identity in a JWT (`JWT_SIP_IDENTIFIER`).
    pub jwt_sip_identifier: String,
    /// Free text of the RFC 8898 bearer challenge (`ACCOUNT_AUTHENTICATION_BEARER`).
    pub account_authentication_bearer: Option<String>,
    /// TLS certificate chain (PEM); with the key, the server speaks HTTPS with ALPN h2 (`FLEXIAPI_TLS_CERT`).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) (`FLEXIAPI_TLS_KEY`).
    pub tls_key: Option<PathBuf>,
    /// When set, every Space host must end with it (`APP_ROOT_HOST`).
    pub root_host: Option<String>,
    /// Upstream expiry and limit settings.
    pub limits: Limits,
    /// Outgoing mail (global server; a Space's own email server wins).
    pub mail: MailConfig,
    /// HTTP SMS provider for phone codes (`FLEXIAPI_SMS_URL`).
    pub sms_url: Option<String>,
    /// Flexisip registrar data (`FLEXIAPI_REDIS_URL`).
    pub redis_url: Option<String>,
    /// Path of the `flexisip_pusher` executable (`APP_FLEXISIP_PUSHER_PATH`).
    pub flexisip_pusher_path: Option<PathBuf>,
    /// Firebase keys map given to the pusher (`APP_FLEXISIP_PUSHER_FIREBASE_KEYSMAP`).
    pub flexisip_pusher_firebase_keysmap: Option<String>,
    /// Unix socket of the linphone daemon; `POST /api/messages` exists only when set (`APP_LINPHONE_DAEMON_UNIX_PATH`).
    pub linphone_daemon_unix_path: Option<PathBuf>,
    /// TURN credentials (`COTURN_SERVER_HOST`, `COTURN_STATIC_AUTH_SECRET`, `COTURN_SESSION_TTL_MINUTES`).
    pub coturn: CoturnConfig,
    /// `secure` attribute of the `x-api-key` cookie: None = when the request came over HTTPS (`SESSION_SECURE_COOKIE`).
    pub session_secure_cookie: Option<bool>,
    /// Failed authentications tolerated per client IP and minute before 429; 0 disables
    /// (`FLEXIAPI_AUTH_FAILURE_LIMIT_PER_MINUTE`).
    pub auth_failure_limit_per_minute: u32,
    /// Statistics ingest tuning.
    pub ingest: IngestConfig,
    /// Scale mode tuning (Kafka log, ClickHouse sink).
    pub scale: ScaleConfig,
}

/// Tuning of scale mode: the Kafka log of `flexiapi ingest` and the ClickHouse sink.
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    /// Partitions given to the topic when the ingest or the sink creates it (`FLEXIAPI_KAFKA_PARTITIONS`).
    pub kafka_partitions: i32,
    /// Most events the sink writes to ClickHouse in one batch (`FLEXIAPI_SINK_BATCH_MAX`).
    pub sink_batch_max: usize,
    /// Longest the sink waits to fill a batch, from its first event (`FLEXIAPI_SINK_BATCH_MS`).
    pub sink_batch_time: Duration,
    /// Longest a caught-up sink's fetch waits at the broker for more events (`FLEXIAPI_SINK_FETCH_WAIT_MS`).
    pub sink_fetch_wait: Duration,
    /// Entities (calls, messages, conferences) the ingest's status index remembers (`FLEXIAPI_INGEST_INDEX_CAPACITY`).
    pub index_capacity: usize,
    /// How far back the ingest reads the topic to rebuild its index at start (`FLEXIAPI_INGEST_INDEX_WINDOW_HOURS`).
    pub index_window: Duration,
}

/// Upstream's expiry and limit settings (shared/spec/api-accounts.md §1.7), in minutes unless stated.
#[derive(Debug, Clone)]
pub struct Limits {
    pub account_creation_token_expiration_minutes: u64,
    pub account_creation_token_retry_minutes: u64,
    pub account_recovery_token_expiration_minutes: u64,
    pub account_recovery_token_retry_minutes: Option<u64>,
    pub email_change_code_expiration_minutes: u64,
    pub phone_change_code_expiration_minutes: u64,
    pub recovery_code_expiration_minutes: u64,
    pub provisioning_token_expiration_minutes: u64,
    pub reset_password_email_token_expiration_minutes: u64,
    pub api_key_expiration_minutes: u64,
    /// DIGEST opaques older than this are refused at request time (upstream relies on a cron).
    pub opaque_expiration_minutes: u64,
    pub blocking_time_period_check: u64,
    /// Code requests tolerated in the blocking window; 0 disables automatic blocking.
    pub blocking_amount_events_authorized_during_period: u64,
    pub account_username_regex: String,
    pub account_blacklisted_usernames: Vec<String>,
    pub allow_phone_number_username_admin_api: bool,
}

/// Global SMTP server, Laravel's `MAIL_*` names.
#[derive(Debug, Clone, Default)]
pub struct MailConfig {
    pub host: Option<String>,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
}

/// TURN REST credentials (draft-uberti-behave-turn-rest-00).
#[derive(Debug, Clone, Default)]
pub struct CoturnConfig {
    pub server_host: Option<String>,
    pub static_auth_secret: Option<String>,
    pub session_ttl_minutes: u64,
}

/// Tuning of the statistics ingest path.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Largest accepted request body in bytes (`FLEXIAPI_INGEST_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Most events committed in one transaction (`FLEXIAPI_INGEST_BATCH_MAX`).
    pub batch_max: usize,
    /// Events waiting for the writer before new requests wait (`FLEXIAPI_INGEST_QUEUE_DEPTH`).
    pub queue_depth: usize,
    /// Longest a request waits for room in the queue before a 503 (`FLEXIAPI_INGEST_ENQUEUE_TIMEOUT_MS`).
    pub enqueue_timeout: Duration,
    /// How long cached credentials are trusted; bounds revocation delay (`FLEXIAPI_AUTH_CACHE_TTL_MS`).
    pub auth_cache_ttl: Duration,
    /// SQLite: how long commits gather before each WAL fsync (`FLEXIAPI_INGEST_SYNC_GATHER_US`).
    pub sync_gather: Duration,
}

/// Where raw setting values are read from: the file, then the environment over it.
#[derive(Debug, Default, Clone)]
pub struct Source {
    values: HashMap<String, String>,
    /// Every name a setting was looked up under, so that names nothing reads can be reported.
    read: RefCell<HashSet<&'static str>>,
}

impl Source {
    /// Reads the process environment over the file named by `FLEXIAPI_CONFIG` (if any).
    pub fn from_process() -> Result<Self, ConfigError> {
        let mut source = Source::default();
        if let Ok(path) = std::env::var("FLEXIAPI_CONFIG") {
            if !path.is_empty() {
                source.merge_file(Path::new(&path))?;
            }
        }
        for (key, value) in std::env::vars() {
            source.values.insert(key, value);
        }
        Ok(source)
    }

    /// Builds a source from explicit pairs (tests, embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Source {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            read: RefCell::default(),
        }
    }

    /// Adds the `KEY=VALUE` lines of a dotenv-style file; existing keys are overwritten.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
            path: path.to_owned(),
            source,
        })?;
        for (index, raw_line) in text.lines().enumerate() {
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError::FileSyntax {
                    path: path.to_owned(),
                    line: index + 1,
                });
            };
            let value = value.trim();
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(value);
            self.values
                .insert(key.trim().to_owned(), unquoted.to_owned());
        }
        Ok(())
    }

    /// The `FLEXIAPI_*` names set here that no setting reads — most likely typos, which would otherwise leave
    /// the default in place without a word. (`FLEXIAPI_CONFIG` names the file; `FLEXIAPI_TEST_*` are the test
    /// scripts'.) Meaningful after [`Config::from_source`] has read this source.
    pub fn unread(&self) -> Vec<String> {
        let read = self.read.borrow();
        let mut unread: Vec<String> = self
            .values
            .keys()
            .filter(|key| key.starts_with("FLEXIAPI_") && !key.starts_with("FLEXIAPI_TEST_"))
            .filter(|key| key.as_str() != "FLEXIAPI_CONFIG" && !read.contains(key.as_str()))
            .cloned()
            .collect();
        unread.sort();
        unread
    }

    /// The raw value; an empty string counts as unset (as Laravel's `env()` helpers treat it for our settings).
    fn get(&self, name: &'static str) -> Option<&str> {
        self.read.borrow_mut().insert(name);
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn string(&self, name: &'static str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn parsed<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Ok(self.optional_parsed(name)?.unwrap_or(default))
    }

    fn optional_parsed<T>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        raw.trim()
            .parse()
            .map(Some)
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                value: raw.to_owned(),
                reason: e.to_string(),
            })
    }

    fn boolean(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse_bool(raw).ok_or_else(|| ConfigError::Invalid {
                name,
                value: raw.to_owned(),
                reason: "expected true or false".into(),
            }),
        }
    }

    fn optional_boolean(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.boolean(name, false).map(Some),
        }
    }
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "(true)" => Some(true),
        "0" | "false" | "no" | "off" | "(false)" => Some(false),
        _ => None,
    }
}

impl Config {
    /// Loads from `FLEXIAPI_CONFIG` (optional file) and the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Source::from_process()?)
    }

    /// Loads from an explicit source, validating every value.
    pub fn from_source(source: &Source) -> Result<Self, ConfigError> {
        let database_url = source
            .string("FLEXIAPI_DATABASE_URL")
            .unwrap_or_else(|| "sqlite://./data/flexiapi.db".to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                name: "FLEXIAPI_DATABASE_URL",
                value: database_url,
                reason: "expected sqlite://… or postgres://…".into(),
            });
        }
        let tls_cert = source.string("FLEXIAPI_TLS_CERT").map(PathBuf::from);
        let tls_key = source.string("FLEXIAPI_TLS_KEY").map(PathBuf::from);
        if tls_cert.is_some() != tls_key.is_some() {
            let (name, value) = match &tls_cert {
                Some(cert) => ("FLEXIAPI_TLS_KEY", cert.display().to_string()),
                None => ("FLEXIAPI_TLS_CERT", String::new()),
            };
            return Err(ConfigError::Invalid {
                name,
                value,
                reason: "FLEXIAPI_TLS_CERT and FLEXIAPI_TLS_KEY go together".into(),
            });
        }
        for (name, url) in [
            (
                "FLEXIAPI_CLICKHOUSE_URL",
                source.get("FLEXIAPI_CLICKHOUSE_URL"),
            ),
            ("FLEXIAPI_SMS_URL", source.get("FLEXIAPI_SMS_URL")),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        name,
                        value: url.to_owned(),
                        reason: "expected an http:// or https:// URL".into(),
                    });
                }
            }
        }
        let username_regex = source
            .string("ACCOUNT_USERNAME_REGEX")
            .unwrap_or_else(|| "^[a-z0-9+_.-]*$".to_owned());
        let limits = Limits {
            account_creation_token_expiration_minutes: source
                .parsed("APP_ACCOUNT_CREATION_TOKEN_EXPIRATION_MINUTES", 0)?,
            account_creation_token_retry_minutes: source
                .parsed("APP_API_ACCOUNT_CREATION_TOKEN_RETRY_MINUTES", 60)?,
            account_recovery_token_expiration_minutes: source
                .parsed("APP_ACCOUNT_RECOVERY_TOKEN_EXPIRATION_MINUTES", 60)?,
            account_recovery_token_retry_minutes: source
                .optional_parsed("APP_ACCOUNT_RECOVERY_TOKEN_RETRY_MINUTES")?,
            email_change_code_expiration_minutes: source
                .parsed("APP_EMAIL_CHANGE_CODE_EXPIRATION_MINUTES", 10)?,
            phone_change_code_expiration_minutes: source
                .parsed("APP_PHONE_CHANGE_CODE_EXPIRATION_MINUTES", 10)?,
            recovery_code_expiration_minutes: source
                .parsed("APP_RECOVERY_CODE_EXPIRATION_MINUTES", 10)?,
            provisioning_token_expiration_minutes: source
                .parsed("APP_PROVISIONING_TOKEN_EXPIRATION_MINUTES", 0)?,
            reset_password_email_token_expiration_minutes: source
                .parsed("APP_RESET_PASSWORD_EMAIL_TOKEN_EXPIRATION_MINUTES", 1440)?,
            api_key_expiration_minutes: source.parsed("APP_API_KEY_EXPIRATION_MINUTES", 60)?,
            opaque_expiration_minutes: source.parsed("FLEXIAPI_OPAQUE_EXPIRATION_MINUTES", 60)?,
            blocking_time_period_check: source.parsed("BLOCKING_TIME_PERIOD_CHECK", 30)?,
            blocking_amount_events_authorized_during_period: source
                .parsed("BLOCKING_AMOUNT_EVENTS_AUTHORIZED_DURING_PERIOD", 5)?,
            account_username_regex: username_regex,
            account_blacklisted_usernames: source
                .get("ACCOUNT_BLACKLISTED_USERNAMES")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            allow_phone_number_username_admin_api: source
                .boolean("APP_ALLOW_PHONE_NUMBER_USERNAME_ADMIN_API", false)?,
        };
        let ingest = IngestConfig {
            max_body_bytes: source.parsed("FLEXIAPI_INGEST_MAX_BODY_BYTES", 64 * 1024)?,
            batch_max: source.parsed("FLEXIAPI_INGEST_BATCH_MAX", 512)?,
            queue_depth: source.parsed("FLEXIAPI_INGEST_QUEUE_DEPTH", 8192)?,
            enqueue_timeout: Duration::from_millis(
                source.parsed("FLEXIAPI_INGEST_ENQUEUE_TIMEOUT_MS", 10_000)?,
            ),
            auth_cache_ttl: Duration::from_millis(
                source.parsed("FLEXIAPI_AUTH_CACHE_TTL_MS", 5_000)?,
            ),
            sync_gather: Duration::from_micros(
                source.parsed("FLEXIAPI_INGEST_SYNC_GATHER_US", 300)?,
            ),
        };
        if ingest.batch_max == 0 || ingest.queue_depth == 0 {
            return Err(ConfigError::Invalid {
                name: if ingest.batch_max == 0 {
                    "FLEXIAPI_INGEST_BATCH_MAX"
                } else {
                    "FLEXIAPI_INGEST_QUEUE_DEPTH"
                },
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        let scale = ScaleConfig {
            kafka_partitions: source.parsed("FLEXIAPI_KAFKA_PARTITIONS", 6)?,
            sink_batch_max: source.parsed("FLEXIAPI_SINK_BATCH_MAX", 50_000)?,
            sink_batch_time: Duration::from_millis(source.parsed("FLEXIAPI_SINK_BATCH_MS", 500)?),
            sink_fetch_wait: Duration::from_millis(
                source.parsed("FLEXIAPI_SINK_FETCH_WAIT_MS", 500)?,
            ),
            index_capacity: source.parsed("FLEXIAPI_INGEST_INDEX_CAPACITY", 200_000)?,
            index_window: Duration::from_secs(
                source.parsed::<u64>("FLEXIAPI_INGEST_INDEX_WINDOW_HOURS", 24)? * 3600,
            ),
        };
        if scale.sink_batch_max == 0 || scale.kafka_partitions < 1 {
            return Err(ConfigError::Invalid {
                name: if scale.sink_batch_max == 0 {
                    "FLEXIAPI_SINK_BATCH_MAX"
                } else {
                    "FLEXIAPI_KAFKA_PARTITIONS"
                },
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Config {
            listen: source.parsed("FLEXIAPI_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            database_url,
            database_max_connections: source.parsed("FLEXIAPI_DATABASE_MAX_CONNECTIONS", 16)?,
            kafka_brokers: source.string("FLEXIAPI_KAFKA_BROKERS"),
            kafka_topic: source
                .string("FLEXIAPI_KAFKA_TOPIC")
                .unwrap_or_else(|| "flexiapi-statistics".to_owned()),
            kafka_group: source
                .string("FLEXIAPI_KAFKA_GROUP")
                .unwrap_or_else(|| "flexiapi-sink".to_owned()),
            clickhouse_url: source.string("FLEXIAPI_CLICKHOUSE_URL"),
            clickhouse_database: source
                .string("FLEXIAPI_CLICKHOUSE_DATABASE")
                .unwrap_or_else(|| "flexiapi".to_owned()),
            clickhouse_user: source.string("FLEXIAPI_CLICKHOUSE_USER"),
            clickhouse_password: source.string("FLEXIAPI_CLICKHOUSE_PASSWORD"),
            jwt_public_key_path: source
                .string("FLEXIAPI_JWT_PUBLIC_KEY_PATH")
                .map(PathBuf::from),
            jwt_sip_identifier: source
                .string("JWT_SIP_IDENTIFIER")
                .unwrap_or_else(|| "sip_identity".to_owned()),
            account_authentication_bearer: source.string("ACCOUNT_AUTHENTICATION_BEARER"),
            tls_cert,
            tls_key,
            root_host: source
                .string("APP_ROOT_HOST")
                .map(|h| h.to_ascii_lowercase()),
            limits,
            mail: MailConfig {
                host: source.string("MAIL_HOST"),
                port: source.parsed("MAIL_PORT", 25)?,
                username: source.string("MAIL_USERNAME"),
                password: source.string("MAIL_PASSWORD"),
                from_address: source.string("MAIL_FROM_ADDRESS"),
                from_name: source.string("MAIL_FROM_NAME"),
            },
            sms_url: source.string("FLEXIAPI_SMS_URL"),
            redis_url: source.string("FLEXIAPI_REDIS_URL"),
            flexisip_pusher_path: source.string("APP_FLEXISIP_PUSHER_PATH").map(PathBuf::from),
            flexisip_pusher_firebase_keysmap: source.string("APP_FLEXISIP_PUSHER_FIREBASE_KEYSMAP"),
            linphone_daemon_unix_path: source
                .string("APP_LINPHONE_DAEMON_UNIX_PATH")
                .map(PathBuf::from),
            coturn: CoturnConfig {
                server_host: source.string("COTURN_SERVER_HOST"),
                static_auth_secret: source.string("COTURN_STATIC_AUTH_SECRET"),
                session_ttl_minutes: source.parsed("COTURN_SESSION_TTL_MINUTES", 1440)?,
            },
            session_secure_cookie: source.optional_boolean("SESSION_SECURE_COOKIE")?,
            auth_failure_limit_per_minute: source
                .parsed("FLEXIAPI_AUTH_FAILURE_LIMIT_PER_MINUTE", 120)?,
            ingest,
            scale,
        })
    }

    /// True when the statistics log is Kafka (scale mode) rather than the embedded store.
    pub fn scale_mode(&self) -> bool {
        self.kafka_brokers.is_some()
    }
}

impl Default for Config {
    /// Embedded defaults: what `flexiapi serve` runs with when nothing is set.
    fn default() -> Self {
        Config::from_source(&Source::default()).expect("the defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_names_are_the_misspelt_ones() {
        let source = Source::from_pairs([
            ("FLEXIAPI_LISTEN", "127.0.0.1:9000"),
            ("FLEXIAPI_KAFKA_TOPIC", "t"),
            ("FLEXIAPI_SINK_FETCH_WAIT", "100"), // _MS missing
            ("FLEXIAPI_LISTENN", "127.0.0.1:9001"),
            ("FLEXIAPI_CONFIG", "/etc/flexiapi.env"),
            ("FLEXIAPI_TEST_POSTGRES_URL", "postgres://x"),
            ("PATH", "/usr/bin"),
        ]);
        let config = Config::from_source(&source).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(
            source.unread(),
            ["FLEXIAPI_LISTENN", "FLEXIAPI_SINK_FETCH_WAIT"]
        );
        // Before anything read it, every FLEXIAPI_* setting is unread.
        let fresh = Source::from_pairs([("FLEXIAPI_LISTEN", "127.0.0.1:9000")]);
        assert_eq!(fresh.unread(), ["FLEXIAPI_LISTEN"]);
    }

    #[test]
    fn defaults_are_upstreams() {
        let config = Config::default();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url, "sqlite://./data/flexiapi.db");
        assert_eq!(config.limits.api_key_expiration_minutes, 60);
        assert_eq!(config.limits.email_change_code_expiration_minutes, 10);
        assert_eq!(config.ingest.sync_gather, Duration::from_micros(300));
        assert_eq!(
            config.limits.reset_password_email_token_expiration_minutes,
            1440
        );
        assert_eq!(
            config
                .limits
                .blocking_amount_events_authorized_during_period,
            5
        );
        assert_eq!(config.limits.account_recovery_token_retry_minutes, None);
        assert_eq!(config.coturn.session_ttl_minutes, 1440);
        assert!(!config.scale_mode());
    }

    #[test]
    fn bad_value_names_the_setting() {
        let source = Source::from_pairs([("APP_API_KEY_EXPIRATION_MINUTES", "soon")]);
        let error = Config::from_source(&source).unwrap_err().to_string();
        assert!(error.contains("APP_API_KEY_EXPIRATION_MINUTES"), "{error}");
        let source = Source::from_pairs([("FLEXIAPI_LISTEN", "nowhere")]);
        assert!(Config::from_source(&source)
            .unwrap_err()
            .to_string()
            .contains("FLEXIAPI_LISTEN"));
        let source = Source::from_pairs([("FLEXIAPI_DATABASE_URL", "mysql://x")]);
        assert!(Config::from_source(&source)
            .unwrap_err()
            .to_string()
            .contains("FLEXIAPI_DATABASE_URL"));
        let source = Source::from_pairs([("FLEXIAPI_TLS_CERT", "/tmp/c.pem")]);
        assert!(Config::from_source(&source)
            .unwrap_err()
            .to_string()
            .contains("FLEXIAPI_TLS_KEY"));
        let source = Source::from_pairs([("SESSION_SECURE_COOKIE", "maybe")]);
        assert!(Config::from_source(&source)
            .unwrap_err()
            .to_string()
            .contains("SESSION_SECURE_COOKIE"));
    }

    #[test]
    fn sink_fetch_wait_defaults_to_500_ms_and_is_read_in_milliseconds() {
        assert_eq!(
            Config::default().scale.sink_fetch_wait,
            Duration::from_millis(500)
        );
        let source = Source::from_pairs([("FLEXIAPI_SINK_FETCH_WAIT_MS", "100")]);
        let config = Config::from_source(&source).unwrap();
        assert_eq!(config.scale.sink_fetch_wait, Duration::from_millis(100));
        let source = Source::from_pairs([("FLEXIAPI_SINK_FETCH_WAIT_MS", "0.5s")]);
        let error = Config::from_source(&source).unwrap_err().to_string();
        assert!(error.contains("FLEXIAPI_SINK_FETCH_WAIT_MS"), "{error}");
    }

    #[test]
    fn sync_gather_is_read_in_microseconds_and_may_be_zero() {
        let source = Source::from_pairs([("FLEXIAPI_INGEST_SYNC_GATHER_US", "0")]);
        let config = Config::from_source(&source).unwrap();
        assert!(config.ingest.sync_gather.is_zero());
        let source = Source::from_pairs([("FLEXIAPI_INGEST_SYNC_GATHER_US", "1500")]);
        let config = Config::from_source(&source).unwrap();
        assert_eq!(config.ingest.sync_gather, Duration::from_micros(1500));
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "# comment\nFLEXIAPI_LISTEN=127.0.0.1:9999\nexport APP_ROOT_HOST=\"Example.ORG\"\nBLOCKING_TIME_PERIOD_CHECK=7\n",
        )
        .unwrap();
        let mut source = Source::default();
        source.merge_file(&path).unwrap();
        source
            .values
            .insert("BLOCKING_TIME_PERIOD_CHECK".into(), "9".into());
        let config = Config::from_source(&source).unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.root_host.as_deref(), Some("example.org"));
        assert_eq!(config.limits.blocking_time_period_check, 9);

        std::fs::write(&path, "NOT A PAIR\n").unwrap();
        let error = Source::default().merge_file(&path).unwrap_err().to_string();
        assert!(error.contains(":1:"), "{error}");
    }
}
