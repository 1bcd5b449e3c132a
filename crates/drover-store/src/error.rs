/// What the store refuses or fails at. Callers decide on the variant, never on the text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },

    /// The request is well-formed but names something that is missing or unusable
    /// (an unknown plan for a new service, say).
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    },

    /// The request collides with the current state (a domain already hosted, a concurrent change).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    },

    /// The change collides with what a unique key already holds (a lost race included).
    #[error("{message}")]
    Duplicate { key: UniqueKey, message: String },

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

/// A unique key of drover's data, named so that callers decide on it as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueKey {
    /// drover holds a zone of this name already.
    ZoneName,
    /// The account has its zone already.
    AccountZone,
}

impl UniqueKey {
    /// The code the API answers with.
    pub fn code(self) -> &'static str {
        match self {
            Self::ZoneName => "zone_exists",
            Self::AccountZone => "account_has_zone",
        }
    }

    /// The request field at fault, when there is one.
    pub fn field(self) -> Option<&'static str> {
        match self {
            Self::ZoneName => Some("name"),
            Self::AccountZone => None,
        }
    }
}

impl StoreError {
    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }

    pub(crate) fn conflict(
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    ) -> Self {
        Self::Conflict {
            code,
            field,
            message,
        }
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
