//! Dispatch: an action name and its form become one typed [`Ec2Request`] (the table of
//! actions is in `route.rs`, beside what runs each), checked against the model, run, kept for
//! ClientToken retries and encoded as EC2's XML.

pub use crate::route::{schema, Ec2Request, ACTIONS};
use corral_control::Control;
use corral_ec2_query::encode;
use corral_ec2_query::schema::Schema;
#[cfg(test)]
use corral_ec2_query::Model;
use corral_types::{Error, ErrorCode};
use serde_json::Value;

/// The request struct of `action`, from its decoded form. A member the struct does not read
/// is refused (unless its value asks for nothing), so no parameter is silently ignored.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(action: &'static str, v: Value) -> Result<T, Error> {
    refuse_unhandled(action, &v, schema_of::<T>(action))?;
    serde_json::from_value(v).map_err(|e| Error::new(ErrorCode::InvalidParameterValue, format!("Invalid parameter: {e}")))
}

/// The refusal [`Ec2Request::parse`] gives a decoded request of `action` for members its
/// struct does not read (for tests that walk the model).
pub fn check_handled(action: &str, v: &Value) -> Result<(), Error> {
    let schema = schema(action).ok_or_else(|| Error::new(ErrorCode::InvalidAction, format!("{action} is not served")))?;
    refuse_unhandled(action, v, schema)
}

fn refuse_unhandled(action: &str, v: &Value, schema: &Schema) -> Result<(), Error> {
    match corral_ec2_query::schema::unhandled(v, schema).first() {
        Some((path, _)) => Err(Error::new(ErrorCode::Unsupported, format!("The parameter {path} of {action} is not supported by Corral."))),
        None => Ok(()),
    }
}

/// Each action's schema, worked out once.
pub(crate) fn schema_of<T: serde::de::DeserializeOwned>(action: &'static str) -> &'static Schema {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<&'static str, &'static Schema>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    cache.entry(action).or_insert_with(|| Box::leak(Box::new(Schema::of::<T>())))
}

/// Runs `action` and renders its XML response.
pub async fn dispatch(control: &Control, action: &str, params: &[(String, String)], request_id: &str) -> Result<String, Error> {
    let req = Ec2Request::parse(action, params)?;
    // ClientToken retries get the first answer again (RunInstances keeps its own).
    let token = params.iter().find(|(k, _)| k == "ClientToken").map(|(_, v)| v.as_str()).filter(|t| !t.is_empty());
    let kept = token.filter(|_| action != "RunInstances").map(|t| (t, corral_control::idempotency::request_digest(params)));
    if let Some((t, digest)) = &kept {
        if let Some(response) = control.idempotent_replay(action, t, digest)? {
            let body: Value = serde_json::from_str(&response).map_err(|e| Error::internal(format!("kept response of {action}: {e}")))?;
            return encode(action, request_id, &body).map_err(|e| Error::internal(format!("rendering {action}: {e}")));
        }
    }
    let body = match crate::route::run(control, req, request_id).await? {
        crate::route::Answer::Value(v) => v,
        // Written straight into XML: a listing, which has no ClientToken to keep it for.
        crate::route::Answer::Xml(xml) => return Ok(xml),
    };
    if let Some((t, digest)) = &kept {
        control.idempotent_keep(action, t, digest, &body.to_string())?;
    }
    encode(action, request_id, &body).map_err(|e| Error::internal(format!("rendering {action}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_in_the_model() {
        for a in ACTIONS {
            assert!(Model::get().has_operation(a), "{a} is not an EC2 operation");
        }
    }

    /// README.md lists the served actions between markers; it must list exactly these.
    #[test]
    fn readme_lists_the_dispatch_table() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("<!-- actions:begin").expect("README has the actions:begin marker");
        let end = readme.find("<!-- actions:end -->").expect("README has the actions:end marker");
        let block = &readme[start..end];
        let listed: Vec<&str> =
            block.lines().skip(1).flat_map(|l| l.split(',')).map(|a| a.trim().trim_end_matches('.')).filter(|a| !a.is_empty()).collect();
        let mut served: Vec<&str> = ACTIONS.to_vec();
        served.sort_unstable();
        assert_eq!(
            listed,
            served,
            "README.md's action list drifted from the dispatch table; put this between the markers:\n{}.",
            served.join(", ")
        );
    }

    #[test]
    fn model_operations_not_served_are_unsupported_and_others_invalid() {
        let e = Ec2Request::parse("DescribeFleets", &[]).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unsupported);
        assert!(e.message.contains("DescribeFleets"), "{}", e.message);
        assert_eq!(Ec2Request::parse("DescribeUnicorns", &[]).unwrap_err().code, ErrorCode::InvalidAction);
        assert!(Ec2Request::parse("DescribeRegions", &[]).is_ok());
    }
}
