//! The one place where Corral's errors become EC2's error codes and HTTP statuses.

use corral_ec2_query::xml;
use corral_types::{Error, ErrorCode};

/// EC2's code string for `code`.
pub fn code_string(code: ErrorCode) -> String {
    use ErrorCode::*;
    match code {
        InvalidAction => "InvalidAction".into(),
        MissingAction => "MissingAction".into(),
        MissingParameter => "MissingParameter".into(),
        InvalidParameter => "InvalidParameter".into(),
        InvalidParameterValue => "InvalidParameterValue".into(),
        InvalidParameterCombination => "InvalidParameterCombination".into(),
        UnknownParameter => "UnknownParameter".into(),
        InvalidFilter => "InvalidFilter".into(),
        DependencyViolation => "DependencyViolation".into(),
        InvalidVpcRange => "InvalidVpc.Range".into(),
        InvalidSubnetRange => "InvalidSubnet.Range".into(),
        InvalidSubnetConflict => "InvalidSubnet.Conflict".into(),
        InvalidPermissionDuplicate => "InvalidPermission.Duplicate".into(),
        InvalidPermissionNotFound => "InvalidPermission.NotFound".into(),
        InvalidGroupReserved => "InvalidGroup.Reserved".into(),
        InvalidIpAddressInUse => "InvalidIPAddress.InUse".into(),
        InsufficientFreeAddressesInSubnet => "InsufficientFreeAddressesInSubnet".into(),
        CannotDelete => "CannotDelete".into(),
        GatewayNotAttached => "Gateway.NotAttached".into(),
        ResourceAlreadyAssociated => "Resource.AlreadyAssociated".into(),
        RouteAlreadyExists => "RouteAlreadyExists".into(),
        InvalidRouteNotFound => "InvalidRoute.NotFound".into(),
        AddressLimitExceeded => "AddressLimitExceeded".into(),
        InvalidAddressNotFound => "InvalidAddress.NotFound".into(),
        InvalidInstanceType => "InvalidInstanceType".into(),
        TagLimitExceeded => "TagLimitExceeded".into(),
        LimitExceeded(code) => code.into(),
        InvalidPaginationToken => "InvalidPaginationToken".into(),
        InvalidUserDataMalformed => "InvalidUserData.Malformed".into(),
        InvalidId => "InvalidID".into(),
        MalformedId(kind) => kind.info().malformed.into(),
        NotFound(kind) => kind.info().not_found.into(),
        // The kind's code family: `InvalidKeyPair.NotFound` → `InvalidKeyPair.Duplicate`,
        // `InvalidPlacementGroup.Unknown` → `InvalidPlacementGroup.Duplicate`.
        Duplicate(kind) => {
            let nf = kind.info().not_found;
            format!("{}.Duplicate", nf.rsplit_once('.').map(|(family, _)| family).unwrap_or(nf))
        }
        MissingAuthenticationToken => "MissingAuthenticationToken".into(),
        AuthFailure => "AuthFailure".into(),
        SignatureDoesNotMatch => "SignatureDoesNotMatch".into(),
        IncompleteSignature => "IncompleteSignature".into(),
        RequestExpired => "RequestExpired".into(),
        UnauthorizedOperation => "UnauthorizedOperation".into(),
        DryRunOperation => "DryRunOperation".into(),
        IncorrectInstanceState => "IncorrectInstanceState".into(),
        OperationNotPermitted => "OperationNotPermitted".into(),
        IdempotentParameterMismatch => "IdempotentParameterMismatch".into(),
        InvalidKeyFormat => "InvalidKey.Format".into(),
        InvalidInstanceAttributeValue => "InvalidInstanceAttributeValue".into(),
        InvalidAmiNotAvailable => "InvalidAMIID.Unavailable".into(),
        InsufficientInstanceCapacity => "InsufficientInstanceCapacity".into(),
        Unsupported => "UnsupportedOperation".into(),
        VolumeInUse => "VolumeInUse".into(),
        IncorrectState => "IncorrectState".into(),
        InvalidVolumeZoneMismatch => "InvalidVolume.ZoneMismatch".into(),
        InvalidSnapshotInUse => "InvalidSnapshot.InUse".into(),
        InvalidAttachmentNotFound => "InvalidAttachment.NotFound".into(),
        InvalidAmiNameDuplicate => "InvalidAMIName.Duplicate".into(),
        InvalidAmiNameMalformed => "InvalidAMIName.Malformed".into(),
        InvalidBlockDeviceMapping => "InvalidBlockDeviceMapping".into(),
        InvalidZoneNotFound => "InvalidZone.NotFound".into(),
        InsufficientVolumeCapacity => "InsufficientVolumeCapacity".into(),
        UnknownVolumeType => "UnknownVolumeType".into(),
        InternalError => "InternalError".into(),
        RequestEntityTooLarge => "RequestEntityTooLarge".into(),
        RequestTimeout => "RequestTimeout".into(),
        ServiceUnavailable => "Unavailable".into(),
    }
}

