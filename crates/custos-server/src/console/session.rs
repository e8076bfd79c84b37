//! Passwords, sessions and the limit on failed logins.
//!
//! - Passwords are hashed with Argon2id (the `argon2` crate's defaults,
//!   RFC 9106's second recommended setting) into PHC strings. A login for
//!   an unknown user verifies against a fixed hash anyway, so the answer's
//!   time does not say whether the name exists.
//! - A session is a random 256-bit token in a cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` when `console.secure_cookie`); the server
//!   keeps only its SHA-256 digest, in memory: a restart logs everyone out.
//!   It ends after `console.idle_timeout` unused, `console.absolute_timeout`
//!   after login, at logout, and when the user is disabled or their
//!   password reset (the user's `generation` changed).
//! - Every session has its own CSRF token, put into every form and
//!   compared in constant time on every `POST`.
//! - Failed logins are counted per user name and per address over
//!   `console.login_window`; past the limit, attempts are refused without
//!   checking the password.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use custos_config::{ConsoleConfig, Role};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password: must be at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The Argon2id PHC string of `password`.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `hash`; `None` for the hash: verify against a
/// fixed one (same cost) and answer false.
pub fn verify_password(password: &str, hash: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy =
        DUMMY.get_or_init(|| hash_password("no user has this password").unwrap_or_default());
    let (hash, real) = match hash {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    matches && real
}

/// A random token, hex.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// A logged-in person.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The user's generation at login (see `db`).
    pub generation: i64,
    pub csrf: String,
    created: Instant,
    last_used: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Open sessions by token digest.
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
    absolute: Duration,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub fn new(config: &ConsoleConfig) -> Sessions {
        Sessions {
            open: Mutex::new(HashMap::new()),
            idle: config.idle_timeout,
            absolute: config.absolute_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session; its token (for the cookie).
    pub fn open(
        &self,
        user: &str,
        role: Role,
        generation: i64,
    ) -> Result<String, getrandom::Error> {
        let token = random_token()?;
        let now = Instant::now();
        let session = Session {
            user: user.to_string(),
            role,
            generation,
            csrf: random_token()?,
            created: now,
            last_used: now,
        };
        let mut open = self.lock();
        // Drop what has expired, so the map does not grow without bound.
        let (idle, absolute) = (self.idle, self.absolute);
        open.retain(|_, s| !expired(s, now, idle, absolute));
        open.insert(digest(&token), session);
        Ok(token)
    }

    /// The live session of `token`, marked used now; an expired one is
    /// removed.
    pub fn touch(&self, token: &str) -> Option<Session> {
        self.touch_at(token, Instant::now())
    }

    fn touch_at(&self, token: &str, now: Instant) -> Option<Session> {
        let key = digest(token);
        let mut open = self.lock();
        let session = open.get_mut(&key)?;
        if expired(session, now, self.idle, self.absolute) {
            open.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    pub fn close(&self, token: &str) {
        self.lock().remove(&digest(token));
    }

    /// Ends every session of `user`.
    pub fn close_user(&self, user: &str) {
        self.lock().retain(|_, s| s.user != user);
    }
}

fn expired(session: &Session, now: Instant, idle: Duration, absolute: Duration) -> bool {
    now.saturating_duration_since(session.last_used) >= idle
        || now.saturating_duration_since(session.created) >= absolute
}

/// Failed logins per user name and per address, within a window.
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    per_user: usize,
    per_address: usize,
    window: Duration,
}

impl LoginLimiter {
    pub fn new(config: &ConsoleConfig) -> Arc<LoginLimiter> {
        let per_user = usize::try_from(config.max_failed_logins).unwrap_or(usize::MAX);
        Arc::new(LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            per_user,
            per_address: per_user.saturating_mul(10),
            window: config.login_window,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another attempt for `user` from `address` may be checked.
    pub fn allows(&self, user: &str, address: &str) -> bool {
        let now = Instant::now();
        let mut failures = self.lock();
        let mut count = |key: String| {
            failures.get_mut(&key).map_or(0, |times| {
                while times
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
                {
                    times.pop_front();
                }
                times.len()
            })
        };
        count(format!("user:{user}")) < self.per_user
            && count(format!("addr:{address}")) < self.per_address
    }

    pub fn failed(&self, user: &str, address: &str) {
        let now = Instant::now();
        let mut failures = self.lock();
        // Bounded: an attacker spraying names cannot grow the map forever.
        if failures.len() > 100_000 {
            let window = self.window;
            failures.retain(|_, t| {
                t.back()
                    .is_some_and(|last| now.saturating_duration_since(*last) < window)
            });
        }
        for key in [format!("user:{user}"), format!("addr:{address}")] {
            failures.entry(key).or_default().push_back(now);
        }
    }

    /// A successful login forgets the user's failures (not the address's).
    pub fn succeeded(&self, user: &str) {
        self.lock().remove(&format!("user:{user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", Some(&hash)));
        assert!(!verify_password("correct horse batterY", Some(&hash)));
        assert!(!verify_password("no user has this password", None));
        assert!(!verify_password("x", Some("not a hash")));
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
    }

    #[test]
    fn sessions_end_when_idle_or_old_and_at_logout() {
        let config = ConsoleConfig {
            idle_timeout: Duration::from_secs(60),
            absolute_timeout: Duration::from_secs(300),
            ..ConsoleConfig::default()
        };
        let sessions = Sessions::new(&config);
        let token = sessions.open("ana", Role::Analyst, 0).unwrap();
        let t0 = Instant::now();
        assert!(
            sessions
                .touch_at(&token, t0 + Duration::from_secs(50))
                .is_some()
        );
        // Used at 50s: still alive at 100s, idle from then on.
        assert!(
            sessions
                .touch_at(&token, t0 + Duration::from_secs(100))
                .is_some()
        );
        assert!(
            sessions
                .touch_at(&token, t0 + Duration::from_secs(161))
                .is_none()
        );
        let token = sessions.open("ana", Role::Analyst, 0).unwrap();
        let t0 = Instant::now();
        for s in (50..300).step_by(50) {
            assert!(
                sessions
                    .touch_at(&token, t0 + Duration::from_secs(s))
                    .is_some()
            );
        }
        assert!(
            sessions
                .touch_at(&token, t0 + Duration::from_secs(301))
                .is_none()
        );
        let token = sessions.open("ana", Role::Analyst, 0).unwrap();
        sessions.close(&token);
        assert!(sessions.touch(&token).is_none());
        assert!(sessions.touch("unknown").is_none());
    }

    #[test]
    fn failed_logins_are_limited_per_user_and_per_address() {
        let config = ConsoleConfig {
            max_failed_logins: 2,
            ..ConsoleConfig::default()
        };
        let limiter = LoginLimiter::new(&config);
        limiter.failed("ana", "10.0.0.1");
        assert!(limiter.allows("ana", "10.0.0.2"));
        limiter.failed("ana", "10.0.0.2");
        assert!(!limiter.allows("ana", "10.0.0.3"), "per user");
        assert!(limiter.allows("bob", "10.0.0.1"));
        for i in 0..20 {
            limiter.failed(&format!("u{i}"), "10.9.9.9");
        }
        assert!(!limiter.allows("carol", "10.9.9.9"), "per address");
        limiter.succeeded("ana");
        assert!(limiter.allows("ana", "10.0.0.3"));
    }
}
