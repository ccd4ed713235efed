//! The one error type the API returns. Every layer that can fail a request produces an
//! [`Error`]; the API crate maps [`ErrorCode`] to EC2's code string and HTTP status in exactly
//! one place (`corral_api::error`).
//!
//! `message` is what the client sees; `internal` is detail for the log only (paths, commands,
//! underlying errors), never sent on the wire.

use crate::id::IdKind;

/// EC2 error codes Corral produces. Resource-specific codes (`InvalidInstanceID.NotFound`)
/// carry the [`IdKind`] they are about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    // request shape
    InvalidAction,
    MissingAction,
    MissingParameter,
    InvalidParameter,
    InvalidParameterValue,
    InvalidParameterCombination,
    UnknownParameter,
    InvalidFilter,
    DependencyViolation,
    InvalidVpcRange,
    InvalidSubnetRange,
    InvalidSubnetConflict,
    InvalidPermissionDuplicate,
    InvalidPermissionNotFound,
    InvalidGroupReserved,
    InvalidIpAddressInUse,
    InsufficientFreeAddressesInSubnet,
    CannotDelete,
    GatewayNotAttached,
    ResourceAlreadyAssociated,
    RouteAlreadyExists,
    InvalidRouteNotFound,
    AddressLimitExceeded,
    InvalidAddressNotFound,
    InvalidInstanceType,
    TagLimitExceeded,
    /// A quota AWS enforces, with AWS's code for it (`VpcLimitExceeded`, ...).
    LimitExceeded(&'static str),
    InvalidPaginationToken,
    InvalidUserDataMalformed,
    // ids
    /// An id of no kind Corral knows (`InvalidID`).
    InvalidId,
    MalformedId(IdKind),
    NotFound(IdKind),
    Duplicate(IdKind),
    // authentication and authorisation
    MissingAuthenticationToken,
    AuthFailure,
    SignatureDoesNotMatch,
    IncompleteSignature,
    RequestExpired,
    UnauthorizedOperation,
    DryRunOperation,
    // state
    IncorrectInstanceState,
    OperationNotPermitted,
    IdempotentParameterMismatch,
    InvalidKeyFormat,
    InvalidInstanceAttributeValue,
    InvalidAmiNotAvailable,
    InsufficientInstanceCapacity,
    Unsupported,
    // storage and images
    VolumeInUse,
    IncorrectState,
    InvalidVolumeZoneMismatch,
    InvalidSnapshotInUse,
    InvalidAttachmentNotFound,
    InvalidAmiNameDuplicate,
    InvalidAmiNameMalformed,
    InvalidBlockDeviceMapping,
    InvalidZoneNotFound,
    InsufficientVolumeCapacity,
    UnknownVolumeType,
    /// A request body over the server's limit (HTTP 413).
    RequestEntityTooLarge,
    /// The request's body did not arrive in time (HTTP 408).
    RequestTimeout,
    // ours
    InternalError,
    ServiceUnavailable,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    /// Sent to the client.
    pub message: String,
    /// Logged, never sent.
    pub internal: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), internal: None }
    }

    /// An internal failure: the client sees a generic message, the log sees `detail`.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error { code: ErrorCode::InternalError, message: "An internal error has occurred".into(), internal: Some(detail.to_string()) }
    }

    pub fn with_internal(mut self, detail: impl std::fmt::Display) -> Self {
        self.internal = Some(detail.to_string());
        self
    }

    pub fn missing(param: &str) -> Self {
        Error::new(ErrorCode::MissingParameter, format!("The request must contain the parameter {param}"))
    }

    pub fn invalid_value(param: &str, value: &str, why: &str) -> Self {
        Error::new(ErrorCode::InvalidParameterValue, format!("Value ({value}) for parameter {param} is invalid. {why}"))
    }

    pub fn combination(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::InvalidParameterCombination, message)
    }

    pub fn malformed(kind: IdKind, id: &str) -> Self {
        Error::new(ErrorCode::MalformedId(kind), format!("Invalid id: \"{id}\""))
    }

    pub fn not_found(kind: IdKind, id: &str) -> Self {
        let message = match kind {
            IdKind::KeyPair => format!("The key pair '{id}' does not exist"),
            IdKind::Image => format!("The image id '[{id}]' does not exist"),
            IdKind::Volume => format!("The volume '{id}' does not exist."),
            IdKind::Snapshot => format!("The snapshot '{id}' does not exist."),
            _ => format!("The {} ID '{id}' does not exist", kind.noun()),
        };
        Error::new(ErrorCode::NotFound(kind), message)
    }

    pub fn dry_run() -> Self {
        Error::new(ErrorCode::DryRunOperation, "Request would have succeeded, but DryRun flag is set.")
    }

    pub fn incorrect_state(id: &str, state: &str, action: &str) -> Self {
        Error::new(
            ErrorCode::IncorrectInstanceState,
            format!("The instance '{id}' is not in a state from which it can be {action} (state: {state})."),
        )
    }
}
