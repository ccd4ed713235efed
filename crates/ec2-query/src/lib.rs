//! The EC2 Query protocol, driven by botocore's EC2 service model
//! (`model/ec2-2016-11-15.json`, refreshed by `scripts/update-ec2-model.py`).
//!
//! [`decode`] turns a request's form parameters (`Filter.1.Name=...`) into a JSON value keyed
//! by the model's member names (`{"Filters":[{"Name":..}]}`), checking types and refusing
//! parameters the action does not have; the API then deserialises that into a typed request.
//! [`encode`] does the reverse for responses: a JSON value keyed by member names becomes the
//! XML AWS sends, with every element named as the model names it. Because both directions
//! walk the model, a misspelt member is an error in tests rather than a silent gap on the wire.
//! [`write`] writes a response member by member, checked against the model the same way,
//! straight into XML (for long listings) or into the JSON value `encode` takes.

pub mod decode;
pub mod encode;
pub mod filter_path;
pub mod model;
pub mod requests;
pub mod schema;
pub mod write;
pub mod xml;

pub use decode::decode;
pub use encode::{encode, EncodeError};
pub use model::Model;

/// The API version Corral speaks; the XML namespace follows from it.
pub const API_VERSION: &str = "2016-11-15";
pub const XML_NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
