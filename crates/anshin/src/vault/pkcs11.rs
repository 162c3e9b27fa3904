//! The root key inside a PKCS#11 token (an HSM, or SoftHSM2 in tests): an
//! AES-256 key created non-extractable and sensitive, used through CKM_AES_GCM.
//!
//! Blobs keep the layout of [`anshin_crypto::envelope`]: format byte, a
//! 12-byte nonce drawn by anshin, ciphertext, 16-byte tag; the associated data
//! is the [`Context`]. Sessions are pooled: opening one per call would cost
//! more than the encryption.

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use anshin_crypto::envelope::{Context, OVERHEAD};
use anshin_crypto::secret::{SecretString, SecretVec};
use anshin_crypto::token::fill_random;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::error::{Error, ErrorKind, Result};

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_BITS: u64 = 128;
/// Sessions kept open for reuse.
const POOL: usize = 8;

/// Where the token and key are, and the user PIN.
pub struct Pkcs11Settings {
    /// The PKCS#11 module (shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The key object's label.
    pub key_label: String,
    /// The user PIN.
    pub pin: SecretString,
}

impl fmt::Debug for Pkcs11Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Settings")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .field("pin", &"<redacted>")
            .finish()
    }
}

/// Environment variable holding the token's user PIN.
pub const PIN_ENV: &str = "ANSHIN_PKCS11_PIN";
/// Environment variable naming a file whose first line is the PIN.
pub const PIN_FILE_ENV: &str = "ANSHIN_PKCS11_PIN_FILE";

impl Pkcs11Settings {
    /// Settings with the PIN from [`PIN_ENV`] or the file named by
    /// [`PIN_FILE_ENV`]; never from the command line, which every user can read.
    pub fn from_env(module: PathBuf, token_label: String, key_label: String) -> Result<Self> {
        let pin = match (std::env::var(PIN_ENV), std::env::var_os(PIN_FILE_ENV)) {
            (Ok(pin), _) if !pin.is_empty() => SecretString::new(pin),
            (_, Some(file)) => {
                let text = SecretString::new(std::fs::read_to_string(&file).map_err(|e| {
                    Error::new(
                        ErrorKind::Invalid,
                        "pkcs11_pin_missing",
                        format!("cannot read the PIN file named by {PIN_FILE_ENV}"),
                    )
                    .with_cause(e)
                })?);
                SecretString::new(text.expose().lines().next().unwrap_or("").to_owned())
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    "pkcs11_pin_missing",
                    format!("set the token's user PIN in {PIN_ENV}, or a file holding it in {PIN_FILE_ENV}"),
                ));
            }
        };
        Ok(Self {
            module,
            token_label,
            key_label,
            pin,
        })
    }
}

fn token_error(code: &'static str, message: String) -> impl FnOnce(cryptoki::error::Error) -> Error {
    move |e| Error::new(ErrorKind::Internal, code, message).with_cause(e)
}

/// The root key as an object in a token, with a pool of logged-in sessions.
pub struct TokenKey {
    context: Pkcs11,
    slot: Slot,
    key: ObjectHandle,
    /// Idle sessions; the login holds for all of them while one stays open.
    sessions: Mutex<Vec<Session>>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey(slot {}, <in token>)", self.slot.id())
    }
}

impl TokenKey {
    /// Creates the root key in the token: AES-256, non-extractable,
    /// sensitive, persistent. Refuses when a key with the label exists.
    pub fn create(settings: &Pkcs11Settings) -> Result<Self> {
        let (context, slot, session) = login(settings)?;
        if !find_keys(&session, &settings.key_label)?.is_empty() {
            return Err(Error::new(
                ErrorKind::Conflict,
                "pkcs11_key_exists",
                format!(
                    "the token already holds a key labelled `{}`; choose another pkcs11_key_label",
                    settings.key_label
                ),
            ));
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Label(settings.key_label.as_bytes().to_vec()),
        ];
        let key = session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(token_error(
                "pkcs11_failed",
                "the token could not create the root key".into(),
            ))?;
        Ok(Self {
            context,
            slot,
            key,
            sessions: Mutex::new(vec![session]),
        })
    }

