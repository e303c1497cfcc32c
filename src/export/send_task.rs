//! The background task that sends a durable queue downstream (one per exporter and
//! per forwarder): stopped when its owner is dropped, or gracefully once the queue has
//! drained or a grace period has passed. What is still queued stays on disk.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct SendTask {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SendTask {
    /// Spawns `run`, which must return soon after its stop signal turns true.
    pub fn spawn<F>(run: impl FnOnce(watch::Receiver<bool>) -> F) -> SendTask
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (stop, stop_rx) = watch::channel(false);
        SendTask {
            stop,
            task: Mutex::new(Some(tokio::spawn(run(stop_rx)))),
        }
    }

    /// Waits up to `grace` for `drained`, then stops the task and waits for it.
    pub async fn stop_after(&self, drained: impl Future, grace: Duration) {
        let _ = tokio::time::timeout(grace, drained).await;
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for SendTask {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
