//! The HTTP side: health and metrics, the JSON API (`/api/v1`), the live streams (SSE) and the web UI.
//!
//! Every API route needs a logged-in user (session cookie) or an API token (bearer); roles decide what
//! each may do. Store work runs on blocking threads with pooled connections, never on the async workers.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use voxgate_config::Role;
use voxgate_qa::scorecard::{Outcome, RuleInfo, ScorecardSet, Severity};
use voxgate_qa::store::{
    outcome_of, severity_of, AlertFilter, CallFilter, Review, ReviewDraft, StoreError,
    StoreLocation, StoredAlert, StoredScore,
};
use voxgate_qa::{CallRecord, CallSummary, Store};

use crate::auth::{Auth, LoginRefused, Principal, COOKIE};
use crate::live::{LiveHub, LiveTurn};
use crate::metrics::Metrics;

/// Store connections kept open between requests.
const IDLE_CONNECTIONS: usize = 4;
/// Largest export; beyond it the response says `X-Voxgate-Truncated: true`.
const EXPORT_MAX: u32 = 10_000;
/// Largest slice of a recording sent for one range request.
const MAX_RANGE_BYTES: u64 = 4 << 20;
/// Streams re-check that their viewer is still logged in this often.
const STREAM_RECHECK: Duration = Duration::from_secs(5);

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const STYLE_CSS: &str = include_str!("ui/style.css");

/// Store connections for the API, opened on demand and reused.
pub struct StorePool {
    location: StoreLocation,
    idle: Mutex<Vec<Store>>,
}

impl StorePool {
    pub fn new(location: StoreLocation) -> Self {
        Self {
            location,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Option<Store> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give(&self, store: Store) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(store);
        }
    }

    /// Runs `f` with a connection on a blocking thread. A connection whose query failed is not reused
    /// (it may be broken).
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut store = match pool.take() {
                Some(s) => s,
                None => Store::open_at(&pool.location)?,
            };
            let result = f(&mut store);
            if result.is_ok() {
                pool.give(store);
            }
            result
        })
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(ApiError::from)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<StorePool>,
    pub auth: Arc<Auth>,
    pub hub: LiveHub,
    pub scorecards: watch::Receiver<ScorecardSet>,
    pub metrics: Arc<Metrics>,
    pub hw: Arc<voxgate_hw::HwInfo>,
    pub max_calls: usize,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(ui_index))
        .route("/ui/app.js", get(ui_js))
        .route("/ui/style.css", get(ui_css))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/calls", get(list_calls))
        .route("/api/v1/calls/{id}", get(get_call))
        .route("/api/v1/calls/{id}/recording", get(get_recording))
        .route("/api/v1/calls/{id}/reviews", post(add_review))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/stream", get(alert_stream))
        .route("/api/v1/turns/stream", get(turn_stream))
        .route("/api/v1/live", get(live_board))
        .route("/api/v1/scorecards", get(scorecards))
        .route("/api/v1/dashboard", get(dashboard))
        .route("/api/v1/export", get(export))
        .layer(axum::middleware::from_fn(guard))
        .with_state(state)
}

/// Every response gets browser hardening headers; every POST must be JSON (a cross-site form cannot send
/// that without a CORS preflight, which this server never grants).
async fn guard(req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().map(str::trim) == Some("application/json"));
        if !json {
            return ApiError::NotJson.into_response();
        }
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; media-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not found")]
    NotFound,
    #[error("log in first")]
    Unauthorized,
    #[error("your role may not do this")]
    Forbidden,
    #[error("POST bodies must be application/json")]
    NotJson,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("storage error: {0}")]
    Store(StoreError),
    #[error("internal error")]
    Internal,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotScored { .. } => ApiError::NotFound,
            StoreError::UnknownRule { .. } | StoreError::EmptyComment => {
                ApiError::BadRequest(e.to_string())
            }
            StoreError::NoChange { .. } => ApiError::Conflict(e.to_string()),
            other => ApiError::Store(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Store(_) | ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "API request failed");
        }
        let mut resp = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"voxgate\""),
            );
        }
        resp
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        if let Some(auth) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            return auth
                .strip_prefix("Bearer ")
                .and_then(|t| s.auth.bearer(t.trim()))
                .ok_or(ApiError::Unauthorized);
        }
        cookie_value(&parts.headers, COOKIE)
            .and_then(|id| s.auth.session(id, Instant::now()))
            .ok_or(ApiError::Unauthorized)
    }
}

