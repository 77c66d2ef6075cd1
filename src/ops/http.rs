//! The operations HTTP server (axum): `GET /liveness`, `GET /readiness`, `GET /metrics`.
//! [`router`] builds it without a socket, so tests can drive it with `oneshot`; [`serve`] runs
//! it on a listener until its shutdown future completes.
//!
//! None of these answers depend on Discord or the LLM providers being reachable: they read the
//! health registry, the store and the metrics recorder, all in-process.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use ractor::{ActorCell, ActorStatus};
use serde_json::json;

use super::health::{Health, Phase};
use super::telemetry;
use crate::store::Store;

/// What the endpoints read.
#[derive(Clone)]
pub struct OpsState {
    /// Phase and agents' states.
    pub health: Arc<Health>,
    /// The store, for a read check.
    pub store: Store,
    /// The metrics recorder's handle.
    pub metrics: PrometheusHandle,
    /// The root of the actor tree, once it is spawned (not yet during a restart back-off).
    pub root: Arc<OnceLock<ActorCell>>,
}

impl std::fmt::Debug for OpsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpsState")
    }
}

/// The router of the three endpoints.
pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/liveness", get(liveness))
        .route("/readiness", get(readiness))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: OpsState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "http server failed");
    }
}

/// 200 while the process runs and its actor tree is alive (or not started yet); 503 once the
/// root actor is gone outside a shutdown.
async fn liveness(State(s): State<OpsState>) -> Response {
    let actors = match s.root.get().map(ActorCell::get_status) {
        None => "not started",
        Some(ActorStatus::Stopping | ActorStatus::Stopped) if s.health.phase() != Phase::Stopping => "stopped",
        Some(ActorStatus::Stopping | ActorStatus::Stopped) => "stopping",
        Some(_) => "running",
    };
    let status = if actors == "stopped" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        Json(json!({"alive": status == StatusCode::OK, "actors": actors})),
    )
        .into_response()
}

/// 200 when the store answers and every agent's gateway is connected; 503 otherwise. The JSON
/// body gives each agent's state either way.
async fn readiness(State(s): State<OpsState>) -> Response {
    let store_ok = s.store.check().is_ok();
    let report = s.health.readiness(store_ok);
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// Prometheus text exposition.
async fn metrics(State(s): State<OpsState>) -> Response {
    s.health.publish_breakers(std::time::Instant::now());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        telemetry::render(&s.metrics),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn state() -> (OpsState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let state = OpsState {
            health: Arc::new(Health::new(["Ada"])),
            store: Store::open(dir.path()).unwrap(),
            metrics: telemetry::install(),
            root: Arc::new(OnceLock::new()),
        };
        (state, dir)
    }

    async fn get(state: &OpsState, path: &str) -> (StatusCode, String) {
        let resp = router(state.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn liveness_is_up_before_the_tree_starts() {
        let (s, _dir) = state();
        let (status, body) = get(&s, "/liveness").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("not started"), "{body}");
    }

    #[tokio::test]
    async fn readiness_follows_the_registry() {
        let (s, _dir) = state();
        s.health.set_phase(Phase::Running);
        let (status, body) = get(&s, "/readiness").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains(r#""state":"connecting""#), "{body}");
        s.health.set_gateway("Ada", true);
        let (status, body) = get(&s, "/readiness").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    #[tokio::test]
    async fn metrics_is_prometheus_text() {
        let (s, _dir) = state();
        telemetry::replies_sent("UnitTestAgent", 1);
        let resp = router(s)
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            text.contains(r#"troupe_replies_sent_total{agent="UnitTestAgent"} 1"#),
            "{text}"
        );
    }
}