pub fn http_status(code: ErrorCode) -> u16 {
    use ErrorCode::*;
    match code {
        AuthFailure | MissingAuthenticationToken => 401,
        SignatureDoesNotMatch | UnauthorizedOperation => 403,
        DryRunOperation => 412,
        InternalError => 500,
        RequestEntityTooLarge => 413,
        RequestTimeout => 408,
        ServiceUnavailable | InsufficientInstanceCapacity | InsufficientVolumeCapacity => 503,
        InvalidAction
        | MissingAction
        | MissingParameter
        | InvalidParameter
        | InvalidParameterValue
        | InvalidParameterCombination
        | UnknownParameter
        | InvalidFilter
        | DependencyViolation
        | InvalidVpcRange
        | InvalidSubnetRange
        | InvalidSubnetConflict
        | InvalidPermissionDuplicate
        | InvalidPermissionNotFound
        | InvalidGroupReserved
        | InvalidIpAddressInUse
        | InsufficientFreeAddressesInSubnet
        | CannotDelete
        | GatewayNotAttached
        | ResourceAlreadyAssociated
        | RouteAlreadyExists
        | InvalidRouteNotFound
        | AddressLimitExceeded
        | InvalidAddressNotFound
        | InvalidInstanceType
        | TagLimitExceeded
        | LimitExceeded(_)
        | InvalidPaginationToken
        | InvalidUserDataMalformed
        | InvalidId
        | MalformedId(_)
        | NotFound(_)
        | Duplicate(_)
        | IncompleteSignature
        | RequestExpired
        | IncorrectInstanceState
        | OperationNotPermitted
        | IdempotentParameterMismatch
        | InvalidKeyFormat
        | InvalidInstanceAttributeValue
        | InvalidAmiNotAvailable
        | Unsupported
        | VolumeInUse
        | IncorrectState
        | InvalidVolumeZoneMismatch
        | InvalidSnapshotInUse
        | InvalidAttachmentNotFound
        | InvalidAmiNameDuplicate
        | InvalidAmiNameMalformed
        | InvalidBlockDeviceMapping
        | InvalidZoneNotFound
        | UnknownVolumeType => 400,
    }
}

/// The auth crate's verdicts, in our error type.
pub fn from_auth(e: &corral_auth::sigv4::AuthError) -> Error {
    let code = match e.code() {
        "MissingAuthenticationToken" => ErrorCode::MissingAuthenticationToken,
        "IncompleteSignature" => ErrorCode::IncompleteSignature,
        "AuthFailure" => ErrorCode::AuthFailure,
        "RequestExpired" => ErrorCode::RequestExpired,
        _ => ErrorCode::SignatureDoesNotMatch,
    };
    Error::new(code, e.to_string()).with_internal(format!("{e:?}"))
}

/// (status, body) of an EC2 error response; internal detail goes to the log only.
pub fn render(err: &Error, request_id: &str) -> (u16, String) {
    let status = http_status(err.code);
    if status >= 500 {
        tracing::error!(request_id, code = ?err.code, internal = ?err.internal, "request failed");
    } else {
        tracing::debug!(request_id, code = ?err.code, message = %err.message, internal = ?err.internal, "request refused");
    }
    (status, xml::error_envelope(&code_string(err.code), &err.message, request_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_types::IdKind;

    #[test]
    fn id_codes_and_statuses() {
        assert_eq!(code_string(ErrorCode::MalformedId(IdKind::Instance)), "InvalidInstanceID.Malformed");
        assert_eq!(code_string(ErrorCode::NotFound(IdKind::Image)), "InvalidAMIID.NotFound");
        assert_eq!(code_string(ErrorCode::Duplicate(IdKind::KeyPair)), "InvalidKeyPair.Duplicate");
        assert_eq!(http_status(ErrorCode::DryRunOperation), 412);
        assert_eq!(http_status(ErrorCode::AuthFailure), 401);
        let (status, body) = render(&Error::internal("secret path /x/y"), "req-1");
        assert_eq!(status, 500);
        assert!(!body.contains("/x/y"), "internal detail leaked: {body}");
    }
}