fn require(p: &Principal, roles: &[Role]) -> Result<(), ApiError> {
    if p.may(roles) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Who watches live calls.
const LIVE: &[Role] = &[Role::Supervisor];
/// Who changes results and takes data out.
const REVIEW: &[Role] = &[Role::QaReviewer];
/// Everyone logged in.
const ANY: &[Role] = &[Role::Supervisor, Role::QaReviewer];

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn ui_index() -> Response {
    static_file(INDEX_HTML, "text/html; charset=utf-8")
}

async fn ui_js() -> Response {
    static_file(APP_JS, "text/javascript; charset=utf-8")
}

async fn ui_css() -> Response {
    static_file(STYLE_CSS, "text/css; charset=utf-8")
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "active_calls": s.metrics.calls_active.load(Ordering::Relaxed),
        "max_calls": s.max_calls,
        "hw": *s.hw,
    }))
}

async fn metrics(State(s): State<AppState>, p: Principal) -> Result<Response, ApiError> {
    require(&p, ANY)?;
    let cores = s.hw.logical_cores as u64;
    let body = s.metrics.render(&[
        (
            "cpu_logical_cores",
            "Logical CPU cores seen at start-up.",
            cores,
        ),
        (
            "max_calls",
            "Configured concurrent call limit.",
            s.max_calls as u64,
        ),
    ]);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(State(s): State<AppState>, Json(body): Json<LoginBody>) -> Response {
    match s
        .auth
        .login(&body.username, &body.password, Instant::now())
        .await
    {
        Ok((id, p)) => {
            Metrics::inc(&s.metrics.http_logins_total);
            tracing::info!(user = %p.name, role = p.role.as_str(), "UI login");
            let cookie = format!(
                "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                s.auth.session_ttl().as_secs()
            );
            (
                [(header::SET_COOKIE, cookie)],
                Json(serde_json::json!({ "user": p.name, "role": p.role })),
            )
                .into_response()
        }
        Err(refused) => {
            Metrics::inc(&s.metrics.http_login_failures_total);
            let (status, retry, message) = match refused {
                LoginRefused::Invalid => (
                    StatusCode::UNAUTHORIZED,
                    None,
                    "wrong user name or password",
                ),
                LoginRefused::LockedOut(d) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(d.as_secs().max(1)),
                    "too many wrong passwords; try again later",
                ),
                LoginRefused::Busy => (
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(1),
                    "busy checking other logins; try again in a second",
                ),
            };
            let mut resp = (status, Json(serde_json::json!({ "error": message }))).into_response();
            if let Some(secs) = retry.and_then(|r| HeaderValue::from_str(&r.to_string()).ok()) {
                resp.headers_mut().insert(header::RETRY_AFTER, secs);
            }
            resp
        }
    }
}

async fn logout(State(s): State<AppState>, p: Principal) -> Response {
    s.auth.logout(&p);
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Json(serde_json::json!({ "ok": true })),
    )
        .into_response()
}

