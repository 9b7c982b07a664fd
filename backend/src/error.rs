/// Why a backend could not answer.
///
/// Business outcomes (unknown account, wrong PIN, refused unfreeze) are [`crate::Response`]s, not errors: the
/// dialog engine says something specific for those, whereas every error here means "the system is unavailable,
/// try later or talk to an agent". Variants hold strings rather than source errors so the type stays
/// `Clone + PartialEq` and can travel inside dialog events.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Could not connect, or the service kept failing (5xx) through every retry.
    #[error("backend unavailable after {attempts} attempt(s): {reason}")]
    Unavailable { reason: String, attempts: u32 },
    /// The last attempt ran out of time.
    #[error("backend timed out")]
    Timeout,
    /// The service answered, but not with a response we understand or one that fits the request.
    #[error("backend sent a bad response: {reason}")]
    BadResponse { reason: String },
    /// The service refused the request (4xx, or a 3xx we do not follow); retrying would not help.
    #[error("backend rejected the request with HTTP {status}")]
    Rejected { status: u16 },
    /// The demo bank's database failed.
    #[error("backend database error: {0}")]
    Db(String),
    /// Misconfiguration or an unencodable request: a bug to fix, not an outage.
    #[error("invalid backend configuration or request: {reason}")]
    Invalid { reason: String },
}
