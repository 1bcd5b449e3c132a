//! A circuit breaker per server: after enough consecutive transient failures the server is
//! left alone for a cool-down, then one probe call decides whether it is back.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{ErrorKind, VirtualminError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls fail at once until the cool-down ends.
    Open,
    /// One probe call is allowed; its result closes or re-opens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// For the `virtualmin_circuit_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the breaker.
    pub failure_threshold: u32,
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn state(&self) -> BreakerState {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        inner.state
    }

    fn refresh(&self, inner: &mut Inner) {
        if inner.state == BreakerState::Open
            && inner
                .opened_at
                .is_some_and(|at| at.elapsed() >= self.config.cool_down)
        {
            inner.state = BreakerState::HalfOpen;
            inner.probe_in_flight = false;
        }
    }

    /// Whether a call may go now; refused calls fail as `RateLimited` without touching the server.
    pub fn admit(&self) -> Result<(), VirtualminError> {
        let mut inner = self.lock();
        self.refresh(&mut inner);
        match inner.state {
            BreakerState::Closed => Ok(()),
            BreakerState::HalfOpen if !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                Ok(())
            }
            BreakerState::HalfOpen | BreakerState::Open => {
                let wait = inner
                    .opened_at
                    .map(|at| self.config.cool_down.saturating_sub(at.elapsed()))
                    .unwrap_or_default();
                Err(VirtualminError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "circuit open after {} consecutive failures; next try in {:.0} s",
                        self.config.failure_threshold,
                        wait.as_secs_f64().ceil()
                    ),
                ))
            }
        }
    }

    /// Records how an admitted call ended. Only transient failures count against the server:
    /// a refusal (not found, invalid) means it answered.
    pub fn record(&self, outcome: Result<(), ErrorKind>) {
        let mut inner = self.lock();
        inner.probe_in_flight = false;
        match outcome {
            Err(ErrorKind::Transient) => {
                inner.consecutive_failures += 1;
                if inner.state == BreakerState::HalfOpen
                    || inner.consecutive_failures >= self.config.failure_threshold
                {
                    inner.state = BreakerState::Open;
                    inner.opened_at = Some(Instant::now());
                }
            }
            _ => {
                inner.consecutive_failures = 0;
                inner.state = BreakerState::Closed;
                inner.opened_at = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_probes_after_the_cool_down() {
        let breaker = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 3,
            cool_down: Duration::from_secs(30),
        });
        for _ in 0..2 {
            breaker.admit().unwrap();
            breaker.record(Err(ErrorKind::Transient));
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        // A refusal is an answer: it resets the count.
        breaker.record(Err(ErrorKind::NotFound));
        for _ in 0..3 {
            breaker.admit().unwrap();
            breaker.record(Err(ErrorKind::Transient));
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let refused = breaker.admit().unwrap_err();
        assert!(refused.message.contains("circuit open"), "{refused}");

        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.admit().unwrap();
        assert!(breaker.admit().is_err(), "one probe at a time");
        breaker.record(Err(ErrorKind::Transient));
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "a failed probe re-opens"
        );

        tokio::time::advance(Duration::from_secs(30)).await;
        breaker.admit().unwrap();
        breaker.record(Ok(()));
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.admit().unwrap();
    }
}
