//! The API's one error type: a JSON body `{"error": {"code", "message", "rule", "message_zh"}}`
//! and the mapping of every library error to its HTTP status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::accounts::AccountError;
use crate::ledger::LedgerError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    rule: Option<&'static str>,
    /// Seconds for a `Retry-After` header (429, 503 `busy`).
    retry_after: Option<u64>,
    /// More about the error, as `error.details` (e.g. the laggards that
    /// keep a format from being finalized).
    details: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), rule: None, retry_after: None, details: None }
    }

    /// The same error with a `Retry-After` header of `secs` (at least 1).
    pub(crate) fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// The same error with `error.details` (e.g. the centers an override
    /// must name).
    pub(crate) fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The status and the JSON `error` body, for routes that answer errors in a format of their own (Open311).
    pub(crate) fn parts(&self) -> (StatusCode, Value) {
        (self.status, json!({"code": self.code, "message": self.message}))
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A node refusing work it is too busy for (503 `busy`) is doing its
        // job, and a flood of them must not flood the log.
        if self.status.is_server_error() && self.code != "busy" {
            tracing::error!(code = self.code, "{}", self.message);
        }
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(rule) = self.rule {
            body["rule"] = json!(rule);
            // The operator's words, from the one table the console shows too.
            if let Some(zh) = zongzhi_protocol::rules::zh(rule) {
                body["message_zh"] = json!(zh);
            }
        }
        if let Some(details) = self.details {
            body["details"] = details;
        }
        let mut response = (self.status, Json(json!({ "error": body }))).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        } else if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Storage faults and shutdown pass; a client may try again.
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("10"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // The storage engine failed (I/O, a full disk): the request was
            // fine, the node cannot serve it now.
            StoreError::Engine(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", format!("storage: {e}")),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NoSuchCase(c) => ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no case {c}")),
            LedgerError::Rejected(r) => ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: "rule_violation", message: r.message, rule: Some(r.rule), retry_after: None, details: None },
            LedgerError::Invalid(m) => ApiError::bad_request(m),
            LedgerError::Integrity(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "integrity", m),
            LedgerError::Store(e) => e.into(),
            LedgerError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the node is shutting down"),
            LedgerError::AlreadyDone => ApiError::new(StatusCode::CONFLICT, "exists", "already done"),
            LedgerError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            LedgerError::Restoring => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "restoring",
                "this node was restored from a backup and is getting its own records back from its parent before it signs anything (see recovery in /api/health); steps are accepted again once the parent confirms, or after an admin's override (POST /api/admin/recovery)",
            ),
            LedgerError::NeedsFormat(n) => ApiError {
                status: StatusCode::CONFLICT,
                code: "needs_finalization",
                message: format!("{n}: 需要全市节点升级并由市级中心确认升级（finalize）后才能使用此操作"),
                rule: Some("needs-finalization"),
                retry_after: None,
                details: None,
            },
            e @ LedgerError::NeedsUpgrade { .. } => {
                ApiError { status: StatusCode::CONFLICT, code: "needs_upgrade", message: e.to_string(), rule: Some("needs-upgrade"), retry_after: None, details: None }
            }
            LedgerError::WriteFailed(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", format!("the write could not be stored ({m}); nothing was changed, try again")),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::BadCredentials => ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", e.to_string()),
            AccountError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
            AccountError::Disabled(_) => ApiError::new(StatusCode::FORBIDDEN, "disabled", e.to_string()),
            AccountError::WrongPassword => ApiError::new(StatusCode::FORBIDDEN, "wrong_password", e.to_string()),
            AccountError::NoSuchUser(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            AccountError::DisableSelf => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            AccountError::Store(e) => e.into(),
            AccountError::Hash(m) => ApiError::internal(m),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

pub(crate) type ApiResult<T = Json<Value>> = Result<T, ApiError>;
