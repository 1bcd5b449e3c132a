//! One client per Virtualmin server: its TLS policy, call rate, concurrency cap, circuit
//! breaker, per-class time limits and retries, with every call traced and counted.

use std::time::Duration;

use backon::BackoffBuilder;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use crate::error::{ErrorKind, VirtualminError};
use crate::limit::CallRate;
use crate::reply::{Reply, parse_reply};
use crate::request::{Call, OperationClass, Repeat};
use crate::settings::VirtualminSettings;
use crate::tls::{TlsPolicy, client_config};

/// One call as it went, for a job's record (secrets already masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub server: String,
    pub call: String,
    /// `success`, `partial` (done, but a step the server reported failed), or the error kind.
    pub outcome: String,
    pub message: Option<String>,
    pub started_at: std::time::SystemTime,
    pub duration: Duration,
}

/// Told once when the server refuses the client's login (wrong credentials or a lock-out),
/// so that drover can stop every caller, in every process, from trying again.
pub type LoginRefusedHook = std::sync::Arc<dyn Fn(&VirtualminError) + Send + Sync>;

/// What the calls a task makes are part of: the request they serve and, optionally, a log
/// that collects them (a job's record of its calls).
#[derive(Debug, Clone, Default)]
pub struct CallScope {
    pub correlation_id: String,
    pub log: Option<std::sync::Arc<std::sync::Mutex<Vec<CallRecord>>>>,
}

tokio::task_local! {
    static SCOPE: CallScope;
}

/// Runs `future` with every Virtualmin call it makes tagged with `scope`'s correlation id and
/// collected into its log.
pub async fn in_scope<F: Future>(scope: CallScope, future: F) -> F::Output {
    SCOPE.scope(scope, future).await
}

fn correlation_id() -> String {
    SCOPE
        .try_with(|s| s.correlation_id.clone())
        .unwrap_or_default()
}

fn log_call(record: CallRecord) {
    let _ = SCOPE.try_with(|s| {
        if let Some(log) = &s.log {
            log.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(record);
        }
    });
}

/// Where and how to reach one server.
#[derive(Clone)]
pub struct Endpoint {
    /// The server's name in drover, for logs and metrics.
    pub name: String,
    /// `https://host:port`.
    pub base_url: String,
    pub user: String,
    pub password: SecretString,
    pub tls: TlsPolicy,
    pub rate_qps: f64,
    pub max_concurrency: usize,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("user", &self.user)
            .field("password", &"***")
            .field("tls", &self.tls)
            .field("rate_qps", &self.rate_qps)
            .finish()
    }
}

/// Paces a server's calls across processes: `next_slot` reserves the next free moment for one
/// call and says how long to wait for it. Without one, the client paces its own calls only.
pub trait CallPacer: Send + Sync + std::fmt::Debug {
    fn next_slot(
        &self,
        interval: Duration,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Duration, VirtualminError>> + Send + '_>>;
}

pub struct VirtualminClient {
    endpoint: Endpoint,
    http: reqwest::Client,
    rate: CallRate,
    pacer: Option<std::sync::Arc<dyn CallPacer>>,
    permits: Semaphore,
    /// One program that changes the server at a time (see [`Call::changes_the_server`]).
    change: Semaphore,
    breaker: CircuitBreaker,
    settings: VirtualminSettings,
    /// The server's refusal of this client's login, once it happened: every later call ends
    /// with it at once. Another try with the same credentials would only count as one more
    /// failed login (and lengthen a lock-out).
    login_refused: std::sync::Mutex<Option<VirtualminError>>,
    on_login_refused: Option<LoginRefusedHook>,
    /// Plans made to match on the server, and when (see `ensure_plan`).
    pub(crate) plans_checked: std::sync::Mutex<Vec<(crate::ServerPlan, std::time::Instant)>>,
    /// One plan check at a time, so two jobs do not both create the same plan.
    pub(crate) plan_sync: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for VirtualminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualminClient")
            .field("endpoint", &self.endpoint)
            .field("breaker", &self.breaker.state())
            .field("login_refused", &self.login_refusal())
            .finish_non_exhaustive()
    }
}