async fn me(p: Principal) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "user": p.name, "role": p.role }))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` (a UTC day; `end` = the start of the next day, so the day is included) or epoch ms.
fn parse_time(s: &str, end: bool) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "{s:?} is not a date (YYYY-MM-DD) or epoch milliseconds"
        ))
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() > 8 {
        return s.parse().map_err(|_| bad());
    }
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || d < 1
        || d > month_days[(m - 1) as usize]
    {
        return Err(bad());
    }
    let day = days_from_civil(y, m, d) + i64::from(end);
    Ok(day * 86_400_000)
}

#[derive(Deserialize, Default)]
struct ListQuery {
    call_id: Option<String>,
    active: Option<bool>,
    from: Option<String>,
    to: Option<String>,
    min_score: Option<f32>,
    max_score: Option<f32>,
    passed: Option<bool>,
    rule_failed: Option<String>,
    agent: Option<String>,
    intent: Option<String>,
    alert: Option<String>,
    #[serde(default)]
    limit: u32,
    #[serde(default)]
    offset: u32,
    format: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

impl ListQuery {
    fn filter(self) -> Result<CallFilter, ApiError> {
        Ok(CallFilter {
            call_id: non_empty(self.call_id),
            active: self.active,
            from_ms: non_empty(self.from)
                .map(|f| parse_time(&f, false))
                .transpose()?,
            to_ms: non_empty(self.to)
                .map(|t| parse_time(&t, true))
                .transpose()?,
            min_score: self.min_score,
            max_score: self.max_score,
            passed: self.passed,
            rule_failed: non_empty(self.rule_failed),
            agent: non_empty(self.agent),
            intent: non_empty(self.intent),
            alert: non_empty(self.alert),
            limit: self.limit,
            offset: self.offset,
        })
    }
}

async fn list_calls(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    require(&p, ANY)?;
    let filter = q.filter()?;
    let (calls, total) = s
        .store
        .run(move |st| Ok((st.list_calls(&filter)?, st.count_calls(&filter)?)))
        .await?;
    Ok(Json(CallList { calls, total }))
}

// Responses are serialised straight from these types (not through `serde_json::Value`, which would print
// an f32 score of 83.3 as 83.30000305175781).

#[derive(Serialize)]
struct CallList {
    calls: Vec<CallSummary>,
    total: u64,
}

#[derive(Serialize)]
struct CallDetail {
    #[serde(flatten)]
    record: CallRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_url: Option<String>,
    scores: Vec<StoredScore>,
    alerts: Vec<StoredAlert>,
}

#[derive(Serialize)]
struct ReviewResponse {
    review: Review,
    scores: Vec<StoredScore>,
}

#[derive(Serialize)]
struct ScorecardInfo {
    name: String,
    title: String,
    language: String,
    version: String,
    pass_mark: f32,
    rules: Vec<RuleInfo>,
}

#[derive(Serialize)]
struct ExportRow {
    #[serde(flatten)]
    call: CallSummary,
    failed_rules: Vec<String>,
}

async fn get_call(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    require(&p, ANY)?;
    let (rec, scores, alerts) = s
        .store
        .run(move |st| {
            let Some(rec) = st.get_call(id)? else {
                return Ok(None);
            };
            let scores = st.get_scores(id)?;
            let alerts = st.list_alerts(&AlertFilter {
                call: Some(id),
                limit: 1000,
                ..Default::default()
            })?;
            Ok(Some((rec, scores, alerts)))
        })
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(CallDetail {
        recording_url: rec
            .recording_path
            .is_some()
            .then(|| format!("/api/v1/calls/{id}/recording")),
        record: rec,
        scores,
        alerts,
    }))
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` → the inclusive byte range within `len`.
fn parse_range(h: &str, len: u64) -> Option<(u64, u64)> {
    let spec = h.strip_prefix("bytes=")?.split(',').next()?.trim();
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.checked_sub(n.min(len))?, len.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, len.checked_sub(1)?),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(len.checked_sub(1)?),
        ),
    };
    (start <= end && end < len).then_some((start, end))
}

async fn get_recording(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require(&p, ANY)?;
    let path = s
        .store
        .run(move |st| Ok(st.get_call(id)?.and_then(|r| r.recording_path)))
        .await?
        .ok_or(ApiError::NotFound)?;
    serve_file(PathBuf::from(path), headers.get(header::RANGE), id).await
}

