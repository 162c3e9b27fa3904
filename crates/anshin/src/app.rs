//! The application: the store, the keyring and the services over them.
//!
//! Each area module (`tenancy`, `access`, `vault`, `orders`, `audit`) adds its operations
//! to [`App`] in its own `impl` block; the HTTP handlers and the CLI call them.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anshin_crypto::secret::SecretString;

use crate::access::Role;
use crate::access::lockout::Lockouts;
use crate::access::principals::{AuthCache, NewPrincipal};
use crate::access::proxies::TrustedProxies;
use crate::access::retention::ExportLimiter;
use crate::audit::log::AuditLog;
use crate::audit::{Event, EventKind};
use crate::db::Store;
use crate::error::{Error, ErrorKind, Result};
use crate::vault::keys::{Keyring, StagedChange};
use crate::vault::root::{self, NewRoot, RootKey};

pub use crate::vault::root::ROOT_KEY_FILE;

/// The running application.
pub struct App {
    /// The store.
    pub store: Store,
    /// The root key and tenant keys.
    pub keyring: Keyring,
    /// The audit log.
    pub audit: AuditLog,
    pub(crate) auth: AuthCache,
    pub(crate) exports: ExportLimiter,
    pub(crate) lockouts: Lockouts,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub(crate) proxies: TrustedProxies,
    /// Tenants whose data keys a rewrap pass found all on the current version.
    pub(crate) rewrapped: crate::vault::rotation::RewrapState,
    /// Checkout sessions' settings, rate limits and held security codes.
    pub(crate) checkout: crate::proxy::CheckoutState,
    /// Whether alerts raised outside the audit monitor (the page monitor) are
    /// queued for the webhook: set by the alert service, which knows.
    pub(crate) alerts_queued: std::sync::atomic::AtomicBool,
    /// The checkout-page monitor's rate limits and browser settings.
    pub pages: crate::integrity::PageMonitor,
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub struct Location {
    /// The data directory: root key file and, by default, the SQLite database.
    pub data_dir: PathBuf,
    /// The database URL; `None` means SQLite in the data directory.
    pub database_url: Option<String>,
}

impl Location {
    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("anshin.db").display()))
    }

    /// True if the data directory holds a root of trust (of any kind).
    pub fn is_initialised(&self) -> bool {
        root::exists(&self.data_dir)
    }
}

impl App {
    /// Opens an initialised data directory whose root key needs no custodian
    /// (a key file or a PKCS#11 token); a vault split into shares answers 503
    /// `sealed` until it is unsealed (see [`App::open_with_root`]).
    pub async fn open(location: &Location) -> Result<Self> {
        Self::open_with_root(location, root::load(&location.data_dir)?).await
    }

    /// Opens an initialised data directory with its root key at hand.
    pub async fn open_with_root(location: &Location, root: RootKey) -> Result<Self> {
        Self::open_checked(location, root, StagedChange::Refuse)
            .await
            .map_err(|(err, _)| err)
    }

    /// Opens a data directory for `anshin keys change-root`, which may find a
    /// change of the root of trust staged by an earlier run.
    pub async fn open_for_root_change(location: &Location, root: RootKey) -> Result<Self> {
        Self::open_checked(location, root, StagedChange::Allow)
            .await
            .map_err(|(err, _)| err)
    }

    /// Opens with `root`, giving it back on failure (so a key just made in
    /// a token can be destroyed).
    async fn open_checked(
        location: &Location,
        root: RootKey,
        staged: StagedChange,
    ) -> std::result::Result<Self, (Error, RootKey)> {
        let store = match Store::open(&location.database_url()).await {
            Ok(store) => store,
            Err(err) => return Err((err.into(), root)),
        };
        let keyring = Keyring::new(root);
        let opened = async {
            let finished = keyring.verify(&store, staged).await?;
            let signing_seed = keyring
                .installation_key(&store, AuditLog::signing_key_name())
                .await?;
            let audit = AuditLog::open(&store, &signing_seed).await?;
            Ok::<_, Error>((finished, audit))
        }
        .await;
        let (finished, audit) = match opened {
            Ok(opened) => opened,
            Err(err) => return Err((err, keyring.into_root())),
        };
        let app = Self {
            store,
            keyring,
            audit,
            auth: AuthCache::default(),
            exports: ExportLimiter::default(),
            lockouts: Lockouts::default(),
            proxies: TrustedProxies::default(),
            rewrapped: Default::default(),
            checkout: Default::default(),
            alerts_queued: Default::default(),
            pages: Default::default(),
        };
        if let Some(request) = finished {
            // A change of the root of trust stopped after its new root was in
            // force; opening with that root has just finished it.
            let mut event = Event::new(EventKind::RootChange);
            event.resource(&request);
            if let Err(err) = app.record(None, None, &event, None).await {
                return Err((err, app.keyring.into_root()));
            }
        }
        Ok(app)
    }

