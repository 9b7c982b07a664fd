//! Who may use the web UI and the API: users with argon2-hashed passwords (session cookie), API clients
//! with bearer tokens (stored as SHA-256), three roles. No user or password is built in: with none
//! configured, the first start creates `admin` with a random password and prints it once.
//!
//! Guessing is bounded three ways: at most [`MAX_PARALLEL_CHECKS`] argon2 checks run at once (429
//! beyond), a user's allowance of wrong passwords is reserved before the hash is checked (so parallel
//! guesses cannot overshoot it), and unknown names cost the same hash check as known ones.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use voxgate_config::{AuthConfig, Role, UserConfig};

/// argon2 checks allowed at the same time; each takes ~20 MB and tens of ms of a core.
pub const MAX_PARALLEL_CHECKS: usize = 2;
/// Longest user name and password looked at; longer ones are refused before hashing.
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Name of the session cookie.
pub const COOKIE: &str = "vx_session";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {source}")]
    ReadUsers {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    ParseUsers { path: PathBuf, message: String },
    #[error("{path}: user {name:?}: {problem}")]
    BadUser {
        path: PathBuf,
        name: String,
        problem: &'static str,
    },
    #[error("cannot write {path}: {source}")]
    WriteUsers {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("invalid user name {0:?} (1..=64 letters, digits, '.', '_', '-', '@')")]
    BadName(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("no secure random numbers: {0}")]
    Random(String),
}

/// Someone the request was authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Hash of the session id for UI logins (so a stream can notice a logout); `None` for bearer tokens.
    pub session: Option<[u8; 32]>,
}

impl Principal {
    pub fn may(&self, allowed: &[Role]) -> bool {
        self.role == Role::Admin || allowed.contains(&self.role)
    }
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong name or password (deliberately not saying which).
    Invalid,
    /// Too many wrong passwords: try again after this long.
    LockedOut(Duration),
    /// Too many checks in progress: try again in a second.
    Busy,
}

struct Session {
    name: String,
    role: Role,
    expires: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    /// Checks in progress, counted against the allowance before their outcome is known.
    pending: u32,
    locked_until: Option<Instant>,
}

pub struct Auth {
    users: HashMap<String, UserConfig>,
    tokens: Vec<([u8; 32], String, Role)>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<String, Failures>>,
    checks: tokio::sync::Semaphore,
    session_ttl: Duration,
    max_failures: u32,
    lockout: Duration,
    /// Checked for unknown names so they take as long as known ones.
    dummy_hash: String,
}

/// `users_file` format: `[[user]]` tables like `[[auth.user]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<FileUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    name: String,
    role: String,
    password_hash: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(buf)
}

/// An argon2id PHC string for `password` (default parameters: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// A new API token (printed once) and the SHA-256 the config stores.
pub fn new_token() -> Result<(String, String), AuthError> {
    let token = format!("vxg_{}", hex(&random_bytes::<24>()?));
    let digest = hex(&sha256(token.as_bytes()));
    Ok((token, digest))
}

