//! The per-server call rate: a token bucket (governor) on Tokio's clock, so tests can pause time.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// Governor's clock, read from Tokio's (which `tokio::time::pause` controls).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// At most `qps` calls per second, no bursts beyond one.
#[derive(Debug)]
pub struct CallRate {
    limiter: RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>,
}

impl CallRate {
    pub fn new(qps: f64) -> Self {
        let qps = if qps.is_finite() && qps > 0.0 {
            qps
        } else {
            1.0
        };
        let period = Duration::from_secs_f64(1.0 / qps);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::direct_with_clock(quota, TokioClock),
        }
    }

    /// Waits until the next call may go.
    pub async fn wait(&self) {
        while let Err(not_until) = self.limiter.check() {
            tokio::time::sleep(not_until.wait_time_from(TokioClock.now())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_at_the_rate() {
        let rate = CallRate::new(2.0);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            rate.wait().await;
        }
        // The first goes at once, then one every 500 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(2000));
    }
}