    /// Believes `X-Forwarded-For` from these reverse proxies (see
    /// [`TrustedProxies`]); by default from none.
    pub fn trust_proxies(&mut self, proxies: TrustedProxies) {
        self.proxies = proxies;
    }

    /// Initialises a data directory: creates it (owner-only), a root key file, the
    /// database, and a global operator whose API key is returned, to be shown once.
    pub async fn init(location: &Location) -> Result<(Self, SecretString)> {
        let (app, key, _) = Self::init_with(location, NewRoot::KeyFile).await?;
        Ok((app, key))
    }

    /// [`App::init`] with a root of trust of any kind; also returns the
    /// custodians' shares (shares kind), to be shown once.
    pub async fn init_with(
        location: &Location,
        new_root: NewRoot,
    ) -> Result<(Self, SecretString, Vec<SecretString>)> {
        if location.is_initialised() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "already_initialised",
                format!(
                    "{} is already initialised; use it with `anshin serve --data-dir {}`",
                    location.data_dir.display(),
                    location.data_dir.display()
                ),
            ));
        }
        let created = create_private_dir(&location.data_dir)?;
        let (app, shares) = Self::provision_and_open(location, new_root)
            .await
            .inspect_err(|e| {
                // A second node on a shared database keeps its directory:
                // the error tells the operator to copy the root key into it.
                if e.code() != "already_initialised" {
                    remove_empty_dirs(&created);
                }
            })?;
        let (_, key) = app
            .create_principal(
                None,
                NewPrincipal {
                    name: "bootstrap operator".into(),
                    role: Role::Operator,
                    tenant_id: None,
                    shop_id: None,
                    allowed_ips: None,
                },
            )
            .await?;
        Ok((app, key, shares))
    }

    /// Makes the new root in the data directory and opens the database with
    /// it; on failure no root is left behind.
    async fn provision_and_open(location: &Location, new_root: NewRoot) -> Result<(Self, Vec<SecretString>)> {
        let provisioned = new_root.provision(&location.data_dir)?;
        match Self::open_checked(location, provisioned.root, StagedChange::Refuse).await {
            Ok(app) => Ok((app, provisioned.shares)),
            Err((err, root)) => {
                // Leave no root key behind that does not belong to the database.
                root::remove(&location.data_dir, root);
                Err(if err.code() == "root_key_mismatch" {
                    Error::new(
                        ErrorKind::Conflict,
                        "already_initialised",
                        "this database was initialised with another root key: copy that root.key (mode 0600) \
                         into the data directory instead of running init",
                    )
                } else {
                    err
                })
            }
        }
    }
}

/// Creates the data directory `path` (owner-only) and its missing parents,
/// one level at a time, and returns the directories this call made,
/// outermost first: a failed `init` removes those and nothing that was
/// there before it (nor a level another process made meanwhile).
fn create_private_dir(path: &Path) -> Result<Vec<PathBuf>> {
    let unwritable = |e: std::io::Error| {
        Error::new(
            ErrorKind::Internal,
            "data_dir_unwritable",
            format!("cannot create the data directory {}", path.display()),
        )
        .with_cause(e)
    };
    let missing: Vec<&Path> = path
        .ancestors()
        .take_while(|dir| !dir.as_os_str().is_empty() && fs::symlink_metadata(dir).is_err())
        .collect();
    let mut created = Vec::new();
    for dir in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => created.push(dir.to_path_buf()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(unwritable(e)),
        }
    }
    if !path.is_dir() {
        return Err(unwritable(std::io::ErrorKind::NotADirectory.into()));
    }
    Ok(created)
}

/// Removes the directories a failed `init` made, innermost first. Only
/// empty ones go (the root key is already removed): a file this run cannot
/// account for keeps its directory.
fn remove_empty_dirs(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        if fs::remove_dir(dir).is_err() {
            return;
        }
    }
}
