//! Call budgets: Cloudflare allows 1,200 requests per 5 minutes per token and answers a breach
//! by blocking every call of that token for 5 minutes, so drover counts its own calls in a
//! sliding window and waits before it would go over, instead of finding out.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

#[derive(Debug)]
pub struct CallBudget {
    limit: usize,
    window: Duration,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    /// Calls in the window: when each was answered, or `None` while it is in flight. The
    /// provider saw the call somewhere between sending and answer, so a call leaves the window
    /// one window after its answer: never earlier than it leaves the provider's.
    calls: Vec<(u64, Option<Instant>)>,
    next: u64,
    /// Set by a 429: no call goes before this.
    held_until: Option<Instant>,
}

/// A call counted in a budget; [`CallBudget::answered`] starts its time in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetTicket(u64);

impl CallBudget {
    /// At most `limit` calls in any `window`.
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            state: Mutex::default(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Waits until a call fits in the budget, then counts it.
    pub async fn acquire(&self) -> BudgetTicket {
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                let now = Instant::now();
                let window = self.window;
                state
                    .calls
                    .retain(|(_, answered)| answered.is_none_or(|t| t + window > now));
                match state.held_until {
                    Some(until) if until > now => until - now,
                    _ if state.calls.len() < self.limit => {
                        state.next += 1;
                        let ticket = state.next;
                        state.calls.push((ticket, None));
                        return BudgetTicket(ticket);
                    }
                    // Full: wait for the first answered call to leave the window (or, if all
                    // are in flight, a moment for one to be answered).
                    _ => state
                        .calls
                        .iter()
                        .filter_map(|(_, answered)| answered.map(|t| t + window - now))
                        .min()
                        .unwrap_or(Duration::from_millis(10)),
                }
            };
            tracing::debug!(?wait, limit = self.limit, "call budget spent; waiting");
            tokio::time::sleep(wait).await;
        }
    }

    /// The call got its answer (or failed): from now it ages out of the window.
    pub fn answered(&self, ticket: BudgetTicket) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(call) = state.calls.iter_mut().find(|(id, _)| *id == ticket.0) {
            call.1 = Some(now);
        }
    }

    /// The provider said to wait: hold every call until then.
    pub fn hold_for(&self, pause: Duration) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let until = Instant::now() + pause;
        state.held_until = Some(state.held_until.map_or(until, |t| t.max(until)));
    }

    /// Calls counted in the current window.
    pub fn used(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        state
            .calls
            .iter()
            .filter(|(_, answered)| answered.is_none_or(|t| t + self.window > now))
            .count()
    }
}

/// A budget kept outside the process (drover's database), so several drover processes using
/// one token stay under its limit together.
#[async_trait::async_trait]
pub trait SharedBudget: Send + Sync + std::fmt::Debug {
    /// Counts one call if it fits: `Ok(None)` to go now, `Ok(Some(wait))` to try again later.
    async fn reserve(&self) -> Result<Option<Duration>, String>;
}

/// One budget per token, shared by every client in the process that uses the token.
#[derive(Debug, Clone, Default)]
pub struct CallBudgets {
    by_token: Arc<Mutex<HashMap<u64, Arc<CallBudget>>>>,
}

impl CallBudgets {
    pub fn for_token(
        &self,
        token: &SecretString,
        limit: usize,
        window: Duration,
    ) -> Arc<CallBudget> {
        let mut hasher = DefaultHasher::new();
        token.expose_secret().hash(&mut hasher);
        let key = hasher.finish();
        let mut map = self.by_token.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(key)
            .or_insert_with(|| Arc::new(CallBudget::new(limit, window)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_window() {
        let budget = CallBudget::new(10, Duration::from_secs(60));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..35 {
            let ticket = budget.acquire().await;
            budget.answered(ticket);
            times.push(Instant::now() - start);
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u < *t + Duration::from_secs(60))
                .count();
            assert!(
                in_window <= 10,
                "{in_window} calls in the window starting at {t:?}"
            );
        }
        // 35 calls at 10 per minute: the last waits for the fourth window.
        assert_eq!(times[34], Duration::from_secs(180));
        assert_eq!(times[9], Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_every_call_until_it_ends() {
        let budget = CallBudget::new(100, Duration::from_secs(300));
        let start = Instant::now();
        budget.hold_for(Duration::from_secs(30));
        let ticket = budget.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
        assert_eq!(budget.used(), 1);
        budget.answered(ticket);
        assert_eq!(budget.used(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_leaves_the_window_one_window_after_its_answer() {
        let budget = CallBudget::new(1, Duration::from_secs(10));
        let start = Instant::now();
        let first = budget.acquire().await;
        // Answered 4 s after it was sent: the next call waits until 14 s, not 10 s.
        tokio::time::sleep(Duration::from_secs(4)).await;
        budget.answered(first);
        budget.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(14));
    }

    #[test]
    fn tokens_share_one_budget() {
        let budgets = CallBudgets::default();
        let a = budgets.for_token(&SecretString::from("t1"), 5, Duration::from_secs(1));
        let b = budgets.for_token(&SecretString::from("t1"), 5, Duration::from_secs(1));
        let c = budgets.for_token(&SecretString::from("t2"), 5, Duration::from_secs(1));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
