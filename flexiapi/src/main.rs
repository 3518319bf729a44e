//! `flexiapi`: the one binary of flexiapi-rs.
//!
//! Subcommands (a public contract, called by operators' scripts and outside test suites):
//! `serve`, `migrate`, `spaces create-update`, `accounts create-admin`, `ingest`, `sink`.
//! Each is a thin shell over the library crates: [`serve`] composes the account API and the statistics
//! ingest behind one listener, [`admin`] holds the administration commands.

mod admin;
mod serve;
mod telemetry;

use clap::{Parser, Subcommand};
use flexiapi_core::config::Source;
use flexiapi_core::Config;

/// mimalloc: every request allocates many small, short-lived buffers (headers, bodies, JSON); glibc's malloc and
/// free were about a tenth of the CPU of a `GET /api/accounts/me` profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A FlexiAPI-compatible server for Flexisip.
#[derive(Parser, Debug)]
#[command(name = "flexiapi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the account API and the statistics ingest on FLEXIAPI_LISTEN (applies pending migrations first).
    Serve,
    /// Apply pending migrations (and the ClickHouse DDL when FLEXIAPI_CLICKHOUSE_URL is set).
    Migrate,
    /// Spaces (SIP domains).
    #[command(subcommand)]
    Spaces(SpacesCommand),
    /// Accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Serve only the statistics ingest, appending to Kafka (scale mode).
    Ingest,
    /// Consume the Kafka event log into ClickHouse (scale mode).
    Sink,
}

#[derive(Subcommand, Debug)]
enum SpacesCommand {
    /// Create a space, or update the one with this SIP domain.
    CreateUpdate {
        /// SIP domain of the space.
        sip_domain: String,
        /// HTTP host that resolves to the space.
        host: String,
        /// Display name (unique).
        name: String,
        /// Make it a super space (its admins administer every space).
        #[arg(long = "super")]
        is_super: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AccountsCommand {
    /// Create or replace an activated admin account with a stable API key; prints one JSON line.
    CreateAdmin {
        /// Username of the account.
        #[arg(long)]
        username: String,
        /// Clear-text password (stored as DIGEST hashes).
        #[arg(long)]
        password: String,
        /// SIP domain of an existing space.
        #[arg(long)]
        domain: String,
        /// Restrict the API key to this client IP (default: any IP).
        #[arg(long = "api-key-ip")]
        api_key_ip: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging();
    let loaded = Source::from_process().and_then(|source| {
        let config = Config::from_source(&source)?;
        Ok((config, source.unread()))
    });
    let config = match loaded {
        Ok((config, unread)) => {
            for name in unread {
                tracing::warn!(setting = %name, "no setting has this name: ignored (a typo?)");
            }
            config
        }
        Err(error) => {
            eprintln!("flexiapi: configuration error: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flexiapi: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve::serve(config).await,
        Command::Migrate => admin::migrate(&config).await,
        Command::Spaces(SpacesCommand::CreateUpdate {
            sip_domain,
            host,
            name,
            is_super,
        }) => admin::create_update_space(&config, &sip_domain, &host, &name, is_super).await,
        Command::Accounts(AccountsCommand::CreateAdmin {
            username,
            password,
            domain,
            api_key_ip,
        }) => {
            admin::create_admin(
                &config,
                &username,
                &password,
                &domain,
                api_key_ip.as_deref(),
            )
            .await
        }
        Command::Ingest => serve::ingest_only(config).await,
        Command::Sink => serve::sink(config).await,
    }
}
