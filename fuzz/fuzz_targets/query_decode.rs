//! The Query decoder (`corral_ec2_query::decode`) on any request: the input is read as the
//! server reads a request, once as a form body (`form_urlencoded`) and once as a query string
//! (`query_pairs`, where `+` is a plus), `Action` taken out and the parameters the server strips
//! removed. Checked:
//! - it returns, without panicking or overflowing the stack;
//! - an error is one of the codes `decode` documents (`InvalidAction` exactly when the action is
//!   not in the model, `UnknownParameter`, `InvalidParameterValue`) with a message;
//! - a value is an object that conforms to the action's input shape in the model: only its
//!   members, each of its kind (structures, lists, integers within the model's range, booleans,
//!   numbers, strings);
//! - the order of distinct parameters does not matter.

#![no_main]

use corral_ec2_query::decode;
use corral_ec2_query::model::{Model, Shape, ShapeKind};
use corral_types::ErrorCode;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let form: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    check(form);
    if let Ok(s) = std::str::from_utf8(data) {
        check(corral_auth::sigv4::query_pairs(s).collect());
    }
});

fn check(params: Vec<(String, String)>) {
    // As `api/src/server.rs` does: no Action, no decoding; these never reach the decoder.
    let Some(action) = params.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()) else { return };
    let rest: Vec<(String, String)> =
        params.into_iter().filter(|(k, _)| k != "Action" && k != "Version" && !k.starts_with("X-Amz-") && k != "AWSAccessKeyId").collect();

    let model = Model::get();
    let known = model.has_operation(&action);
    let got = decode(&action, &rest);
    match &got {
        Ok(v) => {
            assert!(known, "decoded an action the model lacks: {action:?}");
            match model.input(&action) {
                Some(shape) => conforms(shape, v),
                None => assert_eq!(v, &Value::Object(Default::default())),
            }
        }
        Err(e) => {
            assert!(
                matches!(e.code, ErrorCode::InvalidAction | ErrorCode::UnknownParameter | ErrorCode::InvalidParameterValue),
                "undocumented error {:?}: {}",
                e.code,
                e.message
            );
            assert_eq!(e.code == ErrorCode::InvalidAction, !known, "{action:?}: {}", e.message);
            assert!(!e.message.is_empty());
            assert!(e.internal.is_none(), "a decoding error has no internal detail");
        }
    }

    // Distinct names: the order they come in does not matter.
    let mut names: Vec<&str> = rest.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() == rest.len() && rest.len() > 1 {
        let mut reversed = rest.clone();
        reversed.reverse();
        let again = decode(&action, &reversed);
        match (&got, &again) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.code, b.code, "{} / {}", a.message, b.message),
            (a, b) => panic!("order changed the outcome: {a:?} / {b:?}"),
        }
    }
}

/// `v` is what the model says a value of `shape` is.
fn conforms(shape: Shape<'_>, v: &Value) {
    match shape.kind() {
        ShapeKind::Structure => {
            let obj = v.as_object().unwrap_or_else(|| panic!("{}: not an object: {v}", shape.name));
            for (k, child) in obj {
                let m = shape.member(k).unwrap_or_else(|| panic!("{} has no member {k}", shape.name));
                conforms(m.shape(), child);
            }
        }
        ShapeKind::List => {
            let items = v.as_array().unwrap_or_else(|| panic!("{}: not a list: {v}", shape.name));
            let (item, _) = shape.list_member().expect("a list has a member");
            for i in items {
                conforms(item, i);
            }
        }
        ShapeKind::Map => {
            let obj = v.as_object().unwrap_or_else(|| panic!("{}: not a map: {v}", shape.name));
            assert!(obj.values().all(Value::is_string));
        }
        ShapeKind::Integer | ShapeKind::Long => {
            let n = v.as_i64().unwrap_or_else(|| panic!("{}: not an integer: {v}", shape.name));
            if let Some(lo) = shape.raw_i64("min") {
                assert!(n >= lo, "{}: {n} < min {lo}", shape.name);
            }
            if let Some(hi) = shape.raw_i64("max") {
                assert!(n <= hi, "{}: {n} > max {hi}", shape.name);
            }
        }
        ShapeKind::Boolean => assert!(v.is_boolean(), "{}: not a boolean: {v}", shape.name),
        ShapeKind::Double | ShapeKind::Float => assert!(v.is_number(), "{}: not a number: {v}", shape.name),
        ShapeKind::String | ShapeKind::Timestamp | ShapeKind::Blob => assert!(v.is_string(), "{}: not a string: {v}", shape.name),
    }
}