    /// Finds the root key in the token.
    pub fn find(settings: &Pkcs11Settings) -> Result<Self> {
        let (context, slot, session) = login(settings)?;
        let key = match find_keys(&session, &settings.key_label)?.as_slice() {
            [key] => *key,
            [] => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "pkcs11_key_missing",
                    format!(
                        "the token holds no key labelled `{}`; check pkcs11_key_label and the token",
                        settings.key_label
                    ),
                ));
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "pkcs11_key_ambiguous",
                    format!("the token holds several keys labelled `{}`", settings.key_label),
                ));
            }
        };
        Ok(Self {
            context,
            slot,
            key,
            sessions: Mutex::new(vec![session]),
        })
    }

    /// Destroys the key object in the token: whatever it wrapped can never
    /// be unwrapped again.
    pub fn destroy(self) -> Result<()> {
        let key = self.key;
        self.with_session(|session| {
            session.destroy_object(key).map_err(token_error(
                "pkcs11_failed",
                "the token could not destroy the old root key; delete it with the token's own tools".into(),
            ))
        })
    }

    /// Runs `f` on a pooled session (opened when none is idle).
    fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T>) -> Result<T> {
        let idle = self.sessions.lock().ok().and_then(|mut pool| pool.pop());
        let session = match idle {
            Some(session) => session,
            None => self.context.open_rw_session(self.slot).map_err(token_error(
                "pkcs11_failed",
                "cannot open a session with the token".into(),
            ))?,
        };
        let result = f(&session);
        if let Ok(mut pool) = self.sessions.lock()
            && pool.len() < POOL
        {
            pool.push(session);
        }
        result
    }

    /// AES-256-GCM in the token; the layout of [`anshin_crypto::envelope`].
    pub fn seal(&self, context: &Context, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let aad = context.as_bytes();
        let mut iv = nonce;
        let sealed = self.with_session(|session| {
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())
                .map_err(token_error("pkcs11_failed", "bad GCM parameters".into()))?;
            session
                .encrypt(&Mechanism::AesGcm(params), self.key, plaintext)
                .map_err(token_error("pkcs11_failed", "the token could not encrypt".into()))
        })?;
        let mut blob = Vec::with_capacity(plaintext.len() + OVERHEAD);
        blob.push(FORMAT_V1);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    /// Opens a blob made by [`TokenKey::seal`].
    pub fn open(&self, context: &Context, blob: &[u8]) -> Result<SecretVec> {
        if blob.len() < OVERHEAD || blob[0] != FORMAT_V1 {
            return Err(anshin_crypto::CryptoError::Malformed.into());
        }
        let mut iv = [0u8; NONCE_LEN];
        iv.copy_from_slice(&blob[1..=NONCE_LEN]);
        let aad = context.as_bytes();
        self.with_session(|session| {
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())
                .map_err(token_error("pkcs11_failed", "bad GCM parameters".into()))?;
            session
                .decrypt(&Mechanism::AesGcm(params), self.key, &blob[1 + NONCE_LEN..])
                .map(SecretVec::new)
                .map_err(|_| anshin_crypto::CryptoError::Authentication.into())
        })
    }
}

/// Loads the module, finds the token by label and logs in as its user.
fn login(settings: &Pkcs11Settings) -> Result<(Pkcs11, Slot, Session)> {
    let context = Pkcs11::new(&settings.module).map_err(token_error(
        "pkcs11_module",
        format!(
            "cannot load the PKCS#11 module {}; check pkcs11_module",
            settings.module.display()
        ),
    ))?;
    context
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(token_error(
            "pkcs11_module",
            "the PKCS#11 module failed to initialise".into(),
        ))?;
    let slots = context.get_slots_with_token().map_err(token_error(
        "pkcs11_failed",
        "cannot list the module's tokens".into(),
    ))?;
    let slot = slots
        .into_iter()
        .find(|slot| {
            context
                .get_token_info(*slot)
                .is_ok_and(|info| info.label().trim_end() == settings.token_label)
        })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                "pkcs11_token_missing",
                format!(
                    "no token labelled `{}` in {}; check pkcs11_token_label",
                    settings.token_label,
                    settings.module.display()
                ),
            )
        })?;
    let session = context.open_rw_session(slot).map_err(token_error(
        "pkcs11_failed",
        "cannot open a session with the token".into(),
    ))?;
    let pin = AuthPin::new(settings.pin.expose().into());
    session.login(UserType::User, Some(&pin)).map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            "pkcs11_login_failed",
            format!("the token refused the user PIN (from {PIN_ENV} or {PIN_FILE_ENV})"),
        )
        .with_cause(e)
    })?;
    Ok((context, slot, session))
}

fn find_keys(session: &Session, label: &str) -> Result<Vec<ObjectHandle>> {
    session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(token_error(
            "pkcs11_failed",
            "cannot search the token's objects".into(),
        ))
}
