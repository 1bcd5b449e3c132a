//! The one error shape of the HTTP API: `{"error": {"code", "message", "field"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use drover_core::{MoveRefusal, ServerRefusal};
use drover_store::{Conflict, Reference, StoreError, UniqueKey};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable identifier to decide on, like `duplicate_domain` or `illegal_transition`.
    code: &'static str,
    /// What was wrong and what is accepted, for people.
    message: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => Self::not_found(error.to_string()),
            StoreError::UnknownReference { reference, message } => {
                let (code, field) = match reference {
                    Reference::Customer => ("unknown_customer", "customer_id"),
                    Reference::Plan => ("unknown_plan", "plan_id"),
                    Reference::DnsProvider => ("unknown_provider", "providers"),
                };
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
            }
            StoreError::Duplicate { key, message } => {
                let (code, field) = match key {
                    UniqueKey::Domain => ("duplicate_domain", Some("domain")),
                    UniqueKey::CustomerExternalRef => {
                        ("duplicate_external_ref", Some("external_ref"))
                    }
                    UniqueKey::Name => ("duplicate_name", Some("name")),
                    UniqueKey::ServerAddress => ("duplicate_server_address", Some("hostname")),
                    UniqueKey::DnsProviderName => ("provider_exists", Some("name")),
                    UniqueKey::ZoneName => ("zone_exists", Some("name")),
                    UniqueKey::MailboxName => ("mailbox_exists", Some("name")),
                    UniqueKey::DatabaseName => ("database_exists", Some("name")),
                };
                let error = Self::new(StatusCode::CONFLICT, code, message);
                match field {
                    Some(field) => error.with_field(field),
                    None => error,
                }
            }
            StoreError::Conflict { conflict, message } => {
                let code = match conflict {
                    Conflict::ConcurrentChange => "concurrent_change",
                    Conflict::AlreadyPlaced => "already_placed",
                    Conflict::NoFreeUsername => {
                        return Self::new(StatusCode::CONFLICT, "no_free_username", message)
                            .with_field("domain");
                    }
                    Conflict::SyncUnderWay => "sync_under_way",
                    // The same key for another request is a client's mistake, not a state.
                    Conflict::IdempotencyKeyReused => {
                        return Self::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "idempotency_key_reused",
                            message,
                        );
                    }
                    Conflict::IdempotentRequestInProgress => "idempotent_request_in_progress",
                    Conflict::NoQueueYet => "no_queue_yet",
                    Conflict::KeyRotated => "key_rotated",
                    Conflict::JobWaiting => "job_waiting",
                    Conflict::InUse => "in_use",
                    Conflict::Paused => "paused",
                };
                Self::new(StatusCode::CONFLICT, code, message)
            }
            StoreError::Rule(rule) => rule.into(),
            other => {
                tracing::error!(error = %other, "request failed inside drover");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "drover could not complete the request; the error is in its log under this \
                     request's correlation id",
                )
            }
        }
    }
}

impl From<crate::commands::Error> for ApiError {
    fn from(error: crate::commands::Error) -> Self {
        match error {
            crate::commands::Error::Rule(rule) => rule.into(),
            crate::commands::Error::Store(store) => store.into(),
        }
    }
}

impl From<drover_core::Error> for ApiError {
    fn from(error: drover_core::Error) -> Self {
        use drover_core::Error::*;
        let message = error.to_string();
        match error {
            InvalidDomain { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_domain", message)
                    .with_field("domain")
            }
            InvalidValue { what, .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
                    .with_field(what.replace(' ', "_"))
            }
            InvalidSecret { what, .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", message)
                    .with_field(what.replace(' ', "_"))
            }
            IllegalTransition { .. } => {
                Self::new(StatusCode::CONFLICT, "illegal_transition", message)
            }
            ConfirmationMismatch { what, .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "confirmation_mismatch",
                message,
            )
            .with_field(match what {
                "name" => "confirm_name",
                "zone name" => "confirm_zone",
                "mailbox name" => "confirm_name",
                _ => "confirm_domain",
            }),
            LastOperatorToken { .. } => {
                Self::new(StatusCode::CONFLICT, "last_operator_token", message)
            }
            ZoneDeleting { .. } => Self::new(StatusCode::CONFLICT, "zone_deleting", message),
            PlanFixed { .. } => Self::new(StatusCode::CONFLICT, "service_terminated", message),
            BackupRefused { .. } => Self::new(StatusCode::CONFLICT, "backup_refused", message),
            RestoreRefused { .. } => Self::new(StatusCode::CONFLICT, "restore_refused", message),
            DestinationChangeRefused { .. } => {
                Self::new(StatusCode::CONFLICT, "destination_change_refused", message)
            }
            ContentWouldStay { .. } => {
                Self::new(StatusCode::CONFLICT, "content_would_stay", message)
                    .with_field("without_content")
            }
            PlanTooSmall { .. } | PlanEditTooSmall { .. } => {
                Self::new(StatusCode::CONFLICT, "plan_too_small", message)
            }
            LoginLinkGone { .. } => Self::new(StatusCode::GONE, "login_link_gone", message),
            CertificateRefused { .. } => {
                Self::new(StatusCode::CONFLICT, "certificate_refused", message)
            }
            AccountDeleted { .. } => Self::new(StatusCode::CONFLICT, "account_deleted", message),
            OverLimit { .. } => Self::new(StatusCode::CONFLICT, "over_limit", message),
            FeatureMissing { .. } => Self::new(StatusCode::CONFLICT, "feature_missing", message),
            ResourceDeleting { .. } => {
                Self::new(StatusCode::CONFLICT, "resource_deleting", message)
            }
            AdoptionRefused { .. } => Self::new(StatusCode::CONFLICT, "adoption_refused", message),
            ServerRefused(refusal) => {
                let code = match refusal {
                    ServerRefusal::Decommissioned { .. } => "server_decommissioned",
                    ServerRefusal::NotEmpty { .. } => "server_not_empty",
                    ServerRefusal::NoSshAccess { .. } => "no_ssh_access",
                    ServerRefusal::NotInBreakGlass { .. } => "not_in_break_glass",
                };
                Self::new(StatusCode::CONFLICT, code, message)
            }
            MoveRefused(refusal) => {
                let code = match refusal {
                    MoveRefusal::UnderWay { .. } => {
                        return Self::new(StatusCode::CONFLICT, "migration_under_way", message);
                    }
                    MoveRefusal::NotPlaced { .. } => "not_placed",
                    MoveRefusal::NotActive { .. } => "not_active",
                    MoveRefusal::SameServer { .. } => "same_server",
                    MoveRefusal::TargetUnusable { .. } => "target_unusable",
                    MoveRefusal::NoPassword { .. } => "no_password",
                    MoveRefusal::NotMoving { .. } => "no_migration",
                };
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"drover\""),
            );
        }
        response
    }
}

pub async fn no_such_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}; the API is described at /api/v1/openapi.json",
        uri.path()
    ))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; see /api/v1/openapi.json",
            uri.path()
        ),
    )
}
