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
  2  usage error, or a database URL that cannot be used (the message says what to change)
  3  the data directory is not initialised, or already is
  4  the database is unreachable
  5  `anshin audit verify`: the log does not verify
  6  `anshin scan --fail-on`: findings in a gated category;
     `anshin integrity`: alerts at or above --fail-on
  7  `anshin integrity`: the baseline's signature does not verify
  8  `anshin restore --verify`: records of the backup do not decrypt"
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
    /// Database URL: postgres://…[?sslmode=…&sslrootcert=…] for PostgreSQL (verify-full unless on this machine); SQLite in the data directory if unset
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
// Parsed once per process: boxing the large scan arguments would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: root key, database, and a bootstrap operator key (printed once).
    #[command(after_help = "Examples:
  anshin init --data-dir ./anshin-data
  anshin init --data-dir ./anshin-data --json     # {\"operator_api_key\": \"…\"}
  anshin init --shares 5 --threshold 3 --json     # {\"operator_api_key\": \"…\", \"shares\": [\"anshin-share:…\", …]}
  anshin init --shares 3 --threshold 2 --passphrases custodians.txt
  ANSHIN_PKCS11_PIN=… anshin init --pkcs11        # module, token and key label from the configuration

Root of trust: by default a key file (DIR/root.key, mode 0600). With --shares the root key
is split into N Shamir shares, any K of which rebuild it; no key file is written, each share
is printed once (hand one to each custodian), and `anshin serve` starts sealed until K
shares are entered with `anshin unseal`. --passphrases FILE seals share i under line i of
FILE (Argon2id; an empty line leaves that share unsealed); --prompt-passphrases asks each
custodian at the terminal instead. With --pkcs11 the root key is created non-extractable
inside a PKCS#11 token (pkcs11_module, pkcs11_token_label, pkcs11_key_label in the
configuration; the PIN in ANSHIN_PKCS11_PIN or a file named by ANSHIN_PKCS11_PIN_FILE).")]
    Init {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArgs,
    },
    /// Enter one custodian's share into a sealed server (read without echo, or from standard input).
    #[command(after_help = "Examples:
  anshin unseal --server http://127.0.0.1:8080
  printf '%s\\n%s\\n' \"$SHARE\" \"$PASSPHRASE\" | anshin unseal --json   # {\"sealed\": true, \"progress\": 1, \"threshold\": 3}

