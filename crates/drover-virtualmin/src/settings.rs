use std::time::Duration;

use drover_core::CertFingerprint;

/// Fleet-wide defaults for talking to Virtualmin servers; a server's own record may override
/// TLS and rate settings. Names follow the `VIRTUALMIN_*` environment variables.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualminSettings {
    /// `VIRTUALMIN_REQUEST_TIMEOUT`: the default for a call with no class of its own.
    pub request_timeout: Duration,
    /// `VIRTUALMIN_MAX_RETRIES`: retries of a safe call after a transient failure.
    pub max_retries: u32,
    /// `VIRTUALMIN_RETRY_DELAY`: the first backoff delay; later ones grow from it.
    pub retry_delay: Duration,
    /// `VIRTUALMIN_RATE_QPS`: calls per second per server.
    pub rate_qps: f64,
    /// `VIRTUALMIN_SSL_VERIFY`: verify server certificates (on unless a test says otherwise).
    pub ssl_verify: bool,
    /// `VIRTUALMIN_PINNED_CERT_SHA256`: a certificate fingerprint every server must present.
    pub pinned_cert_sha256: Option<CertFingerprint>,
    /// `VIRTUALMIN_AUTO_PROVISIONING_ENABLED`: off stops all provisioning (jobs wait).
    pub auto_provisioning_enabled: bool,
    pub timeouts: Timeouts,
}

/// Time limits per class of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `VIRTUALMIN_API_REQUEST_TIMEOUT`
    pub api_request: Duration,
    /// `VIRTUALMIN_API_HEALTH_CHECK_TIMEOUT`
    pub health_check: Duration,
    /// `VIRTUALMIN_API_BACKUP_TIMEOUT`
    pub backup: Duration,
    /// `VIRTUALMIN_API_BULK_TIMEOUT`
    pub bulk: Duration,
    /// `VIRTUALMIN_CONNECTION_TIMEOUT`
    pub connection: Duration,
    /// `VIRTUALMIN_PROVISIONING_TIMEOUT`
    pub provisioning: Duration,
    /// `VIRTUALMIN_DOMAIN_SYNC_TIMEOUT`
    pub domain_sync: Duration,
    /// `VIRTUALMIN_USAGE_SYNC_TIMEOUT`
    pub usage_sync: Duration,
}

impl Default for VirtualminSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_delay: Duration::from_secs(5),
            rate_qps: 2.0,
            ssl_verify: true,
            pinned_cert_sha256: None,
            auto_provisioning_enabled: true,
            timeouts: Timeouts::default(),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            api_request: Duration::from_secs(30),
            health_check: Duration::from_secs(10),
            backup: Duration::from_secs(300),
            bulk: Duration::from_secs(600),
            connection: Duration::from_secs(15),
            provisioning: Duration::from_secs(180),
            domain_sync: Duration::from_secs(120),
            usage_sync: Duration::from_secs(60),
        }
    }
}
