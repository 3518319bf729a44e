//! Administration commands: migrations, spaces, the first admin account.

use anyhow::{bail, Context};
use flexiapi_core::model::space::realm_for_domain;
use flexiapi_core::model::{Account, Algorithm, Space};
use flexiapi_core::{with_db, Config, Db};

/// Opens the configured database and applies pending migrations.
pub async fn open(config: &Config) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url, config.database_max_connections)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&config.database_url)))?;
    db.migrate().await.context("cannot apply migrations")?;
    Ok(db)
}

/// `flexiapi migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = open(config).await?;
    db.close().await;
    if config.clickhouse_url.is_some() {
        flexiapi_ingest::clickhouse::migrate(config)
            .await
            .context("cannot apply the ClickHouse schema")?;
        eprintln!("ClickHouse schema applied");
    }
    eprintln!("migrations applied");
    Ok(())
}

/// `flexiapi spaces create-update <sip_domain> <host> <name> [--super]`.
pub async fn create_update_space(
    config: &Config,
    domain: &str,
    host: &str,
    name: &str,
    is_super: bool,
) -> anyhow::Result<()> {
    for (what, value) in [("sip_domain", domain), ("host", host), ("name", name)] {
        if value.trim().is_empty() {
            bail!("{what} must not be empty");
        }
    }
    let db = open(config).await?;
    let host = host.to_ascii_lowercase();
    if let Some(other) = Space::find_by_host(&db, &host).await? {
        if other.domain != domain {
            bail!(
                "the host {host} already belongs to the space {}",
                other.domain
            );
        }
    }
    let space = Space::create_or_update(&db, domain, &host, name, is_super)
        .await
        .map_err(|e| match flexiapi_core::db::is_unique_violation(&e) {
            true => anyhow::anyhow!("a space named {name:?} already exists"),
            false => anyhow::Error::new(e),
        })?;
    println!(
        "{}",
        serde_json::json!({"domain": space.domain, "host": space.host, "name": space.name, "super": space.is_super})
    );
    db.close().await;
    Ok(())
}

/// `flexiapi accounts create-admin --username U --password P --domain D [--api-key-ip IP]`.
pub async fn create_admin(
    config: &Config,
    username: &str,
    password: &str,
    domain: &str,
    api_key_ip: Option<&str>,
) -> anyhow::Result<()> {
    if username.trim().is_empty() || password.is_empty() {
        bail!("--username and --password must not be empty");
    }
    let db = open(config).await?;
    let Some(space) = Space::find_by_domain(&db, domain).await? else {
        bail!("no space has the SIP domain {domain:?}: create it first with `flexiapi spaces create-update`");
    };
    if let Some(ip) = api_key_ip {
        ip.parse::<std::net::IpAddr>()
            .with_context(|| format!("--api-key-ip {ip:?} is not an IP address"))?;
    }
    let now = flexiapi_core::time::now();
    let account = match Account::find_by_identity(&db, username, domain).await? {
        Some(account) => {
            with_db!(&db, pool => sqlx::query(
                "UPDATE accounts SET admin = TRUE, activated = TRUE, blocked = FALSE, updated_at = $2 WHERE id = $1")
                .bind(account.id).bind(now).execute(pool).await.map(|_| ()))?;
            account
        }
        None => {
            let id: i64 = with_db!(&db, pool => sqlx::query_scalar(
                "INSERT INTO accounts (username, domain, activated, admin, ip_address, user_agent, created_at, updated_at) \
                 VALUES ($1, $2, TRUE, TRUE, '127.0.0.1', $3, $4, $4) RETURNING id")
                .bind(username).bind(domain).bind(&space.name).bind(now)
                .fetch_one(pool).await)?;
            Account::find(&db, id).await?.context("account vanished")?
        }
    };
    let algorithm = space
        .digest_configuration(&db)
        .await?
        .and_then(|c| Algorithm::parse(&c.default_password_algorithm))
        .unwrap_or(Algorithm::Sha256);
    let realm = realm_for_domain(&db, domain).await?;
    account
        .set_password(&db, password, algorithm, &realm)
        .await?;
    let api_key = flexiapi_auth::api_key::create_stable_key(&db, account.id, api_key_ip).await?;
    println!(
        "{}",
        serde_json::json!({"id": account.id, "username": username, "domain": domain, "api_key": api_key})
    );
    db.close().await;
    Ok(())
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(
            super::redact("sqlite://./data/x.db"),
            "sqlite://./data/x.db"
        );
    }
}
