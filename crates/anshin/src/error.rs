//! The application's one error type.
//!
//! An [`Error`] has a kind (which decides the HTTP status), a stable snake_case
//! code that clients may match on, a public message that says what happened and
//! what to do, and an optional internal cause that is logged but never sent.
//! No constructor takes user input into the message: card numbers and personal
//! data can therefore never reach an error body.

use std::borrow::Cow;
use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::db::StoreError;
use crate::db::pg_connect::PgUrlError;

/// What went wrong, as far as the caller is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is not well-formed (bad JSON, wrong types): 400.
    BadRequest,
    /// No or an unknown API key: 401.
    Unauthenticated,
    /// The principal's role may not do this: 403.
    Forbidden,
    /// No such resource, or one the caller may not know exists: 404.
    NotFound,
    /// Wrong HTTP method for the path: 405.
    MethodNotAllowed,
    /// The request conflicts with the current state: 409.
    Conflict,
    /// The resource existed but is no longer available: 410.
    Gone,
    /// Body larger than allowed: 413.
    PayloadTooLarge,
    /// Not JSON: 415.
    UnsupportedMediaType,
    /// Well-formed, but a value is invalid: 422.
    Invalid,
    /// Too many requests, or a limit reached: 429.
    TooManyRequests,
    /// An upstream (a card processor) answered badly or could not be reached: 502.
    BadGateway,
    /// A dependency (database) is not available: 503.
    Unavailable,
    /// An upstream (a card processor) did not answer in time: 504.
    GatewayTimeout,
    /// A bug or an unexpected failure: 500.
    Internal,
}

impl ErrorKind {
    /// The HTTP status for this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Gone => StatusCode::GONE,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An application error: kind, stable code, public message, internal cause.
pub struct Error {
    kind: ErrorKind,
    code: &'static str,
    message: Cow<'static, str>,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    retry_after: Option<u64>,
    param: Option<&'static str>,
}

/// Result with the application error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with a code and a public message.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            cause: None,
            retry_after: None,
            param: None,
        }
    }

    /// Names the request field the error is about (its name, never its value).
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// The request field the error is about, if any.
    pub fn param(&self) -> Option<&'static str> {
        self.param
    }

    /// Tells the client when to try again (`Retry-After`, in seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Seconds after which the client may retry, when the answer says so.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// Attaches the internal cause (logged, never sent to the client).
    pub fn with_cause(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// 422 with a field-specific code.
    pub fn invalid(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    /// 404 `not_found`, worded the same whether the resource does not exist or
    /// belongs to someone else, so existence is never confirmed across tenants.
    pub fn not_found(what: &'static str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("no {what} with this id is visible to this API key"),
        )
    }

    /// 403 `forbidden` for a role that may not perform an action.
    pub fn forbidden(action: &'static str) -> Self {
        Self::new(
            ErrorKind::Forbidden,
            "forbidden",
            format!("this API key's role may not {action}"),
        )
    }

    /// 500 with a cause; the public message says nothing about it.
    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::new(
            ErrorKind::Internal,
            "internal",
            "internal error; the server log has the details",
        )
        .with_cause(cause)
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The public message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.kind.status().as_u16(),
            self.message
        )?;
        if let Some(cause) = &self.cause {
            write!(f, " [cause: {cause}]")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::new(
                ErrorKind::Unavailable,
                "storage_unavailable",
                "the database is not reachable; retry later",
            )
            .with_cause(err),
            StoreError::Audit(_) => crate::audit::unavailable().with_cause(err),
            // A configuration error: the message says what to change, and
            // the code is the one a scan or restore URL gets.
            StoreError::BadUrl { code, message } => Self::new(
                ErrorKind::Invalid,
                code,
                format!(
                    "the database URL (--database-url, ANSHIN_DATABASE_URL or database_url in the configuration file) cannot be used: {message}"
                ),
            ),
            _ => Self::internal(err),
        }
    }
}

/// A PostgreSQL URL given on the command line (`anshin scan`, `anshin
/// restore`) that cannot be used: its message says what to change.
impl From<PgUrlError> for Error {
    fn from(err: PgUrlError) -> Self {
        Self::new(ErrorKind::Invalid, err.code(), err.to_string())
    }
}

impl From<anshin_crypto::CryptoError> for Error {
    fn from(err: anshin_crypto::CryptoError) -> Self {
        Self::internal(err)
    }
}

/// JSON body of every error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, for example `invalid_card_number`.
    pub code: &'static str,
    /// What happened and what to do, in English.
    pub message: String,
    /// The request field the error is about (its name, never its value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<&'static str>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        // A sealed vault refusing requests is its normal state, not a failure.
        if status.is_server_error() && self.code != "sealed" {
            tracing::error!(code = self.code, error = ?self, "request failed");
        } else {
            tracing::debug!(code = self.code, status = status.as_u16(), "request refused");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.into_owned(),
                param: self.param,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}
