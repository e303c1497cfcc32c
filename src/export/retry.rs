//! When to try a failed send again, shared by the span exporter and the forwarder:
//! exponential backoff, or the delay the server asked for (gRPC RetryInfo, HTTP
//! Retry-After), capped.

use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First retry delay; doubles on every failed attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Cap on a delay the server asks for.
    pub max_server_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_server_delay: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based): what the server asked for
    /// (capped), else the backoff.
    pub fn delay(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        match asked {
            Some(d) => d.min(self.max_server_delay),
            None => backoff_delay(attempt, self.initial_backoff, self.max_backoff),
        }
    }
}

/// `initial * 2^attempt`, capped at `max`. Deterministic: no jitter (one sender per
/// collector, nothing to spread).
pub fn backoff_delay(attempt: u32, initial: Duration, max: Duration) -> Duration {
    initial
        .saturating_mul(2u32.saturating_pow(attempt.min(30)))
        .min(max)
}

/// Sleeps `delay`; true if asked to stop meanwhile.
pub async fn wait_or_stop(stop: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let i = Duration::from_millis(500);
        let m = Duration::from_secs(30);
        assert_eq!(backoff_delay(0, i, m), Duration::from_millis(500));
        assert_eq!(backoff_delay(1, i, m), Duration::from_secs(1));
        assert_eq!(backoff_delay(3, i, m), Duration::from_secs(4));
        assert_eq!(backoff_delay(10, i, m), m);
        assert_eq!(backoff_delay(u32::MAX, i, m), m);
    }

    #[test]
    fn the_server_delay_wins_but_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(0, None), Duration::from_millis(500));
        assert_eq!(
            policy.delay(5, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(9999))),
            Duration::from_secs(300)
        );
    }
}
