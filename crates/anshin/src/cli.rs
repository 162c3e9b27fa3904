//! The command line, as clap parses it. `main.rs` hands the result to [`crate::cmd`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::access::Role;

/// anshin — keeps card numbers and personal data out of shops' hands.
#[derive(Debug, Parser)]
#[command(
    name = "anshin",
    version,
    about = "Card and personal-data vault: shops get tokens and masked views, every access is controlled.",
    after_help = "Examples:
  anshin serve --demo                 start with a demo marketplace on the embedded SQLite store
  anshin init --data-dir /var/lib/anshin
  anshin serve --data-dir /var/lib/anshin --listen 0.0.0.0:8080
  ANSHIN_DATABASE_URL=postgres://anshin@db/anshin anshin serve

Exit codes:
  0  success
  1  failure (the message says what to do)
  2  usage error
  3  the data directory is not initialised, or already is
  4  the database is unreachable
  5  `anshin audit verify`: the log does not verify"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Data directory: root key and, by default, the SQLite database [default: ./anshin-data]
    #[arg(long, global = true, env = "ANSHIN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML) [default: DIR/anshin.toml if it exists]
    #[arg(long, global = true, env = "ANSHIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: postgres://… for PostgreSQL; SQLite in the data directory if unset
    #[arg(
        long,
        global = true,
        env = "ANSHIN_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Log filter, for example `info` or `anshin=debug` [default: info]
    #[arg(long, global = true, env = "ANSHIN_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: root key, database, and a bootstrap operator key (printed once).
    #[command(after_help = "Examples:
  anshin init --data-dir ./anshin-data
  anshin init --data-dir ./anshin-data --json     # {\"operator_api_key\": \"…\"}")]
    Init {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the HTTP API (initialises an empty data directory first).
    #[command(after_help = "Examples:
  anshin serve --demo
  anshin serve --data-dir /var/lib/anshin --listen 0.0.0.0:8080")]
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080]
        #[arg(long, env = "ANSHIN_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
        /// Load the demo marketplace and print keys and curl commands to try.
        #[arg(long)]
        demo: bool,
    },
    /// Manage API principals directly on the data directory.
    #[command(subcommand)]
    Principal(PrincipalCommand),
    /// The audit log: verifier key, export as tlog tiles, offline verification.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Load the demo marketplace (3 shops, 1,000 customers, 5,000 orders) and print keys and curl commands.
    #[command(after_help = "Example:
  anshin demo --data-dir ./anshin-data && anshin serve --data-dir ./anshin-data")]
    Demo {
        /// Print the keys as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark a fresh server over HTTP; prints one JSON line per scenario.
    #[command(after_help = "Examples:
  anshin bench
  anshin bench --clients 64 --seconds 10 --backend sqlite
  anshin bench --backend postgres --postgres-url postgres://postgres@127.0.0.1:5432/test")]
    Bench(BenchArgs),
    /// Show the configuration in force (passwords redacted).
    #[command(after_help = "Example:\n  anshin config --json")]
    Config {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions.
    #[command(after_help = "Example:\n  anshin completions bash > /etc/bash_completion.d/anshin")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `anshin principal …`
#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Create a principal and print its API key (shown once).
    #[command(after_help = "Examples:
  anshin principal create --name ops --role operator
  anshin principal create --name shop-1 --role shop --shop shop_… --json
  anshin principal create --name shop-1 --role shop --shop shop_… --allowed-ip 192.0.2.0/24 --allowed-ip 2001:db8::/48")]
    Create {
        /// Who or what uses the key.
        #[arg(long)]
        name: String,
        /// operator, shop, processor or auditor.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Tenant (omit for a global principal).
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
        /// Shop, for role shop.
        #[arg(long, value_name = "SHOP_ID")]
        shop: Option<String>,
        /// Only allow the key from this address or CIDR block (repeatable) [default: any address]
        #[arg(long = "allowed-ip", value_name = "CIDR")]
        allowed_ips: Vec<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List principals.
    #[command(after_help = "Example:\n  anshin principal list --json")]
    List {
        /// Only this tenant's.
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a principal: its key stops working.
    #[command(after_help = "Example:\n  anshin principal disable prn_…")]
    Disable {
        /// The principal id.
        id: String,
    },
    /// Issue a new API key (shown once); the current keys keep working for the overlap.
    #[command(after_help = "Examples:
  anshin principal rotate prn_…                     # old key works 24 hours more (or the tenant's overlap)
  anshin principal rotate prn_… --overlap-hours 0   # old key stops now (a leaked key)
  anshin principal rotate prn_… --json              # {\"id\", \"api_key\", \"expires_at\", \"previous_key_expires_at\"}")]
    Rotate {
        /// The principal id.
        id: String,
        /// Hours the current keys keep working, 0 to 168 [default: the tenant's overlap, 24]
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        overlap_hours: Option<i64>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `anshin audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the log's verifier key in signed-note form (`name+keyid+key`).
    #[command(after_help = "Example:\n  anshin audit public-key --data-dir /var/lib/anshin > audit.vkey")]
    PublicKey {
        /// Print as JSON ({\"origin\", \"public_key\"}).
        #[arg(long)]
        json: bool,
    },
    /// Write the log as C2SP tlog tiles with its latest signed checkpoint.
    #[command(after_help = "Example:\n  anshin audit export --out /backup/audit-2026-12-04")]
    Export {
        /// Directory to write (created; must be empty if it exists).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Print a JSON summary.
        #[arg(long)]
        json: bool,
    },
    /// Verify an exported log offline: signature, every entry against the root,
    /// consistency with an earlier checkpoint. Needs no server or database.
    #[command(after_help = "Examples:
  anshin audit verify /backup/audit --public-key \"$(cat audit.vkey)\"
  anshin audit verify /backup/audit --public-key \"$(cat audit.vkey)\" --since old-checkpoint --json

Exit codes: 0 the log verifies; 5 it does not (the output names the first entry that does not match).")]
    Verify {
        /// The exported directory.
        dir: PathBuf,
        /// The verifier key (`anshin audit public-key`).
        #[arg(long, value_name = "KEY")]
        public_key: String,
        /// An earlier checkpoint file the log must extend.
        #[arg(long, value_name = "FILE")]
        since: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Which store a benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBackend {
    /// SQLite only.
    Sqlite,
    /// PostgreSQL only.
    Postgres,
    /// Both, SQLite first.
    All,
}

/// `anshin bench` options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Concurrent keep-alive clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds per scenario.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Which store(s) to benchmark.
    #[arg(long, value_enum, default_value_t = BenchBackend::All)]
    pub backend: BenchBackend,
    /// PostgreSQL server to use (a fresh schema is created and dropped).
    #[arg(
        long,
        env = "ANSHIN_BENCH_POSTGRES_URL",
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres_url: String,
    /// Entries in the offline-verification scenario (SQLite); 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    pub audit_entries: u64,
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value).ok_or_else(|| "expected operator, shop, processor or auditor".to_owned())
}
