//! ClickHouse in scale mode: the schema (`schema/clickhouse`, applied by [`migrate`]), the rows the sink
//! writes ([`rows`]) and the statistics reads ([`reader`]).
//!
//! Every statement here runs on ClickHouse 18.16 (Debian's) as well as on current releases: no query
//! parameters (values are bound client-side), no `async_insert` on servers that do not know it, no
//! DateTime64 / LowCardinality in the schema.

pub mod reader;
pub mod rows;

use clickhouse::Client;
use flexiapi_core::Config;

use crate::error::IngestError;

pub use reader::ClickHouseReader;

/// The ClickHouse migrations, in order: (version, file name, SQL).
pub const MIGRATIONS: &[(u32, &str, &str)] = &[(
    1,
    "0001_statistics.sql",
    include_str!("../../../schema/clickhouse/0001_statistics.sql"),
)];

/// A client for the configured server, without a database selected.
pub fn server_client(config: &Config) -> Result<Client, IngestError> {
    let url = config
        .clickhouse_url
        .as_deref()
        .ok_or_else(|| IngestError::Setup("FLEXIAPI_CLICKHOUSE_URL is not set".into()))?;
    // No LZ4: ClickHouse 18.16 answers `compress=1` queries in a framing the crate cannot read (every
    // SELECT came back empty); uncompressed RowBinary works on every release.
    let mut client = Client::default()
        .with_url(url)
        .with_compression(clickhouse::Compression::None);
    if let Some(user) = &config.clickhouse_user {
        client = client.with_user(user);
    }
    if let Some(password) = &config.clickhouse_password {
        client = client.with_password(password);
    }
    Ok(client)
}

/// A client on the configured statistics database.
pub fn client(config: &Config) -> Result<Client, IngestError> {
    Ok(server_client(config)?.with_database(&config.clickhouse_database))
}

/// Maps a ClickHouse error to the crate's error.
pub(crate) fn backend(error: clickhouse::error::Error) -> IngestError {
    IngestError::Backend(format!("clickhouse: {error}"))
}

/// Creates the database when missing and applies the migrations not yet applied (`flexiapi migrate`).
pub async fn migrate(config: &Config) -> Result<(), IngestError> {
    let database = &config.clickhouse_database;
    if database.is_empty()
        || !database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(IngestError::Setup(format!(
            "FLEXIAPI_CLICKHOUSE_DATABASE must be made of letters, digits and _ (got {database:?})"
        )));
    }
    server_client(config)?
        .query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .execute()
        .await
        .map_err(backend)?;
    let client = client(config)?;
    client
        .query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime) \
             ENGINE = MergeTree() ORDER BY version",
        )
        .execute()
        .await
        .map_err(backend)?;
    let applied: Vec<u32> = client
        .query("SELECT DISTINCT version FROM schema_migrations")
        .fetch_all()
        .await
        .map_err(backend)?;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        // Every statement is IF NOT EXISTS: a migration interrupted half-way is simply applied again.
        for statement in statements(sql) {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(|e| IngestError::Setup(format!("{name}: {e}")))?;
        }
        client
            .query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, now())")
            .bind(*version)
            .bind(*name)
            .execute()
            .await
            .map_err(backend)?;
        tracing::info!(migration = name, "ClickHouse migration applied");
    }
    Ok(())
}

/// The statements of a migration file: `--` comment lines dropped, split on `;`.
pub fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .map(|line| format!("{line}\n"))
        .collect();
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('?', "??"))
        .collect()
}

/// True when the server knows the `async_insert` setting (ClickHouse ≥ 21.11; 18.16 does not and would
/// refuse any query naming it, while it never buffers inserts anyway).
pub async fn knows_async_insert(client: &Client) -> Result<bool, IngestError> {
    let count: u64 = client
        .query("SELECT count() FROM system.settings WHERE name = 'async_insert'")
        .fetch_one()
        .await
        .map_err(backend)?;
    Ok(count > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn statements_skip_comments_and_split() {
        let list = super::statements(
            "-- a; comment\nCREATE TABLE a (x UInt8) ENGINE = Log;\n\n-- b\nSELECT 1;\n",
        );
        assert_eq!(
            list,
            vec!["CREATE TABLE a (x UInt8) ENGINE = Log", "SELECT 1"]
        );
    }
}