/// A password people can type: 20 characters from an unambiguous alphabet (~110 bits).
pub fn random_password() -> Result<String, AuthError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    Ok(random_bytes::<20>()?
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// Users from the `users_file` (empty when it does not exist).
pub fn read_users_file(path: &Path) -> Result<Vec<UserConfig>, AuthError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AuthError::ReadUsers {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let file: UsersFile = toml::from_str(&text).map_err(|e| AuthError::ParseUsers {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(file.user.len());
    for u in file.user {
        let bad = |problem| AuthError::BadUser {
            path: path.to_path_buf(),
            name: u.name.clone(),
            problem,
        };
        if !voxgate_config::valid_user_name(&u.name) {
            return Err(bad("invalid name"));
        }
        let role = Role::from_name(&u.role)
            .ok_or_else(|| bad("role must be admin, supervisor or qa_reviewer"))?;
        if !voxgate_config::valid_password_hash(&u.password_hash)
            || PasswordHash::new(&u.password_hash).is_err()
        {
            return Err(bad("password_hash is not an argon2 PHC string"));
        }
        out.push(UserConfig {
            name: u.name,
            role,
            password_hash: u.password_hash,
        });
    }
    Ok(out)
}

/// Appends a user to the `users_file` (created with mode 0600).
pub fn add_user(path: &Path, name: &str, role: Role, password: &str) -> Result<(), AuthError> {
    if !voxgate_config::valid_user_name(name) {
        return Err(AuthError::BadName(name.to_string()));
    }
    if read_users_file(path)?.iter().any(|u| u.name == name) {
        return Err(AuthError::UserExists(name.to_string()));
    }
    let hash = hash_password(password)?;
    let write_err = |source| AuthError::WriteUsers {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(write_err)?;
    use std::io::Write;
    write!(
        f,
        "\n[[user]]\nname = {}\nrole = {}\npassword_hash = {}\n",
        toml::Value::String(name.to_string()),
        toml::Value::String(role.as_str().to_string()),
        toml::Value::String(hash)
    )
    .map_err(write_err)
}

impl Auth {
    /// Users from the config and the users file; tokens from the config.
    pub fn new(cfg: &AuthConfig, file_users: Vec<UserConfig>) -> Result<Self, AuthError> {
        let mut users = HashMap::new();
        for u in cfg.users.iter().cloned().chain(file_users) {
            users.entry(u.name.clone()).or_insert(u);
        }
        for u in users.values() {
            if PasswordHash::new(&u.password_hash).is_err() {
                return Err(AuthError::BadUser {
                    path: PathBuf::from("[[auth.user]]"),
                    name: u.name.clone(),
                    problem: "password_hash is not an argon2 PHC string",
                });
            }
        }
        let tokens = cfg
            .tokens
            .iter()
            .filter_map(|t| {
                let mut digest = [0u8; 32];
                for (i, d) in digest.iter_mut().enumerate() {
                    *d = u8::from_str_radix(t.sha256.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                Some((digest, t.name.clone(), t.role))
            })
            .collect();
        // Same parameters as the configured users (argon2 cost follows the PHC string).
        let dummy_hash = users
            .values()
            .next()
            .map(|u| u.password_hash.clone())
            .unwrap_or_default();
        Ok(Self {
            users,
            tokens,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(MAX_PARALLEL_CHECKS),
            session_ttl: cfg.session(),
            max_failures: cfg.max_failures.max(1),
            lockout: cfg.lockout(),
            dummy_hash,
        })
    }

    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// The principal for a bearer token, if it is one of the configured tokens.
    pub fn bearer(&self, token: &str) -> Option<Principal> {
        let digest = sha256(token.as_bytes());
        // Every entry is compared in full, whether or not an earlier one matched.
        let mut found = None;
        for (d, name, role) in &self.tokens {
            let same = d
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same && found.is_none() {
                found = Some(Principal {
                    name: name.clone(),
                    role: *role,
                    session: None,
                });
            }
        }
        found
    }

    /// The principal for a session cookie value, if the session is live.
    pub fn session(&self, id: &str, now: Instant) -> Option<Principal> {
        let key = sha256(id.as_bytes());
        let mut sessions = lock(&self.sessions);
        match sessions.get(&key) {
            Some(s) if s.expires > now => Some(Principal {
                name: s.name.clone(),
                role: s.role,
                session: Some(key),
            }),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Whether a principal is still logged in (streams end soon after a logout or expiry).
    pub fn still_valid(&self, p: &Principal, now: Instant) -> bool {
        match p.session {
            None => true,
            Some(key) => lock(&self.sessions)
                .get(&key)
                .is_some_and(|s| s.expires > now),
        }
    }

    pub fn logout(&self, p: &Principal) {
        if let Some(key) = p.session {
            lock(&self.sessions).remove(&key);
        }
    }

    /// Checks a password; on success returns the new session id (the cookie value) and the principal.
    pub async fn login(
        self: &Arc<Self>,
        name: &str,
        password: &str,
        now: Instant,
    ) -> Result<(String, Principal), LoginRefused> {
        if name.len() > MAX_NAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
            return Err(LoginRefused::Invalid);
        }
        let Ok(_permit) = self.checks.try_acquire() else {
            return Err(LoginRefused::Busy);
        };
        let user = self.users.get(name).cloned();
        if user.is_some() {
            self.reserve(name, now)?;
        }
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        let Some(user) = user else {
            return Err(LoginRefused::Invalid);
        };
        self.settle(name, ok, Instant::now());
        if !ok {
            return Err(LoginRefused::Invalid);
        }
        let id = hex(&random_bytes::<32>().map_err(|_| LoginRefused::Busy)?);
        let key = sha256(id.as_bytes());
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            key,
            Session {
                name: user.name.clone(),
                role: user.role,
                expires: now + self.session_ttl,
            },
        );
        Ok((
            id,
            Principal {
                name: user.name,
                role: user.role,
                session: Some(key),
            },
        ))
    }

    /// Counts a check against the user's allowance before it runs.
    fn reserve(&self, name: &str, now: Instant) -> Result<(), LoginRefused> {
        let mut failures = lock(&self.failures);
        let f = failures.entry(name.to_string()).or_default();
        if let Some(until) = f.locked_until {
            if until > now {
                return Err(LoginRefused::LockedOut(until - now));
            }
            f.locked_until = None;
            f.count = 0;
        }
        if f.count + f.pending >= self.max_failures {
            return Err(LoginRefused::LockedOut(self.lockout));
        }
        f.pending += 1;
        Ok(())
    }

    fn settle(&self, name: &str, ok: bool, now: Instant) {
        let mut failures = lock(&self.failures);
        let Some(f) = failures.get_mut(name) else {
            return;
        };
        f.pending = f.pending.saturating_sub(1);
        if ok {
            f.count = 0;
        } else {
            f.count += 1;
            if f.count >= self.max_failures {
                tracing::warn!(user = name, "too many wrong passwords; locked out");
                f.locked_until = Some(now + self.lockout);
            }
        }
    }
}

/// First start without any user: creates `admin` with a random password in the users file and returns the
/// password so it can be shown once.
pub fn bootstrap_admin(cfg: &AuthConfig) -> Result<Option<String>, AuthError> {
    if !cfg.users.is_empty() || !read_users_file(&cfg.users_file)?.is_empty() {
        return Ok(None);
    }
    let password = random_password()?;
    add_user(&cfg.users_file, "admin", Role::Admin, &password)?;
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxgate_config::TokenConfig;

    fn cfg_with(users: Vec<UserConfig>) -> AuthConfig {
        AuthConfig {
            max_failures: 5,
            lockout_secs: 60,
            users,
            ..AuthConfig::default()
        }
    }

    fn user(name: &str, role: Role, password: &str) -> UserConfig {
        UserConfig {
            name: name.into(),
            role,
            password_hash: hash_password(password).unwrap(),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn login_session_logout_and_roles() {
        let auth = Arc::new(
            Auth::new(
                &cfg_with(vec![user("sam", Role::Supervisor, "pw-sam-1")]),
                vec![],
            )
            .unwrap(),
        );
        let now = Instant::now();
        let rt = rt();
        assert_eq!(
            rt.block_on(auth.login("sam", "wrong", now)).err(),
            Some(LoginRefused::Invalid)
        );
        assert_eq!(
            rt.block_on(auth.login("nobody", "pw-sam-1", now)).err(),
            Some(LoginRefused::Invalid)
        );
        let (id, p) = rt.block_on(auth.login("sam", "pw-sam-1", now)).unwrap();
        assert_eq!(p.role, Role::Supervisor);
        assert!(p.may(&[Role::Supervisor]));
        assert!(!p.may(&[Role::QaReviewer]));
        assert_eq!(auth.session(&id, now).map(|p| p.name), Some("sam".into()));
        assert!(auth.session("not-a-session", now).is_none());
        // Expiry and logout both end the session.
        assert!(auth
            .session(&id, now + Duration::from_secs(13 * 3600))
            .is_none());
        let (id, p) = rt.block_on(auth.login("sam", "pw-sam-1", now)).unwrap();
        assert!(auth.still_valid(&p, now));
        auth.logout(&p);
        assert!(auth.session(&id, now).is_none());
        assert!(!auth.still_valid(&p, now));
    }

    #[test]
    fn parallel_guesses_never_exceed_the_allowance_and_lock_the_user_out() {
        let auth = Arc::new(
            Auth::new(
                &cfg_with(vec![user("ann", Role::Admin, "right-one")]),
                vec![],
            )
            .unwrap(),
        );
        let rt = rt();
        let now = Instant::now();
        let outcomes = rt.block_on(async {
            let mut handles = Vec::new();
            for i in 0..12 {
                let a = auth.clone();
                handles.push(tokio::spawn(async move {
                    // Busy answers are retried: every guess eventually gets an answer.
                    loop {
                        match a.login("ann", &format!("guess-{i}"), now).await {
                            Err(LoginRefused::Busy) => {
                                tokio::time::sleep(Duration::from_millis(5)).await
                            }
                            other => return other.err(),
                        }
                    }
                }));
            }
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        });
        let checked = outcomes
            .iter()
            .filter(|o| **o == Some(LoginRefused::Invalid))
            .count();
        assert_eq!(checked, 5, "{outcomes:?}");
        assert!(outcomes
            .iter()
            .all(|o| matches!(o, Some(LoginRefused::Invalid | LoginRefused::LockedOut(_)))));
        // Even the right password is refused during the lockout, and accepted after it.
        assert!(matches!(
            rt.block_on(auth.login("ann", "right-one", Instant::now())),
            Err(LoginRefused::LockedOut(_))
        ));
        assert!(rt
            .block_on(auth.login("ann", "right-one", Instant::now() + Duration::from_secs(61)))
            .is_ok());
    }

    #[test]
    fn over_long_input_is_refused_before_hashing_and_tokens_match_exactly() {
        let (token, digest) = new_token().unwrap();
        let cfg = AuthConfig {
            tokens: vec![TokenConfig {
                name: "bi".into(),
                role: Role::QaReviewer,
                sha256: digest,
            }],
            ..cfg_with(vec![user("sam", Role::Supervisor, "pw")])
        };
        let auth = Arc::new(Auth::new(&cfg, vec![]).unwrap());
        assert_eq!(auth.bearer(&token).map(|p| p.role), Some(Role::QaReviewer));
        assert!(auth.bearer(&format!("{token}x")).is_none());
        assert!(auth.bearer("").is_none());
        let rt = rt();
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(
            rt.block_on(auth.login("sam", &long, Instant::now())).err(),
            Some(LoginRefused::Invalid)
        );
    }

    #[test]
    fn users_file_round_trip_and_bootstrap() {
        let dir = std::env::temp_dir().join(format!("voxgate-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = AuthConfig {
            users_file: dir.join("users.toml"),
            ..AuthConfig::default()
        };
        let pw = bootstrap_admin(&cfg).unwrap().expect("admin created");
        assert_eq!(pw.len(), 20);
        assert_eq!(bootstrap_admin(&cfg).unwrap(), None, "only once");
        add_user(&cfg.users_file, "quinn", Role::QaReviewer, "q-pass").unwrap();
        assert!(matches!(
            add_user(&cfg.users_file, "quinn", Role::Admin, "x"),
            Err(AuthError::UserExists(_))
        ));
        let users = read_users_file(&cfg.users_file).unwrap();
        assert_eq!(
            users
                .iter()
                .map(|u| (u.name.as_str(), u.role))
                .collect::<Vec<_>>(),
            [("admin", Role::Admin), ("quinn", Role::QaReviewer)]
        );
        let text = std::fs::read_to_string(&cfg.users_file).unwrap();
        assert!(!text.contains(&pw) && !text.contains("q-pass"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&cfg.users_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let auth = Arc::new(Auth::new(&cfg, users).unwrap());
        assert!(rt()
            .block_on(auth.login("admin", &pw, Instant::now()))
            .is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
