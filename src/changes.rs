//! Which rollouts changed, told once their changes are durable.
//!
//! Two kinds of listeners hear about changes:
//! - watchers (`WatchRollout`, the examples) subscribe to a broadcast of every change;
//!   one that falls behind is told it lagged and reads its rollout again;
//! - the export feed takes the set of rollouts changed since its last pass. A set
//!   cannot overflow, so a feed that falls behind still offers only what changed. (A
//!   broadcast that lags would leave it offering every rollout ever stored, most of
//!   them evicted and each read back from disk to be offered: work that grows with
//!   every session seen, done exactly when the collector is already behind.)

use std::collections::BTreeSet;
use std::sync::Mutex;
use tokio::sync::{Notify, broadcast};

/// Changes a watcher may fall behind by before it is told it lagged.
const WATCH_CAPACITY: usize = 1024;

pub struct RolloutChanges {
    watchers: broadcast::Sender<String>,
    /// Rollouts changed since the feed last took them (`None`: no feed follows).
    changed: Mutex<Option<BTreeSet<String>>>,
    feed: Notify,
}

impl Default for RolloutChanges {
    fn default() -> Self {
        RolloutChanges {
            watchers: broadcast::channel(WATCH_CAPACITY).0,
            changed: Mutex::new(None),
            feed: Notify::new(),
        }
    }
}

impl RolloutChanges {
    /// Tells every listener that `rollout` changed (its changes are durable).
    pub fn announce(&self, rollout: &str) {
        let _ = self.watchers.send(rollout.to_string());
        let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(changed) = changed.as_mut() {
            changed.insert(rollout.to_string());
            self.feed.notify_one();
        }
    }

    /// Every change from now on (a receiver that falls behind gets `Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.watchers.subscribe()
    }

    /// From now on, changed rollouts are gathered for [`RolloutChanges::take_changed`].
    pub fn follow(&self) {
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_default();
    }

    /// The rollouts changed since the last call (or since [`RolloutChanges::follow`]).
    pub fn take_changed(&self) -> BTreeSet<String> {
        self.changed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Returns once a rollout changed since the last [`RolloutChanges::take_changed`]
    /// (at once if one did meanwhile).
    pub async fn changed(&self) {
        self.feed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_feed_gets_each_changed_rollout_once_however_many_changes() {
        let changes = RolloutChanges::default();
        changes.announce("before-follow");
        changes.follow();
        assert!(changes.take_changed().is_empty());
        let mut watcher = changes.subscribe();
        for _ in 0..WATCH_CAPACITY * 2 {
            changes.announce("a");
            changes.announce("b");
        }
        // The notification was kept for the feed, which was not waiting yet.
        changes.changed().await;
        assert_eq!(
            changes.take_changed().into_iter().collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(changes.take_changed().is_empty());
        assert!(matches!(
            watcher.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