async fn serve_file(
    path: PathBuf,
    range: Option<&HeaderValue>,
    id: i64,
) -> Result<Response, ApiError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::NotFound)?;
    let len = file.metadata().await.map_err(|_| ApiError::NotFound)?.len();
    let disposition = format!("inline; filename=\"call-{id}.wav\"");
    let range = range.and_then(|r| r.to_str().ok());
    let Some(range) = range else {
        // Whole file, streamed in 64 KiB chunks rather than read into memory.
        let stream = futures_util::stream::unfold(file, |mut f| async move {
            let mut buf = vec![0u8; 64 * 1024];
            match f.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(buf), f))
                }
            }
        });
        return Ok((
            [
                (header::CONTENT_TYPE, "audio/wav".to_string()),
                (header::CONTENT_LENGTH, len.to_string()),
                (header::ACCEPT_RANGES, "bytes".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            Body::from_stream(stream),
        )
            .into_response());
    };
    let Some((start, end)) = parse_range(range, len) else {
        return Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{len}"))],
        )
            .into_response());
    };
    let end = end.min(start + MAX_RANGE_BYTES - 1);
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|_| ApiError::Internal)?;
    let mut buf = vec![0u8; (end - start + 1) as usize];
    file.read_exact(&mut buf)
        .await
        .map_err(|_| ApiError::Internal)?;
    Ok((
        StatusCode::PARTIAL_CONTENT,
        [
            (header::CONTENT_TYPE, "audio/wav".to_string()),
            (header::ACCEPT_RANGES, "bytes".to_string()),
            (header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        buf,
    )
        .into_response())
}

#[derive(Deserialize)]
struct ReviewBody {
    scorecard: String,
    rule: String,
    outcome: String,
    comment: String,
}

async fn add_review(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    Json(body): Json<ReviewBody>,
) -> Result<Response, ApiError> {
    require(&p, REVIEW)?;
    let outcome: Outcome = outcome_of(&body.outcome).ok_or_else(|| {
        ApiError::BadRequest("outcome must be pass, fail or not_applicable".into())
    })?;
    if body.comment.len() > 4000 {
        return Err(ApiError::BadRequest(
            "comment is longer than 4000 bytes".into(),
        ));
    }
    let draft = ReviewDraft {
        scorecard: body.scorecard,
        rule: body.rule,
        outcome,
        comment: body.comment,
        reviewer: p.name.clone(),
        at_ms: crate::calls::wall_ms(),
    };
    let (review, scores) = s
        .store
        .run(move |st| {
            let review = st.add_review(id, &draft)?;
            Ok((review, st.get_scores(id)?))
        })
        .await?;
    tracing::info!(call = id, rule = %review.rule, reviewer = %review.reviewer, "QA review");
    Ok((StatusCode::CREATED, Json(ReviewResponse { review, scores })).into_response())
}

#[derive(Deserialize)]
struct AlertQuery {
    call: Option<i64>,
    after_id: Option<i64>,
    from: Option<String>,
    to: Option<String>,
    severity: Option<String>,
    #[serde(default)]
    limit: u32,
}

impl AlertQuery {
    fn filter(self) -> Result<AlertFilter, ApiError> {
        let severity: Option<Severity> = match non_empty(self.severity) {
            Some(v) => Some(severity_of(&v).ok_or_else(|| {
                ApiError::BadRequest("severity must be info, warning or critical".into())
            })?),
            None => None,
        };
        Ok(AlertFilter {
            call: self.call,
            after_id: self.after_id,
            from_ms: non_empty(self.from)
                .map(|f| parse_time(&f, false))
                .transpose()?,
            to_ms: non_empty(self.to)
                .map(|t| parse_time(&t, true))
                .transpose()?,
            severity,
            limit: self.limit,
        })
    }
}

async fn list_alerts(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<AlertQuery>,
) -> Result<impl IntoResponse, ApiError> {
    require(&p, ANY)?;
    let filter = q.filter()?;
    let alerts = s.store.run(move |st| st.list_alerts(&filter)).await?;
    Ok(Json(serde_json::json!({ "alerts": alerts })))
}

/// A server-sent event stream, as a response.
type SseStream = Response;
type ToEvent<T> = Box<dyn FnMut(&T) -> Option<Event> + Send>;

/// Items of a broadcast (after a stored backlog) as SSE events, until the viewer's login ends. Slow
/// subscribers skip what they missed: broadcasts keep a bounded backlog.
fn sse_from<T: Clone + Send + 'static>(
    auth: Arc<Auth>,
    principal: Principal,
    rx: broadcast::Receiver<T>,
    backlog: Vec<T>,
    to_event: ToEvent<T>,
) -> SseStream {
    struct St<T> {
        auth: Arc<Auth>,
        principal: Principal,
        rx: broadcast::Receiver<T>,
        backlog: std::collections::VecDeque<T>,
        to_event: ToEvent<T>,
    }
    let st = St {
        auth,
        principal,
        rx,
        backlog: backlog.into(),
        to_event,
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if !st.auth.still_valid(&st.principal, Instant::now()) {
                return None;
            }
            let item = match st.backlog.pop_front() {
                Some(item) => item,
                None => match tokio::time::timeout(STREAM_RECHECK, st.rx.recv()).await {
                    Ok(Ok(item)) => item,
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => continue,
                    Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                },
            };
            if let Some(ev) = (st.to_event)(&item) {
                return Some((Ok::<_, Infallible>(ev), st));
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
struct StreamQuery {
    after_id: Option<i64>,
    call_id: Option<String>,
}

/// Live alerts. Reconnecting clients (EventSource sends `Last-Event-ID`) or `?after_id=N` first get the
/// stored alerts they missed.
async fn alert_stream(
    State(s): State<AppState>,
    p: Principal,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<SseStream, ApiError> {
    require(&p, LIVE)?;
    // Subscribe before reading the backlog, then skip what the backlog already had.
    let rx = s.hub.alerts.subscribe();
    let after = q.after_id.or_else(|| {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    let backlog: Vec<Arc<StoredAlert>> = match after {
        Some(after_id) => s
            .store
            .run(move |st| {
                st.list_alerts(&AlertFilter {
                    after_id: Some(after_id),
                    limit: 1000,
                    ..Default::default()
                })
            })
            .await?
            .into_iter()
            .rev()
            .map(Arc::new)
            .collect(),
        None => Vec::new(),
    };
    // Ids only grow: anything at or below the last one sent was in the backlog already.
    let mut max_sent = after.unwrap_or(0);
    let to_event: ToEvent<Arc<StoredAlert>> = Box::new(move |a| {
        if a.id <= max_sent {
            return None;
        }
        max_sent = a.id;
        Event::default()
            .event("alert")
            .id(a.id.to_string())
            .json_data(a.as_ref())
            .ok()
    });
    Ok(sse_from(s.auth.clone(), p, rx, backlog, to_event))
}

/// Live transcript turns (partials and finals) of every call, or of `?call_id=`.
async fn turn_stream(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<StreamQuery>,
) -> Result<SseStream, ApiError> {
    require(&p, LIVE)?;
    let rx = s.hub.turns.subscribe();
    let only = non_empty(q.call_id);
    let to_event: ToEvent<Arc<LiveTurn>> = Box::new(move |t| {
        if only.as_ref().is_some_and(|c| *c != t.call_id) {
            return None;
        }
        Event::default().event("turn").json_data(t.as_ref()).ok()
    });
    Ok(sse_from(s.auth.clone(), p, rx, Vec::new(), to_event))
}

/// The supervisor board: every active call with its state, step, intent and last turns, with the store id
/// for links.
async fn live_board(
    State(s): State<AppState>,
    p: Principal,
) -> Result<impl IntoResponse, ApiError> {
    require(&p, LIVE)?;
    let board = s.hub.board.borrow().clone();
    let ids = s
        .store
        .run(|st| {
            st.list_calls(&CallFilter {
                active: Some(true),
                limit: 10_000,
                ..Default::default()
            })
        })
        .await?;
    let calls: Vec<serde_json::Value> = board
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            let id = ids.iter().find(|r| r.call_id == c.call_id).map(|r| r.id);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("id".into(), id.into());
            }
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "calls": calls })))
}

async fn scorecards(
    State(s): State<AppState>,
    p: Principal,
) -> Result<impl IntoResponse, ApiError> {
    require(&p, ANY)?;
    let set = s.scorecards.borrow().clone();
    let scorecards: Vec<ScorecardInfo> = set
        .all()
        .iter()
        .map(|c| ScorecardInfo {
            name: c.name.clone(),
            title: c.title.clone(),
            language: c.language.clone(),
            version: c.version.clone(),
            pass_mark: c.pass_mark,
            rules: c.rules().collect(),
        })
        .collect();
    #[derive(Serialize)]
    struct Cards {
        scorecards: Vec<ScorecardInfo>,
    }
    Ok(Json(Cards { scorecards }))
}

#[derive(Deserialize)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn dashboard(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<RangeQuery>,
) -> Result<impl IntoResponse, ApiError> {
    require(&p, ANY)?;
    let from = non_empty(q.from)
        .map(|f| parse_time(&f, false))
        .transpose()?;
    let to = non_empty(q.to).map(|t| parse_time(&t, true)).transpose()?;
    let d = s.store.run(move |st| st.dashboard(from, to)).await?;
    Ok(Json(d))
}

