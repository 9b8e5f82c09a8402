//! What an SDK error means for the delivery task (see the module docs of the sink).

use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::sink::remote::{DeliverError, FailureKind};

/// A classified SDK error.
#[derive(Debug)]
pub(super) enum Failure {
    /// `ResourceNotFoundException`.
    NotFound(String),
    /// `InvalidParameterException` or HTTP 413: the service will not take something in
    /// the request (for `PutLogEvents`, most likely one of its events).
    Invalid(String),
    /// Anything else.
    Other(DeliverError),
}

impl Failure {
    pub(super) fn into_error(self, create: bool) -> DeliverError {
        match self {
            Failure::Other(e) => e,
            Failure::Invalid(message) => DeliverError::new(FailureKind::Refused, message),
            Failure::NotFound(message) if create => {
                // Still missing right after it was created.
                DeliverError::new(FailureKind::Unavailable, message)
            }
            Failure::NotFound(message) => DeliverError::new(
                FailureKind::Refused,
                format!("{message} (create = false: the log group and stream must exist)"),
            ),
        }
    }
}

/// Maps an SDK error of `operation` to what the delivery task should do (module docs).
pub(super) fn classify<E>(err: &SdkError<E>, operation: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = format!("{operation}: {}", DisplayErrorContext(err));
    let kind = match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            match ctx.err().code().unwrap_or_default() {
                "ResourceNotFoundException" => return Failure::NotFound(text),
                "InvalidParameterException" => return Failure::Invalid(text),
                _ if status == 413 => return Failure::Invalid(text),
                "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "LimitExceededException" => FailureKind::Throttled,
                "ServiceUnavailableException" | "InternalFailure" | "InternalServerError" => {
                    FailureKind::Unavailable
                }
                _ if status == 429 => FailureKind::Throttled,
                _ if status >= 500 => FailureKind::Unavailable,
                _ => FailureKind::Refused,
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            FailureKind::Unavailable
        }
        // Missing region or credentials, or a request that cannot be built.
        SdkError::ConstructionFailure(_) => FailureKind::Refused,
        _ => FailureKind::Unavailable,
    };
    Failure::Other(DeliverError::new(kind, text))
}

pub(super) fn already_exists<E>(err: &SdkError<E>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(ctx) if ctx.err().code() == Some("ResourceAlreadyExistsException"))
}

/// The most serious of `failures` (refused, unavailable, throttled), saying how many
/// streams failed.
pub(super) fn worst(failures: Vec<DeliverError>) -> Option<DeliverError> {
    let n = failures.len();
    let rank = |k: FailureKind| match k {
        FailureKind::Refused => 0,
        FailureKind::Unavailable => 1,
        FailureKind::Throttled => 2,
    };
    let mut worst = failures.into_iter().min_by_key(|e| rank(e.kind))?;
    if n > 1 {
        worst.message = format!("{} (and {} more failed streams)", worst.message, n - 1);
    }
    Some(worst)
}
