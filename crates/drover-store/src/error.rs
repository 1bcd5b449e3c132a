/// What the store refuses or fails at. Callers decide on the variant, never on the text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },

    /// The change names a record that does not exist (the plan of a new service, say).
    #[error("{message}")]
    UnknownReference {
        reference: Reference,
        message: String,
    },

    /// The change collides with what a unique key already holds (a lost race included).
    #[error("{message}")]
    Duplicate { key: UniqueKey, message: String },

    /// The change collides with the state it found (a concurrent change, a job under way).
    #[error("{message}")]
    Conflict { conflict: Conflict, message: String },

    /// A rule of the domain refused the change (an illegal service move, an invalid value).
    #[error(transparent)]
    Rule(#[from] drover_core::Error),

    #[error("configuration: {0}")]
    Config(String),

    #[error("database: {0}")]
    Database(#[from] sqlx::Error),

    #[error("database schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    #[error("job queue: {0}")]
    Queue(#[from] riverqueue::Error),

    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

/// A record another one refers to, named so that callers decide on it as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// The customer of a new service.
    Customer,
    /// The plan of a new service or of a plan change.
    Plan,
    /// A provider a zone is to be served by.
    DnsProvider,
}

/// A unique key of drover's data, named so that callers decide on it as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueKey {
    /// A domain is hosted once.
    Domain,
    /// A customer's reference in the billing system.
    CustomerExternalRef,
    /// The name of a plan, a server or a customer.
    Name,
    /// A server's hostname and port.
    ServerAddress,
    /// The name of a DNS provider.
    DnsProviderName,
    /// drover holds a zone of this name already.
    ZoneName,
    /// The account has a mailbox of this name.
    MailboxName,
    /// A database of this name is recorded already (names are one namespace per server).
    DatabaseName,
}

/// What a change found that stops it now; sending it again later may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The record changed between reading and writing it.
    ConcurrentChange,
    /// The account is on a server already.
    AlreadyPlaced,
    /// Every unix user name derived from the domain is taken.
    NoFreeUsername,
    /// A forced sync waits for the sync of the zone that is under way.
    SyncUnderWay,
    /// An Idempotency-Key came back with a different request.
    IdempotencyKeyReused,
    /// The first request of an Idempotency-Key still runs.
    IdempotentRequestInProgress,
    /// A job of the same kind waits for the same account already.
    JobWaiting,
    /// The job queue has not been created yet (no worker has run).
    NoQueueYet,
    /// A password sealed with a key the database no longer records.
    KeyRotated,
    /// Other records still refer to it.
    InUse,
    /// It is paused: resume it first.
    Paused,
}

impl StoreError {
    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }

    pub(crate) fn conflict(conflict: Conflict, message: String) -> Self {
        Self::Conflict { conflict, message }
    }

    pub(crate) fn duplicate(key: UniqueKey, message: String) -> Self {
        Self::Duplicate { key, message }
    }

    pub(crate) fn unknown(reference: Reference, message: String) -> Self {
        Self::UnknownReference { reference, message }
    }
}

/// The constraint (PostgreSQL) or message (SQLite) of a unique violation, if that is what
/// `error` is; lets callers turn a lost race into a conflict.
pub(crate) fn unique_violation(error: &sqlx::Error) -> Option<String> {
    let db = error.as_database_error()?;
    db.is_unique_violation().then(|| {
        db.constraint()
            .map_or_else(|| db.message().to_owned(), str::to_owned)
    })
}
