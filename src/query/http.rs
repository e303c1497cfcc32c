//! The HTTP JSON query API: GET /api/rollouts and GET /api/rollouts/{id}.

use super::grpc::RolloutQuery;
use super::summary::summary_json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn router(query: RolloutQuery) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/rollouts", get(list))
        .route("/api/rollouts/{id}", get(show))
        .with_state(query)
}

async fn list(State(query): State<RolloutQuery>) -> Response {
    let rows: Vec<_> = query.list().iter().map(summary_json).collect();
    axum::Json(rows).into_response()
}

async fn show(State(query): State<RolloutQuery>, Path(id): Path<String>) -> Response {
    match query.rollout(&id) {
        Some(rollout) => (
            [(header::CONTENT_TYPE, "application/json")],
            rollout.graph_json,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no rollout {id}")).into_response(),
    }
}
