//! Operator accounts and sessions.
//!
//! Passwords are stored as argon2id PHC strings. Session tokens are 256-bit
//! random values given to the client once; the store keeps only their BLAKE3
//! hash, so a copy of the database does not hold usable tokens.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// How long a session lasts without logging in again (12 hours: one shift).
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;

/// What an account may do. Ordered: each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
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
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub username: String,
    pub role: Role,
    pub expires_ms: u64,
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
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn valid_username(name: &str) -> bool {
    (2..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-')
}

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
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
    };
    let mut b = store.batch();
    b.put_account(username, &account);
    store.commit(b)?;
    Ok(account)
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Checks credentials and opens a session. Returns the token (shown once).
pub fn login(store: &Store, username: &str, password: &str, now_ms: u64) -> Result<(String, Session), AccountError> {
    let account = if valid_username(username) { store.account::<Account>(username)? } else { None };
    let Some(account) = account else {
        // Spend the same work as a real check, so timing does not reveal
        // which user names exist.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
        let _ = verify_password(dummy, password);
        return Err(AccountError::BadCredentials);
    };
    if !verify_password(&account.password_hash, password) {
        return Err(AccountError::BadCredentials);
    }
    let mut raw = [0u8; 32];
    OsRng.fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let session = Session { username: account.username, role: account.role, expires_ms: now_ms + SESSION_TTL_MS };
    let mut b = store.batch();
    b.put_session(&token_hash(&token), &session);
    store.commit(b)?;
    Ok((token, session))
}

/// The live session for a token, if any.
pub fn session(store: &Store, token: &str, now_ms: u64) -> Result<Option<Session>, AccountError> {
    if token.len() != 64 {
        return Ok(None);
    }
    let s: Option<Session> = store.session(&token_hash(token))?;
    Ok(s.filter(|s| s.expires_ms > now_ms))
}

pub fn logout(store: &Store, token: &str) -> Result<(), AccountError> {
    let mut b = store.batch();
    b.delete_session(&token_hash(token));
    store.commit(b)?;
    Ok(())
}
