//! Feeds the exporter from the collector: follows rollout changes and offers each
//! changed rollout's graph to the [`Exporter`], which sends the spans of objects that
//! became complete.
//!
//! Changes are coalesced: a pass offers every rollout that changed since the last one
//! (a set, so a slow pass never makes the next offer more than what changed), and
//! passes are at least [`MIN_PASS_INTERVAL`] apart, so a busy session is reduced
//! once a second (each pass re-reduces it in full), not once per Export request. At
//! start every stored rollout is offered once (the exporter's sent-set keeps that from
//! sending anything twice).
//! Rollouts whose spans the exporter refused (its queue was full) are offered again
//! every [`RETRY_REFUSED_INTERVAL`].

use super::Exporter;
use crate::collector::Collector;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const MIN_PASS_INTERVAL: Duration = Duration::from_millis(1000);
pub const RETRY_REFUSED_INTERVAL: Duration = Duration::from_secs(5);

/// Starts the feed; it makes a last pass and ends when `stop` turns true. The
/// returned counter follows the passes made (the first is the offer of every stored
/// rollout).
pub fn spawn(
    exporter: Arc<Exporter>,
    collector: Arc<Mutex<Collector>>,
    mut stop: watch::Receiver<bool>,
) -> (JoinHandle<()>, watch::Receiver<u64>) {
    let (passes, passes_rx) = watch::channel(0u64);
    let task = tokio::spawn(async move {
        let (changes, mut dirty) = {
            let c = collector.lock().unwrap_or_else(|p| p.into_inner());
            let changes = c.changes();
            changes.follow();
            (
                changes,
                c.rollout_ids().into_iter().collect::<BTreeSet<String>>(),
            )
        };
        let mut refused = BTreeSet::new();
        let mut retry = tokio::time::interval(RETRY_REFUSED_INTERVAL);
        loop {
            let stopping = *stop.borrow();
            dirty.append(&mut changes.take_changed());
            if !dirty.is_empty() {
                let batch = std::mem::take(&mut dirty);
                let (e, c) = (exporter.clone(), collector.clone());
                match tokio::task::spawn_blocking(move || offer_all(&e, &c, batch)).await {
                    Ok(still_refused) => refused.extend(still_refused),
                    Err(err) => tracing::error!(%err, "export feed: offering graphs failed"),
                }
            }
            passes.send_modify(|n| *n += 1);
            if stopping {
                return;
            }
            let pause = tokio::time::sleep(MIN_PASS_INTERVAL);
            tokio::select! {
                _ = changes.changed() => {}
                _ = retry.tick(), if !refused.is_empty() => {
                    dirty.append(&mut refused);
                }
                _ = stop.changed() => continue,
            }
            // Let more changes gather before the next pass.
            tokio::select! {
                _ = pause => {}
                _ = stop.changed() => {}
            }
        }
    });
    (task, passes_rx)
}

/// Offers the graph of each rollout; returns those with spans the exporter refused.
fn offer_all(
    exporter: &Exporter,
    collector: &Mutex<Collector>,
    rollouts: BTreeSet<String>,
) -> Vec<String> {
    // Reduced outside the collector lock: storing goes on meanwhile.
    let graphs = rollouts.iter().filter_map(|id| {
        let snapshot = collector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot(id);
        snapshot.map(|s| s.graph())
    });
    exporter
        .offer_each(graphs)
        .into_iter()
        .filter(|(_, report)| report.refused_spans > 0)
        .map(|(id, _)| id)
        .collect()
}
