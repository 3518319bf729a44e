//! The data layer: one pool that is either embedded SQLite (default, WAL) or PostgreSQL.
//!
//! Queries are written once in portable SQL with `$1` placeholders (both drivers accept them) and run
//! through [`with_db!`], which expands the same code for each engine so that row types stay concrete.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// A connection pool on one of the two supported engines.
#[derive(Clone, Debug)]
pub enum Db {
    /// Embedded SQLite (the default, no external service).
    Sqlite(SqlitePool),
    /// PostgreSQL (production).
    Postgres(PgPool),
}

/// Runs the same code against whichever pool `$db` holds: `with_db!(db, pool => query.fetch_one(pool).await)`.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../schema/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../schema/postgres");

impl Db {
    /// Opens a pool for `sqlite://path` (file created if missing) or `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db, sqlx::Error> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: an acknowledged statistics event survives a power cut, not only a crash;
                // the ingest group commit amortises the fsync.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            if let Some(parent) = options.get_filename().parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
                }
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .connect_with(options)
                .await?;
            Ok(Db::Sqlite(pool))
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Db::Postgres(pool))
        }
    }

    /// Applies the pending migrations of `schema/sqlite` or `schema/postgres`.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Db::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
    }

    /// True on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Closes every connection (flushes the SQLite WAL on the last one).
    pub async fn close(&self) {
        with_db!(self, pool => pool.close().await)
    }
}

/// How each engine opens a transaction that will write.
pub trait WriteTransaction: sqlx::Database {
    /// The opening statement.
    const BEGIN: &'static str;
}

impl WriteTransaction for sqlx::Sqlite {
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
}

impl WriteTransaction for sqlx::Postgres {
    const BEGIN: &'static str = "BEGIN";
}

/// Opens a transaction that will write. On SQLite it takes the write lock up front: a deferred transaction
/// that reads, then writes after another connection committed, fails at once with SQLITE_BUSY instead of
/// waiting out the busy timeout.
pub async fn begin_write<DB: WriteTransaction>(
    pool: &sqlx::Pool<DB>,
) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
    pool.begin_with(DB::BEGIN).await
}

/// True when `error` is a unique-constraint violation.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// True when the error is a foreign-key violation (unknown parent row).
pub fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_foreign_key_violation())
}
