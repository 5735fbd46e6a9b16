//! Operator accounts and sessions.
//!
//! Passwords are stored as argon2id PHC strings. Session tokens are 256-bit
//! random values given to the client once; the store keeps only their BLAKE3
//! hash, so a copy of the database does not hold usable tokens.
//!
//! A session is live only while its account exists, is not disabled and
//! still has the session epoch the session was opened under: setting a
//! password or disabling the account moves the epoch, which ends every
//! session opened before (the one that changed its own password is carried
//! over). Every password an account gets passes [`acceptable_password`].
//! Hashing is the caller's to bound: the API runs every function here that
//! hashes ([`check_password`], [`create`], [`set_password`]) on a blocking
//! thread under `login::HashGate`, after the login throttle.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// How long a session lasts without logging in again (12 hours: one shift).
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;

/// What an account may do. Ordered: each role includes the ones below it,
/// except [`Role::Window`], which is below them all: a 派驻 window's staff
/// see and act on their windows' cases only, so every route refuses them
/// (403) unless it names the role and scopes what it gives to their windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// 派驻窗口: an operator of one or more department windows of the
    /// center (the account's `windows`), for those windows' cases only.
    Window,
    /// Read-only oversight; personal data masked.
    Viewer,
    /// Files cases and takes workflow steps.
    Operator,
    /// Also manages accounts, decides extensions and supervises.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "window" => Some(Role::Window),
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Window => "window",
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub created_ms: u64,
    /// A disabled account cannot log in and has no live session.
    #[serde(default)]
    pub disabled: bool,
    /// Moves when the password is set or the account disabled: sessions
    /// opened under an earlier epoch are dead.
    #[serde(default)]
    pub session_epoch: u32,
    /// When the password was last set (after creation).
    #[serde(default)]
    pub password_changed_ms: Option<u64>,
    /// Clients that logged in as this account: the hashes of the device
    /// tokens their logins were given ([`remember_device`]). A known
    /// device is let through a lock that guessing from elsewhere set.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// BLAKE3 (hex) of the account's recovery code, if one was made
    /// ([`new_recovery_code`]): the second factor its admin keeps.
    #[serde(default)]
    pub recovery_hash: Option<String>,
    /// The department windows a [`Role::Window`] account works for (empty
    /// for every other role).
    #[serde(default)]
    pub windows: Vec<String>,
    /// A mediator (调解员, often part-time): mediation steps may name this
    /// account.
    #[serde(default)]
    pub mediator: bool,
}

/// A client that logged in as an account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Device {
    /// BLAKE3 (hex) of its device token.
    pub hash: String,
    pub created_ms: u64,
    pub last_ms: u64,
}

/// Devices an account remembers at most (the least recently used goes).
const MAX_DEVICES: usize = 16;
/// A device not seen for this long is forgotten (180 days).
const DEVICE_TTL_MS: u64 = 180 * 24 * 3600 * 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub username: String,
    pub role: Role,
    pub expires_ms: u64,
    /// The account's `session_epoch` when the session was opened.
    #[serde(default)]
    pub epoch: u32,
    /// A [`Role::Window`] account's windows, as the account has them now
    /// (filled in by [`session`], never stored).
    #[serde(default, skip_serializing)]
    pub windows: Vec<String>,
}

impl Session {
    /// Whether this session sees only some windows' cases.
    pub fn is_window(&self) -> bool {
        self.role == Role::Window
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user name must be 2 to 32 characters of a-z, 0-9, '.', '_' or '-'")]
    BadUsername,
    #[error("password must be at least 8 characters, not all blank, and not the user name; at most 256")]
    WeakPassword,
    #[error("display name must be at most 64 characters")]
    BadDisplayName,
    #[error("user {0} already exists")]
    Exists(String),
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("account {0} is disabled: ask an admin to enable it")]
    Disabled(String),
    #[error("no user {0}")]
    NoSuchUser(String),
    #[error("an admin cannot disable their own account")]
    DisableSelf,
    #[error("a window account names 1 to 8 department windows (codes a-z, 0-9, _), and only a window account names any")]
    BadWindows,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn valid_username(name: &str) -> bool {
    (2..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-')
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| AccountError::Hash(e.to_string()))
}

fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A password an account may have: 8 to 256 characters, not all blank,
/// not the user name (in any case, with blanks around it).
pub fn acceptable_password(username: &str, password: &str) -> bool {
    let n = password.chars().count();
    (8..=256).contains(&n) && !password.trim().is_empty() && !password.trim().eq_ignore_ascii_case(username)
}

/// Creates an account. Refuses an existing name.
pub fn create(store: &Store, username: &str, password: &str, role: Role, display_name: &str, now_ms: u64) -> Result<Account, AccountError> {
    create_scoped(store, username, password, role, display_name, now_ms, Scope::default())
}

/// What an account works on besides its role: a window account's windows,
/// and whether it is a mediator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub windows: Vec<String>,
    pub mediator: bool,
}

