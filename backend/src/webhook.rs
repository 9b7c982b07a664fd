//! The bank's own service behind a JSON webhook: POST the [`Request`], read back a [`Response`].
//!
//! Retries only what can succeed next time (connect errors, 5xx, timeouts), never a 4xx. Every attempt of one
//! call carries the same `Idempotency-Key` header: a timed-out `report_fraud` may have been processed, and the
//! service needs the key to avoid opening a second case on the retry. The caller is waiting on the line, so
//! keep `timeout × (retries + 1)` plus the backoffs within what a prompt can cover.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ureq::http::{HeaderValue, Uri};

use crate::error::BackendError;
use crate::pin::unique_bytes;
use crate::types::{Request, Response};
use crate::Backend;

/// Responses are small JSON documents; anything bigger is a misbehaving service.
const MAX_BODY_BYTES: u64 = 1 << 20;
/// Doubling stops here so a long retry list does not leave the caller in silence.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct WebhookConfig {
    /// `http://` or `https://` endpoint. Use https outside a lab: requests carry PINs.
    pub url: String,
    /// Per attempt, covering connect, send and reading the whole response.
    pub timeout: Duration,
    /// Extra attempts after the first.
    pub retries: u32,
    /// Wait before the first retry; doubles per retry up to 2 s.
    pub backoff: Duration,
    /// Sent as `Authorization: Bearer …`.
    pub bearer_token: Option<String>,
}

impl WebhookConfig {
    /// Defaults sized for a live caller: 3 s per attempt, 2 retries, 200 ms first backoff.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_secs(3),
            retries: 2,
            backoff: Duration::from_millis(200),
            bearer_token: None,
        }
    }
}

/// Hand-written so the token never reaches a log line.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

pub struct WebhookBackend {
    config: WebhookConfig,
    authorization: Option<HeaderValue>,
    agent: ureq::Agent,
    /// Random per instance plus a counter: idempotency keys unique across restarts and appliances.
    key_prefix: String,
    next_key: AtomicU64,
}

impl fmt::Debug for WebhookBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookBackend")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One attempt's failure, and whether another attempt could succeed.
enum Failure {
    Retry(BackendError),
    Final(BackendError),
}

impl WebhookBackend {
    /// Validates the URL and token up front so a typo fails at startup, not on the first caller.
    pub fn new(config: WebhookConfig) -> Result<Self, BackendError> {
        let invalid = |reason: String| BackendError::Invalid { reason };
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| invalid(format!("webhook url {:?}: {e}", config.url)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid(format!(
                "webhook url {:?} must be http:// or https:// with a host",
                config.url
            )));
        }
        if config.timeout.is_zero() {
            return Err(invalid("webhook timeout must be above zero".into()));
        }
        let authorization = config
            .bearer_token
            .as_ref()
            .map(|t| {
                let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                    invalid("webhook bearer token has characters not allowed in a header".into())
                })?;
                v.set_sensitive(true);
                Ok(v)
            })
            .transpose()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            // Status codes are classified here (retry 5xx, reject 4xx), not turned into opaque errors.
            .http_status_as_error(false)
            // Following a redirect could turn the POST into a GET or re-send the PIN elsewhere.
            .max_redirects(0)
            .user_agent(concat!("voxgate-backend/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let prefix_bytes = unique_bytes();
        let key_prefix = prefix_bytes[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            config,
            authorization,
            agent,
            key_prefix,
            next_key: AtomicU64::new(1),
        })
    }

    pub fn config(&self) -> &WebhookConfig {
        &self.config
    }

    fn attempt(&self, body: &str, key: &str, req: &Request) -> Result<Response, Failure> {
        let mut builder = self
            .agent
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("idempotency-key", key);
        if let Some(auth) = &self.authorization {
            builder = builder.header("authorization", auth.clone());
        }
        let mut resp = builder.send(body).map_err(classify)?;
        let status = resp.status().as_u16();
        if (500..600).contains(&status) {
            // Drain what little there is so the connection can be reused; errors here do not matter.
            let _ = resp
                .body_mut()
                .with_config()
                .limit(MAX_BODY_BYTES)
                .read_to_vec();
            return Err(Failure::Retry(BackendError::Unavailable {
                reason: format!("HTTP {status}"),
                attempts: 1,
            }));
        }
        if !(200..300).contains(&status) {
            return Err(Failure::Final(BackendError::Rejected { status }));
        }
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(classify)?;
        let parsed: Response = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Final(BackendError::BadResponse {
                reason: format!("not a response JSON: {e}"),
            })
        })?;
        if !req.accepts(&parsed) {
            return Err(Failure::Final(BackendError::BadResponse {
                // Only the type: the body may hold customer data that must not end up in a log line.
                reason: format!(
                    "a {} request cannot be answered with {}",
                    req.kind(),
                    parsed.kind()
                ),
            }));
        }
        Ok(parsed)
    }
}

impl Backend for WebhookBackend {
    fn call(&self, req: &Request) -> Result<Response, BackendError> {
        let body = serde_json::to_string(req).map_err(|e| BackendError::Invalid {
            reason: format!("cannot encode request: {e}"),
        })?;
        let key = format!(
            "{}-{}",
            self.key_prefix,
            self.next_key.fetch_add(1, Ordering::Relaxed)
        );
        let attempts = self.config.retries.saturating_add(1);
        let mut delay = self.config.backoff;
        let mut attempt = 1;
        loop {
            let err = match self.attempt(&body, &key, req) {
                Ok(resp) => return Ok(resp),
                Err(Failure::Final(err)) => return Err(err),
                Err(Failure::Retry(err)) => err,
            };
            tracing::warn!(
                backend = "webhook",
                request = req.kind(),
                attempt,
                attempts,
                error = %err,
                "webhook attempt failed"
            );
            if attempt >= attempts {
                return Err(match err {
                    BackendError::Unavailable { reason, .. } => {
                        BackendError::Unavailable { reason, attempts }
                    }
                    other => other,
                });
            }
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    fn name(&self) -> &'static str {
        "webhook"
    }
}

fn classify(err: ureq::Error) -> Failure {
    use ureq::Error as E;
    let unavailable = |reason: String| BackendError::Unavailable {
        reason,
        attempts: 1,
    };
    match err {
        E::Timeout(_) => Failure::Retry(BackendError::Timeout),
        E::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Failure::Retry(BackendError::Timeout)
        }
        // Refused, reset, closed mid-response: the service may be restarting.
        E::Io(e) => Failure::Retry(unavailable(e.to_string())),
        E::HostNotFound => Failure::Retry(unavailable("host not found".into())),
        E::ConnectionFailed => Failure::Retry(unavailable("connection failed".into())),
        E::StatusCode(status) if status >= 500 => {
            Failure::Retry(unavailable(format!("HTTP {status}")))
        }
        E::StatusCode(status) => Failure::Final(BackendError::Rejected { status }),
        E::Protocol(e) => Failure::Final(BackendError::BadResponse {
            reason: format!("invalid HTTP: {e}"),
        }),
        E::BodyExceedsLimit(limit) => Failure::Final(BackendError::BadResponse {
            reason: format!("response larger than {limit} bytes"),
        }),
        E::BadUri(reason) => Failure::Final(BackendError::Invalid { reason }),
        E::Http(e) => Failure::Final(BackendError::Invalid {
            reason: e.to_string(),
        }),
        // TLS and certificate failures do not fix themselves within one call.
        other => Failure::Final(unavailable(other.to_string())),
    }
}