Exit codes: 0 the share was taken (sealed or not, as printed); 1 it was refused (the message
names the reason: typo, another vault's share, already entered, wrong passphrase, shares that
do not rebuild the key); 2 usage error.")]
    Unseal {
        /// The server [default: http://LISTEN of the configuration]
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Print the seal status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Seal a running server: it drops its keys and answers 503 until unsealed again.
    #[command(after_help = "Example:
  ANSHIN_API_KEY=… anshin seal --server http://127.0.0.1:8080

Needs a global operator's API key in ANSHIN_API_KEY. Only a vault whose root key is split
into shares can be sealed.")]
    Seal {
        /// The server [default: http://LISTEN of the configuration]
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Print the seal status as JSON.
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
    /// Key-encryption keys: status, rotation and retirement under dual control, rewrap.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Copy an SQLite store (vault, then audit log) into a new directory while it keeps serving.
    #[command(after_help = "Examples:
  anshin backup --data-dir /var/lib/anshin --out /backup/anshin-2026-12-05
  anshin backup --out /backup/today --json     # {\"dir\": …, \"files\": [{\"name\": …, \"bytes\": …}]}

Each file is one consistent snapshot (SQLite online backup), the vault's taken before the
log's so that no audit entry falls between them. A data backup holds no key: neither the root
key nor the key state (KEK versions, each record's data key), so a card or customer deleted
after it stays unreadable in it forever (crypto-shredding). `--keys` backs up the key state
alone; keep it on other media and replace it often. `anshin restore --verify DIR` checks
that every record of a data backup decrypts with the current keys.
PostgreSQL stores are backed up with pg_dump instead (README).

Exit codes: 0 done; 1 failure (the message says what to do); 3 no data directory;
4 database unreachable.")]
    Backup {
        /// New directory to write the copies to (must not exist).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Copy the key state (KEK versions and data keys) instead of the data.
        #[arg(long)]
        keys: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that every record of a data backup decrypts with the current key state.
    #[command(after_help = "Examples:
  anshin restore --verify /backup/anshin-2026-12-05 --json
  createdb anshin_restored && psql -d anshin_restored -f data-2026-12-05.sql
  ANSHIN_DATABASE_URL=postgres://…/anshin anshin restore --verify postgres://…/anshin_restored

SOURCE is a directory written by `anshin backup`, or (PostgreSQL) the URL of a scratch database
into which a data dump (`pg_dump --exclude-table-data=record_keys --exclude-table-data=tenant_keys`)
was restored; it is only read.

Every live card, customer and shipping record in the backup is opened with the data key the
current key state holds for it. Records deleted after the backup have no key any more
(crypto-shredded) and are listed as key_destroyed; a record that fails to decrypt is listed
as does_not_decrypt.

Exit codes: 0 every record decrypts; 8 some do not (listed); 1 failure; 3 no data directory.")]
    Restore {
        /// Only verify (the one mode: restoring is copying the files back, see README).
        #[arg(long, required = true)]
        verify: bool,
        /// The backup: a directory (`anshin backup --out`) or a postgres:// URL.
        #[arg(value_name = "SOURCE")]
        source: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Try anshin: the demo marketplace, a card processor simulator and a demo shop whose checkout embeds anshin's card page.
    #[command(after_help = "Examples:
  anshin demo                              then open http://127.0.0.1:8081/ and pay with a test card
  anshin demo --listen 127.0.0.1:9080 --shop-listen 127.0.0.1:9081
  anshin demo --json                       load the demo, print its keys as JSON, exit (scripts)

It loads the demo marketplace (3 shops, 1,000 customers, 5,000 orders) once, mints
fresh keys (shown once; the previous run's are disabled), starts the processor
simulator (HTTPS with a test CA, in this process) as the demo tenant's processor,
serves anshin on --listen and the demo shop on --shop-listen (another origin), and
prints the shop's URL and curl commands. Ctrl-C stops all three.
Test cards: 4111 1111 1111 1111 (approved), 4000 0000 0000 3220 (3-D Secure
challenge, code 123456), 4000 0000 0000 0002 (declined); any future expiry.

Exit codes: 0 stopped by Ctrl-C or SIGTERM; 1 failure; 4 database unreachable.")]
    Demo {
        /// Load the demo, print its keys as JSON and exit (no servers).
        #[arg(long)]
        json: bool,
        /// Address anshin listens on [default: 127.0.0.1:8080]
        #[arg(long, env = "ANSHIN_LISTEN", value_name = "ADDR")]
        listen: Option<String>,
        /// Address the demo shop listens on (another origin than anshin's).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
        shop_listen: std::net::SocketAddr,
    },
    /// Benchmark a fresh server over HTTP; prints one JSON line per scenario.
    #[command(after_help = "Examples:
  anshin bench
  anshin bench --clients 64 --seconds 10 --backend sqlite
  anshin bench --payments-only --backend sqlite --clients 32
  anshin bench --backend postgres --postgres-url postgres://postgres@127.0.0.1:5432/test")]
    Bench(BenchArgs),
    /// Find card numbers and Japanese personal data in files, directories, archives, standard input and databases.
    #[command(after_help = "Examples:
  anshin scan ./exports                               summary per file, worst first
  anshin scan orders.zip backup.tar.gz --format jsonl > findings.jsonl
  anshin scan invoices/ --include '*.pdf' --format csv   page number in each row
  anshin scan . --include '*.csv' --exclude 'target/**' --format sarif -o scan.sarif
  anshin scan ./uploads --fail-on card,cvc            CI gate: exit 6 on a card number or CVC
  anshin scan /srv/shop --only card,cvc,expiry       card data only (PCI DSS scope), faster
  pg_dump shop | anshin scan - --format jsonl          table, row and column of each finding
  anshin scan backups/shop.dump                       a pg_dump -Fc archive, read as tables
  anshin scan backups/shop.dir backups/shop.tar       pg_dump -Fd and -Ft dumps, likewise
  anshin scan postgres://scanner@db/shop              every user table, all rows
  anshin scan postgres://scanner@db/shop --table public.customers --row-limit 10000
  anshin scan 'postgres://scanner@db/shop?sslmode=verify-full&sslrootcert=db-ca.pem'
  anshin scan sqlite://data/app.db --format jsonl     findings name table, column and row key
  anshin scan ./exports postgres://scanner@db/shop --inventory inventory.json
  ANSHIN_API_KEY=… anshin scan ./exports --inventory inv.json --server https://vault.example

Findings never hold a raw value: only a masked form (4111 11•• •••• 1111) and an
HMAC-SHA-256 fingerprint under the installation's key (DATA_DIR/scan-fingerprint.key,
created on first use). Archives (zip, tar) and compressed streams (gzip, bzip2, xz, zstd, lz4:
tar.gz, tar.zst, app.log.xz …) are opened recursively by their magic bytes within
the limits below; what hits a limit is reported partial or skipped with the reason,
and a file that takes longer than --file-timeout ends partial (time_limit).
Word (docx, odt) text, PowerPoint (pptx) slides and notes, and spreadsheet (xlsx, ods) cells
are read as such, with row and column, and a slide's findings with its slide number as page;
PDF text is read page by page (findings carry the page; encrypted PDFs are skipped), and
files attached to a PDF are scanned as files (invoice.pdf!orders.csv);
SQL dumps (.sql, pg_dump -Fc, -Fd and -Ft dumps, or pg_dump/mysqldump output on standard input) are read
as tables: each value's table, row and column name are in its finding, and column names are
context like CSV headers (lz4/zstd-compressed pg_dump archives are skipped: pipe
`pg_restore -f - FILE` into `anshin scan -`);
e-mail (.eml, .mbox) bodies and attachments are MIME-decoded and scanned as files.

Databases (postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…]; sqlite://PATH,
opened read-only) are read table by table in a read-only transaction, rows streamed:
text, JSON, XML, integer and numeric columns (bytea and blobs where they are UTF-8
text) are scanned with the column name as header, as a CSV column is. A finding's
path is DATABASE!schema.table, its header the column, its row the row's number in
primary-key order, its key the primary key (`id=42`; values that are personal data
masked). Reports and messages never show the password.

PostgreSQL TLS takes libpq's parameters: sslmode=disable|prefer|require|verify-ca|
verify-full, sslrootcert=CA.pem (or system), sslcert=/sslkey= for a client
certificate. Without sslmode a server on this machine gets prefer, any other
verify-full (its certificate checked against sslrootcert or the system's CAs, and
its name). 既定ではリモートのサーバーの証明書とホスト名を検証します。

--inventory FILE writes where personal data lives: one location per file, archive
member or table, split by column where findings have one (CSV header, table column),
with per-category counts of findings and of distinct records (rows; lines for text),
the time and the parameters of the scan, and what was not fully scanned. Run again
with the same FILE: locations new since, gone (their object fully scanned or no longer
there), unverified (their object not fully scanned this time) and changed counts are
printed and kept in the file's `changes`. A FILE that is not an inventory is never
overwritten. With --server URL the inventory is then POSTed to an anshin server
(URL/v1/inventory, key in ANSHIN_API_KEY: an operator key of the tenant), which keeps
every upload per tenant (GET /v1/inventory: the latest and the history).

Exit codes:
  0  the scan ran; no finding in a --fail-on category
  1  failure (unreadable key file, output not writable)
  2  usage error (unknown category, a --fail-on category --only leaves out, bad glob,
     bad database URL or sslmode, unknown --table, an --inventory FILE that is not
     an inventory)
  1  also: the inventory could not be sent to --server (the file is written)
  4  a path named does not exist (nothing is scanned), or the database cannot be
     reached or opened, or refuses the TLS the URL asks for
  6  findings in a --fail-on category (well-known test card numbers do not count)")]
    Scan(ScanArgs),
    /// Tamper detection on the shop's host: signed baselines, checks, watching, release comparison, skimmer signatures.
    #[command(subcommand)]
    Integrity(crate::cmd::integrity::IntegrityCommand),
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

/// What a new root of trust is (`anshin init`, `anshin keys change-root`):
/// a key file unless one of these says otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct RootArgs {
    /// Split the root key into N custodian shares (2–16).
    #[arg(long, value_name = "N", requires = "threshold", value_parser = clap::value_parser!(u8).range(2..=16))]
    pub shares: Option<u8>,
    /// Shares needed to unseal (2–N).
    #[arg(long, value_name = "K", requires = "shares", value_parser = clap::value_parser!(u8).range(2..=16))]
    pub threshold: Option<u8>,
    /// File with one passphrase per share, line i for share i (empty: none).
    #[arg(
        long,
        value_name = "FILE",
        requires = "shares",
        conflicts_with = "prompt_passphrases"
    )]
    pub passphrases: Option<PathBuf>,
    /// Ask each custodian for a passphrase at the terminal (empty: none).
    #[arg(long, requires = "shares")]
    pub prompt_passphrases: bool,
    /// Create the root key inside the configured PKCS#11 token.
    #[arg(long, conflicts_with = "shares")]
    pub pkcs11: bool,
}

/// `anshin keys …`
#[derive(Debug, Subcommand)]
#[command(
    after_help = "Rotations and retirements need two operators (dual control): one runs
`anshin keys rotate` or `retire` with their API key in ANSHIN_API_KEY, another approves
with theirs (`anshin keys approve ID`) within 24 hours. The same requests go through
POST /v1/keys/requests and /v1/keys/requests/{id}/approve.

Exit codes: 0 done; 1 failure (the message says what to do); 3 no data directory;
4 database unreachable."
)]
pub enum KeysCommand {
    /// KEK versions per tenant, the records each wraps, and what is left to re-wrap.
    #[command(after_help = "Examples:
  anshin keys status
  anshin keys status --tenant ten_… --json")]
    Status {
        /// Only this tenant.
        #[arg(long, value_name = "ID")]
        tenant: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask for a new KEK version for a tenant (another operator approves).
    #[command(after_help = "Example:
  ANSHIN_API_KEY=ak_… anshin keys rotate --tenant ten_… --reason \"annual cryptoperiod\"")]
    Rotate {
        /// The tenant (operators bound to a tenant act in their own).
        #[arg(long, value_name = "ID")]
        tenant: Option<String>,
        /// Why; kept with the request.
        #[arg(long)]
        reason: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask to destroy a tenant's KEK versions below N; refused while a record uses one.
    #[command(after_help = "Example:
  ANSHIN_API_KEY=ak_… anshin keys retire --tenant ten_… --below 3 --reason \"rotated in March\"")]
    Retire {
        /// The tenant (operators bound to a tenant act in their own).
        #[arg(long, value_name = "ID")]
        tenant: Option<String>,
        /// The lowest version kept.
        #[arg(long, value_name = "N")]
        below: u32,
        /// Why; kept with the request.
        #[arg(long)]
        reason: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask to destroy every key of a tenant (global operators; another approves):
    /// all its cards, customers and shipping data become unreadable for good,
    /// in the database and in every data backup, and its principals are disabled.
    #[command(
        name = "shred-tenant",
        after_help = "Example:
  ANSHIN_API_KEY=ak_… anshin keys shred-tenant --tenant ten_… --reason \"contract ended; APPI deletion\"
  ANSHIN_API_KEY=ak_(second operator) anshin keys approve kreq_…"
    )]
    ShredTenant {
        /// The tenant whose keys are destroyed.
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// Why; kept with the request.
        #[arg(long)]
        reason: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a key request made by another operator, and carry it out.
    #[command(after_help = "Example:
  ANSHIN_API_KEY=ak_… anshin keys approve kreq_…     then re-wraps with a progress bar")]
    Approve {
        /// The request's id.
        id: String,
        /// Do not re-wrap after an approved rotation (the server's job will).
        #[arg(long)]
        no_rewrap: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reject a key request made by another operator.
    Reject {
        /// The request's id.
        id: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Key requests, newest first.
    Requests {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-wrap every data key still on an older KEK version now, with a progress bar.
    #[command(after_help = "Example:\n  anshin keys rewrap --json     # {\"rewrapped\": N, \"seconds\": S}")]
    Rewrap {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace the root of trust: one global operator asks (with --reason and the new
    /// root's options), another approves, then `--request ID` carries it out offline.
    #[command(
        name = "change-root",
        after_help = "Examples:
  ANSHIN_API_KEY=ak_… anshin keys change-root --shares 5 --threshold 3 --reason \"custodian left\"
  ANSHIN_API_KEY=ak_(second operator) anshin keys approve kreq_…
  # stop every node, then, within a day of the approval:
  ANSHIN_API_KEY=ak_… anshin keys change-root --request kreq_… --shares 5 --threshold 3 --json
  ANSHIN_API_KEY=ak_… anshin keys change-root --cancel     # drop a change a crashed run left staged

The new root is given as to `anshin init`: a key file by default, --shares N --threshold K
(with --passphrases FILE or --prompt-passphrases), or --pkcs11 (a new key label in the token:
set pkcs11_key_label / ANSHIN_PKCS11_KEY_LABEL to a label not yet used). Carrying it out
re-wraps every tenant key and installation key under the new root (no record is decrypted),
prints the new shares (valid only once the command reports success), puts the new root in
force in one atomic step and destroys the old one (a PKCS#11 key is deleted from its token).
A vault whose current root is shares reads K current shares from standard input first
(share, then its passphrase or an empty line, per custodian).
ルート鍵（信頼の起点）の変更：一人が依頼し、別の運用者が承認し、全ノード停止中に実行します。"
    )]
    ChangeRoot {
        /// Carry out this approved request (without it, the command asks for the change).
        #[arg(long, value_name = "ID", conflicts_with_all = ["reason", "cancel"])]
        request: Option<String>,
        /// Why; kept with the request.
        #[arg(long, required_unless_present_any = ["request", "cancel"])]
        reason: Option<String>,
        /// Cancel a change staged by a run that stopped before the new root was in force.
        #[arg(long, conflicts_with_all = ["reason", "request"])]
        cancel: bool,
        #[command(flatten)]
        root: RootArgs,
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
    /// Run only the payment scenarios (authorizations through the proxy to an
    /// in-process processor simulator, and the simulator called directly).
    #[arg(long)]
    pub payments_only: bool,
}

/// `anshin scan`
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and directories to scan; `-` reads standard input; a database URL
    /// (postgres://…, sqlite://PATH) reads its tables.
    #[arg(required = true, value_name = "PATH|URL")]
    pub paths: Vec<String>,
    /// Database table to read (repeatable; PostgreSQL: schema.table, or a table
    /// on the search path) [default: every user table]
    #[arg(long, value_name = "NAME")]
    pub table: Vec<String>,
    /// Read at most N rows of each table (in primary-key order when it has
    /// one); a table cut short is reported partial.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub row_limit: Option<u64>,
    /// Output format: human, jsonl, csv or sarif.
    #[arg(long, default_value = "human", value_parser = ["human", "jsonl", "csv", "sarif"])]
    pub format: String,
    /// Same as --format jsonl.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with 6 when any of these categories is found: comma-separated names
    /// (card, cvc, expiry, email, phone, postal_code, my_number, corporate_number,
    /// passport, residence_card, bank_account, name, address) or `any`.
    #[arg(long, value_name = "CATEGORIES", value_delimiter = ',')]
    pub fail_on: Vec<String>,
    /// Look for these categories only (same names as --fail-on): `--only
    /// card,cvc,expiry` is a card-data (PCI DSS) scope scan, faster than a full
    /// one. Each value is still judged by every detector, so a card number is
    /// never reported as another category [default: every category]
    #[arg(long, value_name = "CATEGORIES", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Worker threads for the directory walk [default: the number of CPUs]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Only scan files matching this glob (repeatable; `*` also crosses `/`).
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out files and directories matching this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Report findings of at least this confidence: low, medium or high.
    #[arg(long, default_value = "medium", value_parser = ["low", "medium", "high"])]
    pub min_confidence: String,
    /// Leave out well-known public test card numbers (4111 1111 1111 1111 …).
    #[arg(long)]
    pub no_test_values: bool,
    /// Fingerprint key file (64 hex characters) [default: DATA_DIR/scan-fingerprint.key, created if missing]
    #[arg(long, env = "ANSHIN_SCAN_FINGERPRINT_KEY", value_name = "FILE")]
    pub fingerprint_key: Option<PathBuf>,
    /// Deepest archive nesting opened (a zip in a zip is 2).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_depth: u32,
    /// Largest expansion ratio of a compressed member before it is cut off.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_ratio: u64,
    /// Most bytes expanded from one input's archives, all members together.
    #[arg(long, default_value_t = 16 << 30, value_name = "BYTES")]
    pub max_expanded: u64,
    /// Most memory one input holds at once, all its archive levels together
    /// (decoder windows, nested zips, document parts and their text, listed
    /// findings); what does not fit is reported partial or skipped with the reason.
    /// Each scanning thread holds about this plus 10 MiB at most.
    #[arg(long, default_value_t = 72 << 20, value_name = "BYTES")]
    pub max_memory: u64,
    /// Longest time spent on one file (or standard input), its archive members and
    /// document parts included; past it the rest is reported partial (time_limit).
    /// 0 for no limit.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub file_timeout: u64,
    /// No progress bar (it is shown only when standard error is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Write the data inventory (JSON, format anshin-inventory/1: locations
    /// down to the column, categories, counts; no values) to FILE. When FILE
    /// already holds an inventory, what changed since is printed to standard
    /// error and recorded in its `changes`.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Also send the inventory to this anshin server (POST URL/v1/inventory),
    /// with the API key in the ANSHIN_API_KEY environment variable (an
    /// operator key of the tenant). Needs --inventory.
    #[arg(long, value_name = "URL", requires = "inventory")]
    pub server: Option<String>,
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value).ok_or_else(|| "expected operator, shop, processor or auditor".to_owned())
}
