//! The HTTP API: health, metrics, call records and recordings.
//!
//! Reads go to their own SQLite connection on a blocking thread (WAL lets them run beside the writer).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use voxgate_qa::{CallFilter, Store};

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub db_path: PathBuf,
    pub metrics: Arc<Metrics>,
    pub hw: Arc<voxgate_hw::HwInfo>,
    pub max_calls: usize,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/calls", get(list_calls))
        .route("/api/v1/calls/{id}", get(get_call))
        .route("/api/v1/calls/{id}/recording", get(get_recording))
        .with_state(state)
}

#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("not found")]
    NotFound,
    #[error("storage error: {0}")]
    Store(#[from] voxgate_qa::StoreError),
    #[error("internal error")]
    Join,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Store(_) | ApiError::Join => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "API request failed");
        }
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

async fn with_store<T: Send + 'static>(
    path: PathBuf,
    f: impl FnOnce(&Store) -> Result<T, voxgate_qa::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&path)?;
        f(&store)
    })
    .await
    .map_err(|_| ApiError::Join)?
    .map_err(ApiError::from)
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

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

#[derive(Deserialize)]
struct ListQuery {
    call_id: Option<String>,
    active: Option<bool>,
    #[serde(default)]
    limit: u32,
    #[serde(default)]
    offset: u32,
}

async fn list_calls(
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = CallFilter {
        call_id: q.call_id,
        active: q.active,
        limit: q.limit,
        offset: q.offset,
    };
    let calls = with_store(s.db_path, move |st| st.list_calls(&filter)).await?;
    Ok(Json(serde_json::json!({ "calls": calls })))
}

async fn get_call(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let rec = with_store(s.db_path, move |st| st.get_call(id)).await?;
    let rec = rec.ok_or(ApiError::NotFound)?;
    let mut v = serde_json::to_value(&rec).map_err(|_| ApiError::Join)?;
    if rec.recording_path.is_some() {
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "recording_url".into(),
                format!("/api/v1/calls/{id}/recording").into(),
            );
        }
    }
    Ok(Json(v))
}

async fn get_recording(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let rec = with_store(s.db_path, move |st| st.get_call(id)).await?;
    let path = rec
        .and_then(|r| r.recording_path)
        .ok_or(ApiError::NotFound)?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"call-{id}.wav\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}