impl VirtualminClient {
    pub fn new(
        endpoint: Endpoint,
        settings: &VirtualminSettings,
        breaker: BreakerConfig,
    ) -> Result<Self, VirtualminError> {
        let tls = client_config(&endpoint.tls).map_err(|e| {
            VirtualminError::new(
                ErrorKind::Invalid,
                format!("TLS settings of {}: {e}", endpoint.name),
            )
        })?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(settings.timeouts.connection)
            // remote.cgi closes every connection; keeping none idle avoids stale sockets.
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| VirtualminError::new(ErrorKind::Invalid, format!("HTTP client: {e}")))?;
        if !endpoint.tls.verify && endpoint.tls.pinned_sha256.is_none() {
            tracing::warn!(server = %endpoint.name, "TLS verification is off for this server");
        }
        Ok(Self {
            rate: CallRate::new(endpoint.rate_qps),
            pacer: None,
            permits: Semaphore::new(endpoint.max_concurrency.max(1)),
            change: Semaphore::new(1),
            breaker: CircuitBreaker::new(breaker),
            settings: settings.clone(),
            http,
            endpoint,
            login_refused: std::sync::Mutex::new(None),
            on_login_refused: None,
            plans_checked: std::sync::Mutex::new(Vec::new()),
            plan_sync: tokio::sync::Mutex::new(()),
        })
    }

    /// Calls `hook` when the server refuses this client's login.
    pub fn on_login_refused(mut self, hook: LoginRefusedHook) -> Self {
        self.on_login_refused = Some(hook);
        self
    }

    /// The refusal that stopped this client, if its login was refused.
    pub fn login_refusal(&self) -> Option<VirtualminError> {
        self.login_refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Paces calls through `pacer` (shared by every process) instead of this client alone.
    pub fn with_pacer(mut self, pacer: std::sync::Arc<dyn CallPacer>) -> Self {
        self.pacer = Some(pacer);
        self
    }

    pub fn server(&self) -> &str {
        &self.endpoint.name
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn timeout(&self, class: OperationClass) -> Duration {
        let t = &self.settings.timeouts;
        match class {
            OperationClass::Read | OperationClass::Write => t.api_request,
            OperationClass::Provisioning => t.provisioning,
            OperationClass::Backup => t.backup,
            OperationClass::HealthCheck => t.health_check,
            OperationClass::DomainSync => t.domain_sync,
            OperationClass::UsageSync => t.usage_sync,
        }
    }

    /// Makes the call, retrying transient failures with exponential backoff and jitter when
    /// the call is safe to repeat. Auth and lock-out are never retried.
    pub async fn call(&self, call: &Call) -> Result<Reply, VirtualminError> {
        let body = call.form_body()?;
        retrying(&self.settings, call.repeat(), || self.attempt(call, &body)).await
    }

    /// One try: breaker, rate, concurrency cap, then the request.
    async fn attempt(&self, call: &Call, body: &str) -> Result<Reply, VirtualminError> {
        let span = tracing::info_span!(
            "virtualmin_call",
            server = %self.endpoint.name,
            program = call.program(),
            correlation_id = %correlation_id(),
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        async {
            if let Some(refused) = self.login_refusal() {
                return Err(VirtualminError::new(
                    refused.kind,
                    format!(
                        "not called: the server refused drover's login ({}); fix its \
                         credentials, or let drover try again",
                        refused.message
                    ),
                ));
            }
            self.breaker
                .admit()
                .inspect_err(|e| self.count(call, Err(e), Duration::ZERO))?;
            // The permit first: a call that got its moment must not then queue for a permit,
            // or it would arrive late, bunched with the calls after it.
            let shutting_down =
                |_| VirtualminError::new(ErrorKind::Transient, "the client is shutting down");
            let _change = match call.changes_the_server() {
                true => Some(self.change.acquire().await.map_err(shutting_down)?),
                false => None,
            };
            let _permit = self.permits.acquire().await.map_err(shutting_down)?;
            match &self.pacer {
                Some(pacer) => {
                    // Slots 3 % wider than the rate: calls paced by several processes arrive
                    // with a little jitter, and the server must never see more than its rate.
                    let interval =
                        Duration::from_secs_f64(1.03 / self.endpoint.rate_qps.max(0.001));
                    tokio::time::sleep(pacer.next_slot(interval).await?).await;
                }
                None => self.rate.wait().await,
            }
            let started_at = std::time::SystemTime::now();
            let started = tokio::time::Instant::now();
            let result = match call.hidden_in_answers() {
                false => self.send(call, body).await,
                true => scrubbed(call, self.send(call, body).await),
            };
            let elapsed = started.elapsed();
            self.breaker
                .record(result.as_ref().map(|_| ()).map_err(|e| e.kind));
            self.count(call, result.as_ref().map(|_| ()), elapsed);
            let span = tracing::Span::current();
            span.record("outcome", outcome_label(result.as_ref().map(|_| ())));
            span.record("duration_ms", elapsed.as_millis() as u64);
            match &result {
                Ok(_) => tracing::info!(call = %call, "virtualmin call succeeded"),
                // "Does not exist", "exists already": answers drover asks for (an existence
                // check before a create, a create made before), not trouble.
                Err(e) if e.kind.is_an_answer() => {
                    tracing::info!(call = %call, answer = %e, "virtualmin call answered")
                }
                Err(e) => tracing::warn!(call = %call, error = %e, "virtualmin call failed"),
            }
            let (outcome, message) = match &result {
                Ok(reply) if !reply.step_failures.is_empty() => {
                    tracing::warn!(call = %call, failed = ?reply.step_failures, "a step failed");
                    ("partial", Some(reply.step_failures.join("; ")))
                }
                Ok(reply) => {
                    if !reply.warnings.is_empty() {
                        tracing::debug!(call = %call, warnings = ?reply.warnings, "the server warned");
                    }
                    ("success", None)
                }
                Err(e) => (e.kind.as_str(), Some(e.message.clone())),
            };
            log_call(CallRecord {
                server: self.endpoint.name.clone(),
                call: call.to_string(),
                outcome: outcome.to_owned(),
                message,
                started_at,
                duration: elapsed,
            });
            result
        }
        .instrument(span)
        .await
    }

    async fn send(&self, call: &Call, body: &str) -> Result<Reply, VirtualminError> {
        let url = format!(
            "{}/virtual-server/remote.cgi",
            self.endpoint.base_url.trim_end_matches('/')
        );
        let timeout = self.timeout(call.operation_class());
        let response = self
            .http
            .post(url)
            .basic_auth(
                &self.endpoint.user,
                Some(self.endpoint.password.expose_secret()),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .timeout(timeout)
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| transport_error(&e, timeout))?;
        let status = response.status().as_u16();
        // Decided on the status line alone: Webmin's lock-out answer (403) has no length and
        // ends without a TLS close_notify, so reading its body ends in an unexpected EOF that
        // would look like a network failure (and be retried into a longer block). Only a 200
        // carries an answer worth reading.
        if status != 200 {
            drop(response);
            let refused = parse_reply(status, Vec::new());
            if matches!(status, 401 | 403)
                && let Err(e) = &refused
            {
                self.refuse_login(e);
            }
            return refused;
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(&e, timeout))?;
        parse_reply(status, bytes.into())
    }

    /// The server refused the login itself (HTTP 401 or 403, not a program's "not allowed"):
    /// no call of this client goes out again, and the hook is told once.
    fn refuse_login(&self, error: &VirtualminError) {
        let first = self
            .login_refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(error.clone())
            .is_none();
        if first && let Some(hook) = &self.on_login_refused {
            hook(error);
        }
    }

    fn count(&self, call: &Call, result: Result<(), &VirtualminError>, elapsed: Duration) {
        let labels = [
            ("server", self.endpoint.name.clone()),
            ("program", call.program().to_owned()),
            ("outcome", outcome_label(result).to_owned()),
        ];
        metrics::counter!("drover_virtualmin_requests_total", &labels).increment(1);
        metrics::histogram!("drover_virtualmin_request_duration_seconds", &labels)
            .record(elapsed.as_secs_f64());
        metrics::gauge!("drover_virtualmin_circuit_state", "server" => self.endpoint.name.clone())
            .set(self.breaker.state().as_gauge());
    }
}

/// The answer with the call's secrets taken out of every text the server sent back.
fn scrubbed(call: &Call, result: Result<Reply, VirtualminError>) -> Result<Reply, VirtualminError> {
    let scrub_all = |texts: Vec<String>| texts.iter().map(|t| call.scrub(t)).collect();
    match result {
        Ok(reply) => Ok(Reply {
            output: call.scrub(&reply.output),
            step_failures: scrub_all(reply.step_failures),
            warnings: scrub_all(reply.warnings),
            ..reply
        }),
        Err(mut e) => {
            e.message = call.scrub(&e.message);
            e.output = e.output.map(|o| call.scrub(&o));
            Err(e)
        }
    }
}

/// The backoff between tries: exponential from `retry_delay`, with jitter, at most
/// `max_retries` of them.
pub(crate) fn retry_delays(settings: &VirtualminSettings) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(settings.retry_delay)
        .with_max_delay(settings.retry_delay * 16)
        .with_max_times(settings.max_retries as usize)
        .with_jitter()
        .build()
}

/// Runs `attempt` until it succeeds, fails for good, or the delays run out. Only retryable
/// kinds of failure are tried again, and only when `safe`.
pub(crate) async fn retrying<F, Fut>(
    settings: &VirtualminSettings,
    repeat: Repeat,
    mut attempt: F,
) -> Result<Reply, VirtualminError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Reply, VirtualminError>>,
{
    let mut delays = retry_delays(settings);
    loop {
        match attempt().await {
            Err(e) if e.kind.is_retryable() && repeat.allows(&e) => match delays.next() {
                Some(delay) => {
                    tracing::info!(error = %e, ?delay, "retrying");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(e),
            },
            other => return other,
        }
    }
}

fn outcome_label<E: std::borrow::Borrow<VirtualminError>>(result: Result<(), E>) -> &'static str {
    match result {
        Ok(()) => "success",
        Err(e) => e.borrow().kind.as_str(),
    }
}

/// A failure below HTTP: TLS refusals are final; timeouts and broken connections may pass.
fn transport_error(error: &reqwest::Error, timeout: Duration) -> VirtualminError {
    if let Some(tls) = find_tls_error(error) {
        return VirtualminError::new(ErrorKind::Protocol, format!("TLS: {tls}"));
    }
    if error.is_timeout() && !error.is_connect() {
        VirtualminError::unanswered(format!("no answer within {} s", timeout.as_secs_f64()))
    } else {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(e) = source {
            message = format!("{message}: {e}");
            source = e.source();
        }
        VirtualminError::new(ErrorKind::Transient, message)
    }
}

/// The rustls error behind a failed connection, however deep. An io::Error hides the error it
/// wraps from `source()`, so those are opened with `get_ref`.
fn find_tls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return find_tls_error(inner);
    }
    error.source().and_then(find_tls_error)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn settings() -> VirtualminSettings {
        VirtualminSettings {
            retry_delay: Duration::from_secs(5),
            max_retries: 3,
            ..VirtualminSettings::default()
        }
    }

    async fn run(
        repeat: Repeat,
        kinds: &[ErrorKind],
    ) -> (Result<Reply, VirtualminError>, u32, Duration) {
        let errors: Vec<_> = kinds
            .iter()
            .map(|k| VirtualminError::new(*k, "x"))
            .collect();
        run_errors(repeat, &errors).await
    }

    async fn run_errors(
        repeat: Repeat,
        errors: &[VirtualminError],
    ) -> (Result<Reply, VirtualminError>, u32, Duration) {
        let tries = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let result = retrying(&settings(), repeat, || {
            let n = tries.fetch_add(1, Ordering::SeqCst) as usize;
            let outcome = errors.get(n).cloned();
            async move { outcome.map_or(Ok(Reply::default()), Err) }
        })
        .await;
        (result, tries.load(Ordering::SeqCst), start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_delays() {
        let (result, tries, waited) = run(
            Repeat::Always,
            &[ErrorKind::Transient, ErrorKind::Transient],
        )
        .await;
        assert!(result.is_ok());
        assert_eq!(tries, 3);
        // Two waits: at least 5 s and 10 s, at most double that with jitter.
        assert!(
            waited >= Duration::from_secs(15) && waited <= Duration::from_secs(30),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_maximum() {
        let (result, tries, _) = run(Repeat::Always, &[ErrorKind::Transient; 10]).await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::Transient);
        assert_eq!(tries, 4, "one try and three retries");
    }

    #[tokio::test(start_paused = true)]
    async fn auth_lock_out_and_unsafe_calls_are_never_retried() {
        for kind in [
            ErrorKind::Auth,
            ErrorKind::LockedOut,
            ErrorKind::Invalid,
            ErrorKind::NotFound,
        ] {
            let (_, tries, waited) = run(Repeat::Always, &[kind]).await;
            assert_eq!((tries, waited), (1, Duration::ZERO), "{kind}");
        }
        let (_, tries, _) = run(Repeat::Never, &[ErrorKind::Transient]).await;
        assert_eq!(tries, 1, "a call that is not safe to repeat is tried once");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idempotent_write_is_repeated_only_after_an_answer() {
        let answered = VirtualminError::new(ErrorKind::Transient, "DBI connect failed");
        let (result, tries, _) = run_errors(Repeat::WhenAnswered, &[answered]).await;
        assert!(result.is_ok());
        assert_eq!(tries, 2, "the server said it failed: sending again is safe");

        // Still running on the server, perhaps: a second would queue behind it.
        let silent = VirtualminError::unanswered("no answer within 30 s");
        let (result, tries, _) =
            run_errors(Repeat::WhenAnswered, std::slice::from_ref(&silent)).await;
        assert!(result.unwrap_err().unanswered);
        assert_eq!(tries, 1);
        let (result, tries, _) = run_errors(Repeat::Always, &[silent]).await;
        assert!(result.is_ok(), "a read is asked again");
        assert_eq!(tries, 2);
    }
}