impl Scope {
    /// Window codes well formed, 1 to 8 of them exactly for a window account.
    pub fn check(&self, role: Role) -> Result<(), AccountError> {
        let code_ok = |w: &String| (1..=32).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let ok = if role == Role::Window { (1..=8).contains(&self.windows.len()) && self.windows.iter().all(code_ok) } else { self.windows.is_empty() };
        if ok { Ok(()) } else { Err(AccountError::BadWindows) }
    }
}

/// Creates an account with its scope (see [`Scope`]). Refuses an existing name.
pub fn create_scoped(store: &Store, username: &str, password: &str, role: Role, display_name: &str, now_ms: u64, scope: Scope) -> Result<Account, AccountError> {
    scope.check(role)?;
    if !valid_username(username) {
        return Err(AccountError::BadUsername);
    }
    if !acceptable_password(username, password) {
        return Err(AccountError::WeakPassword);
    }
    if display_name.chars().count() > 64 {
        return Err(AccountError::BadDisplayName);
    }
    if store.account::<Account>(username)?.is_some() {
        return Err(AccountError::Exists(username.into()));
    }
    let account = Account {
        username: username.into(),
        display_name: if display_name.is_empty() { username.into() } else { display_name.into() },
        role,
        password_hash: hash_password(password)?,
        created_ms: now_ms,
        disabled: false,
        session_epoch: 0,
        password_changed_ms: None,
        devices: Vec::new(),
        recovery_hash: None,
        windows: scope.windows,
        mediator: scope.mediator,
    };
    let mut b = store.batch();
    b.put_account(username, &account);
    store.commit(b)?;
    Ok(account)
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// What a password check found (the work is the same for each).
#[derive(Debug)]
pub enum Check {
    Ok(Box<Account>),
    UnknownUser,
    WrongPassword,
    /// The right password for a disabled account.
    Disabled,
}

/// Checks a user name and password: one argon2 verification whether or
/// not the account exists, so timing does not reveal which names exist.
pub fn check_password(store: &Store, username: &str, password: &str) -> Result<Check, AccountError> {
    let account = if valid_username(username) { store.account::<Account>(username)? } else { None };
    let Some(account) = account else {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
        let _ = verify_password(dummy, password);
        return Ok(Check::UnknownUser);
    };
    if !verify_password(&account.password_hash, password) {
        return Ok(Check::WrongPassword);
    }
    if account.disabled {
        return Ok(Check::Disabled);
    }
    Ok(Check::Ok(Box::new(account)))
}

/// Opens a session for an account whose password was checked. Returns the
/// token (shown once).
pub fn open_session(store: &Store, account: &Account, now_ms: u64) -> Result<(String, Session), AccountError> {
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let session = Session { username: account.username.clone(), role: account.role, expires_ms: now_ms + SESSION_TTL_MS, epoch: account.session_epoch, windows: account.windows.clone() };
    let mut b = store.batch();
    b.put_session(&token_hash(&token), &session);
    match store.commit(b) {
        Ok(()) => {}
        // The storage refuses writes (a full disk): the session lives in
        // memory until the process ends, so operators can still log in to
        // read (and to see the alarm).
        Err(crate::store::StoreError::Engine(e)) => {
            tracing::warn!("session for {} kept in memory only: the storage refuses writes ({e})", session.username);
            unstored_sessions().insert(token_hash(&token), session.clone());
        }
        Err(e) => return Err(e.into()),
    }
    Ok((token, session))
}

/// Sessions opened while the storage refused writes.
fn unstored_sessions() -> std::sync::MutexGuard<'static, std::collections::HashMap<[u8; 32], Session>> {
    static SESSIONS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<[u8; 32], Session>>> = std::sync::OnceLock::new();
    SESSIONS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

/// Checks credentials and opens a session (no throttle, no hash bound:
/// for tools and tests; the API goes through `login`).
pub fn login(store: &Store, username: &str, password: &str, now_ms: u64) -> Result<(String, Session), AccountError> {
    match check_password(store, username, password)? {
        Check::Ok(account) => open_session(store, &account, now_ms),
        Check::Disabled => Err(AccountError::Disabled(username.into())),
        Check::UnknownUser | Check::WrongPassword => Err(AccountError::BadCredentials),
    }
}

/// The live session for a token, if any: not expired, its account there,
/// enabled and at the session's epoch.
pub fn session(store: &Store, token: &str, now_ms: u64) -> Result<Option<Session>, AccountError> {
    if token.len() != 64 {
        return Ok(None);
    }
    let stored = match store.session::<Session>(&token_hash(token))? {
        Some(s) => Some(s),
        None => unstored_sessions().get(&token_hash(token)).cloned(),
    };
    let Some(s) = stored.filter(|s| s.expires_ms > now_ms) else {
        return Ok(None);
    };
    let account: Option<Account> = store.account(&s.username)?;
    Ok(account.filter(|a| !a.disabled && a.session_epoch == s.epoch).map(|a| Session { windows: a.windows, ..s }))
}

pub fn logout(store: &Store, token: &str) -> Result<(), AccountError> {
    unstored_sessions().remove(&token_hash(token));
    let mut b = store.batch();
    b.delete_session(&token_hash(token));
    store.commit(b)?;
    Ok(())
}

/// The id a device token stands for in the login throttle (not the token:
/// the throttle's state is kept in the store).
pub fn device_id(token: &str) -> [u8; 8] {
    let h = token_hash(token.trim());
    [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]
}

fn code_hash(code: &str) -> String {
    let clean: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
    blake3::hash(clean.as_bytes()).to_hex().to_string()
}

/// Whether the client may pass a lock that guessing from elsewhere set:
/// it gave a device token of an earlier login as `username`, or the
/// account's recovery code. No password is checked here.
pub fn is_trusted(store: &Store, username: &str, device: Option<&str>, recovery_code: Option<&str>, now_ms: u64) -> Result<bool, AccountError> {
    if device.is_none() && recovery_code.is_none() {
        return Ok(false);
    }
    let Some(account) = (if valid_username(username) { store.account::<Account>(username)? } else { None }) else { return Ok(false) };
    let known = device.is_some_and(|d| {
        let h = hex::encode(token_hash(d.trim()));
        account.devices.iter().any(|x| x.hash == h && x.last_ms.saturating_add(DEVICE_TTL_MS) > now_ms)
    });
    let code = recovery_code.is_some_and(|c| account.recovery_hash.as_deref() == Some(code_hash(c).as_str()));
    Ok(known || code)
}

/// After a successful login: the device token the client keeps for its
/// next logins. A token it gave that the account knows stays (its last use
/// noted at most daily); otherwise a new one is made and returned.
pub fn remember_device(store: &Store, username: &str, presented: Option<&str>, now_ms: u64) -> Result<Option<String>, AccountError> {
    let _one = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
    let mut account: Account = store.account(username)?.ok_or_else(|| AccountError::NoSuchUser(username.into()))?;
    account.devices.retain(|d| d.last_ms.saturating_add(DEVICE_TTL_MS) > now_ms);
    let known = presented.map(|t| hex::encode(token_hash(t.trim()))).and_then(|h| account.devices.iter_mut().find(|d| d.hash == h));
    let fresh = match known {
        Some(d) if d.last_ms.saturating_add(24 * 3600 * 1000) > now_ms => return Ok(None),
        Some(d) => {
            d.last_ms = now_ms;
            None
        }
        None => {
            let mut raw = [0u8; 32];
            OsRng.fill_bytes(&mut raw);
            let token = hex::encode(raw);
            if account.devices.len() >= MAX_DEVICES {
                account.devices.sort_by_key(|d| std::cmp::Reverse(d.last_ms));
                account.devices.truncate(MAX_DEVICES - 1);
            }
            account.devices.push(Device { hash: hex::encode(token_hash(&token)), created_ms: now_ms, last_ms: now_ms });
            Some(token)
        }
    };
    let mut b = store.batch();
    b.put_account(username, &account);
    store.commit(b)?;
    Ok(fresh)
}

/// Makes the account's recovery code (replacing any earlier one) and
/// returns it, shown this once: 20 characters of base32 (100 bits) in
/// groups of five.
pub fn new_recovery_code(store: &Store, username: &str) -> Result<String, AccountError> {
    let _one = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
    let mut account: Account = store.account(username)?.ok_or_else(|| AccountError::NoSuchUser(username.into()))?;
    let mut raw = [0u8; 13];
    OsRng.fill_bytes(&mut raw);
    let text: String = data_encoding::BASE32_NOPAD.encode(&raw).chars().take(20).collect();
    let code = text.as_bytes().chunks(5).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-");
    account.recovery_hash = Some(code_hash(&code));
    let mut b = store.batch();
    b.put_account(username, &account);
    store.commit(b)?;
    Ok(code)
}

/// Account changes read, change and write the whole account: one at a time.
static CHANGES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Reads `username`, applies `change` and writes the account with the
/// session epoch moved, deleting every stored session of the user (and
/// any expired one) except `keep`'s, which is carried to the new epoch.
fn change_account(store: &Store, username: &str, keep: Option<&str>, change: impl FnOnce(&mut Account)) -> Result<Account, AccountError> {
    let _one = CHANGES.lock().unwrap_or_else(|p| p.into_inner());
    let mut account: Account = store.account(username)?.ok_or_else(|| AccountError::NoSuchUser(username.into()))?;
    change(&mut account);
    account.session_epoch = account.session_epoch.wrapping_add(1);
    let keep = keep.map(token_hash);
    let mut b = store.batch();
    b.put_account(username, &account);
    for (hash, mut s) in store.sessions::<Session>()? {
        if s.username != account.username {
            continue;
        }
        if Some(hash) == keep {
            s.epoch = account.session_epoch;
            b.put_session(&hash, &s);
        } else {
            b.delete_session(&hash);
        }
    }
    store.commit(b)?;
    Ok(account)
}

/// Sets an account's password (after [`acceptable_password`]) and ends its
/// sessions, except the one holding `keep` (a user changing their own).
pub fn set_password(store: &Store, username: &str, password: &str, keep: Option<&str>, now_ms: u64) -> Result<Account, AccountError> {
    if !acceptable_password(username, password) {
        return Err(AccountError::WeakPassword);
    }
    if store.account::<Account>(username)?.is_none() {
        return Err(AccountError::NoSuchUser(username.into()));
    }
    let hash = hash_password(password)?;
    change_account(store, username, keep, |a| {
        a.password_hash = hash;
        a.password_changed_ms = Some(now_ms);
    })
}

/// Sets what an account works on (its windows, whether it mediates); its
/// sessions end, as its reach changed.
pub fn set_scope(store: &Store, username: &str, scope: Scope) -> Result<Account, AccountError> {
    let account: Account = store.account(username)?.ok_or_else(|| AccountError::NoSuchUser(username.into()))?;
    scope.check(account.role)?;
    change_account(store, username, None, |a| {
        a.windows = scope.windows;
        a.mediator = scope.mediator;
    })
}

/// Disables (ending every session) or enables an account. `by` is the
/// admin asking: nobody disables their own account (the last admin could
/// lock everyone out).
pub fn set_disabled(store: &Store, username: &str, disabled: bool, by: Option<&str>) -> Result<Account, AccountError> {
    if disabled && by == Some(username) {
        return Err(AccountError::DisableSelf);
    }
    change_account(store, username, None, |a| a.disabled = disabled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_password_or_a_disable_ends_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        create(&store, "li", "first-pass-1", Role::Operator, "", 1).unwrap();
        let (a, _) = login(&store, "li", "first-pass-1", 1).unwrap();
        let (b, _) = login(&store, "li", "first-pass-1", 1).unwrap();
        for bad in ["        ", "li", "LI", "short12"] {
            assert!(matches!(set_password(&store, "li", bad, None, 2), Err(AccountError::WeakPassword)), "{bad:?}");
        }
        assert!(session(&store, &b, 2).unwrap().is_some(), "a refused change ends nothing");
        set_password(&store, "li", "second-pass-2", Some(&a), 2).unwrap();
        assert!(session(&store, &a, 3).unwrap().is_some(), "the changing session stays");
        assert!(session(&store, &b, 3).unwrap().is_none(), "the other one ended");
        assert!(login(&store, "li", "first-pass-1", 3).is_err());
        set_disabled(&store, "li", true, Some("admin")).unwrap();
        assert!(session(&store, &a, 4).unwrap().is_none());
        assert!(matches!(login(&store, "li", "second-pass-2", 4), Err(AccountError::Disabled(_))));
        assert!(matches!(set_disabled(&store, "admin", true, Some("admin")), Err(AccountError::DisableSelf)));
        set_disabled(&store, "li", false, Some("admin")).unwrap();
        assert!(login(&store, "li", "second-pass-2", 5).is_ok());
        assert!(matches!(set_password(&store, "nobody", "third-pass-3", None, 5), Err(AccountError::NoSuchUser(_))));
    }
}
