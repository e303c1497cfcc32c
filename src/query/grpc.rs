//! The gRPC RolloutService: list, get, and watch a rollout's graph as it changes.

use super::summary::summarize;
use crate::collector::Collector;
use crate::proto::rollout_service_server::{RolloutService, RolloutServiceServer};
use crate::proto::{
    GetRolloutRequest, ListRolloutsRequest, ListRolloutsResponse, Rollout, WatchRolloutRequest,
};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct RolloutQuery {
    pub collector: Arc<Mutex<Collector>>,
    /// Turns true at shutdown: open WatchRollout streams then end with UNAVAILABLE.
    stop: Option<watch::Receiver<bool>>,
}

impl RolloutQuery {
    pub fn new(collector: Arc<Mutex<Collector>>) -> RolloutQuery {
        RolloutQuery {
            collector,
            stop: None,
        }
    }

    /// WatchRollout streams end once `stop` turns true (or its sender is gone).
    pub fn with_stop(mut self, stop: watch::Receiver<bool>) -> RolloutQuery {
        self.stop = Some(stop);
        self
    }

    pub fn rollout(&self, id: &str) -> Option<Rollout> {
        let graph = self
            .collector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .graph(id)?;
        Some(Rollout {
            summary: Some(summarize(&graph)),
            graph_json: serde_json::to_string(&*graph).unwrap_or_default(),
        })
    }

    pub fn list(&self) -> Vec<crate::proto::RolloutSummary> {
        let mut collector = self.collector.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<_> = collector
            .rollout_ids()
            .into_iter()
            .filter_map(|id| collector.summary(&id))
            .collect();
        rows.sort_by_key(|s| std::cmp::Reverse(s.last_seen_unix_ms));
        rows
    }

    pub fn server(self) -> RolloutServiceServer<RolloutQuery> {
        RolloutServiceServer::new(self)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<Rollout, Status>> + Send>>;

#[tonic::async_trait]
impl RolloutService for RolloutQuery {
    async fn list_rollouts(
        &self,
        _: Request<ListRolloutsRequest>,
    ) -> Result<Response<ListRolloutsResponse>, Status> {
        Ok(Response::new(ListRolloutsResponse {
            rollouts: self.list(),
        }))
    }

    async fn get_rollout(
        &self,
        request: Request<GetRolloutRequest>,
    ) -> Result<Response<Rollout>, Status> {
        let id = request.into_inner().rollout_id;
        if id.is_empty() {
            return Err(Status::invalid_argument("rollout_id is required"));
        }
        self.rollout(&id)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no rollout {id}")))
    }

    type WatchRolloutStream = WatchStream;

    async fn watch_rollout(
        &self,
        request: Request<WatchRolloutRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let id = request.into_inner().rollout_id;
        if id.is_empty() {
            return Err(Status::invalid_argument("rollout_id is required"));
        }
        let mut changes = self
            .collector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .subscribe();
        let query = self.clone();
        let mut stop = self.stop.clone();
        let stream = async_stream(move |tx| async move {
            let mut last: Option<String> = None;
            loop {
                if let Some(rollout) = query.rollout(&id)
                    && last.as_deref() != Some(rollout.graph_json.as_str())
                {
                    last = Some(rollout.graph_json.clone());
                    if tx.send(Ok(rollout)).await.is_err() {
                        return;
                    }
                }
                let changed = async {
                    loop {
                        match changes.recv().await {
                            Ok(changed) if changed == id => return true,
                            Ok(_) => continue,
                            Err(RecvError::Lagged(_)) => return true,
                            Err(RecvError::Closed) => return false,
                        }
                    }
                };
                let stopping = async {
                    match stop.as_mut() {
                        Some(stop) => {
                            let _ = stop.wait_for(|s| *s).await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = changed => if !changed { return },
                    _ = stopping => {
                        let bye = Status::unavailable("rollout-collector is shutting down");
                        let _ = tx.send(Err(bye)).await;
                        return;
                    }
                    // The watcher went away: no need to wait for the next change.
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task through a small channel.
fn async_stream<F, Fut>(f: F) -> WatchStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Rollout, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