fn csv_field(s: &str) -> String {
    // Leading = + - @ would be formulas in a spreadsheet: quote them with a '.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Calls (list filters apply) as CSV or JSON, with failed rules, for reporting tools.
async fn export(
    State(s): State<AppState>,
    p: Principal,
    Query(mut q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    require(&p, REVIEW)?;
    let csv = match q.format.as_deref() {
        None | Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format {other:?}: expected csv or json"
            )))
        }
    };
    q.limit = EXPORT_MAX;
    q.offset = 0;
    let filter = q.filter()?;
    let rows = s
        .store
        .run(move |st| {
            let calls = st.list_calls(&filter)?;
            let mut out = Vec::with_capacity(calls.len());
            for c in calls {
                let failed = st.failed_rules(c.id)?;
                out.push((c, failed));
            }
            Ok(out)
        })
        .await?;
    let truncated = rows.len() as u32 >= EXPORT_MAX;
    let (body, content_type, ext) = if csv {
        let mut out = String::from(
            "id,call_id,started_at_ms,ended_at_ms,duration_ms,from,to,language,intent,agent,contained,score,passed,alerts,failed_rules,end_reason\n",
        );
        for (c, failed) in &rows {
            let duration = c.ended_at_ms.map(|e| e - c.started_at_ms);
            let opt = |v: Option<String>| v.unwrap_or_default();
            let fields = [
                c.id.to_string(),
                csv_field(&c.call_id),
                c.started_at_ms.to_string(),
                opt(c.ended_at_ms.map(|v| v.to_string())),
                opt(duration.map(|v| v.to_string())),
                csv_field(&c.from_uri),
                csv_field(&c.to_uri),
                csv_field(&c.language),
                csv_field(&opt(c.intent.clone())),
                csv_field(&opt(c.agent.clone())),
                opt(c.contained.map(|v| v.to_string())),
                opt(c.score.map(|v| format!("{v:.1}"))),
                opt(c.passed.map(|v| v.to_string())),
                c.alerts.to_string(),
                csv_field(&failed.join(";")),
                csv_field(&opt(c.end_reason.clone())),
            ];
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        (out, "text/csv; charset=utf-8", "csv")
    } else {
        let calls: Vec<ExportRow> = rows
            .into_iter()
            .map(|(call, failed_rules)| ExportRow { call, failed_rules })
            .collect();
        #[derive(Serialize)]
        struct Export {
            calls: Vec<ExportRow>,
        }
        (
            serde_json::to_string(&Export { calls }).map_err(|_| ApiError::Internal)?,
            "application/json",
            "json",
        )
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"voxgate-calls.{ext}\""),
            ),
            (
                header::HeaderName::from_static("x-voxgate-truncated"),
                truncated.to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked_calendar_days_and_the_end_is_inclusive() {
        assert_eq!(parse_time("1970-01-01", false).ok(), Some(0));
        assert_eq!(parse_time("1970-01-01", true).ok(), Some(86_400_000));
        assert_eq!(
            parse_time("2026-12-05", false).ok(),
            Some(1_796_428_800_000)
        );
        assert_eq!(
            parse_time("2024-02-29", false).ok(),
            Some(1_709_164_800_000)
        );
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "1969-12-31",
            "2026-12",
            "x",
            "2026-04-31",
        ] {
            assert!(parse_time(bad, false).is_err(), "{bad}");
        }
        assert_eq!(
            parse_time("1796428800000", false).ok(),
            Some(1_796_428_800_000)
        );
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(parse_range("bytes=0-5000", 1000), Some((0, 999)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1", 0), None);
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; vx_session=abc; b=2"),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "zz"), None);
    }
}
