//! Vocabulary shared by every layer: resource ids, EC2 instance states, the instance type
//! catalogue, the wildcard matcher EC2 filters use, and the one public error type.
//!
//! Nothing here does I/O; everything here is a value.

pub mod cidr;
pub mod error;
pub mod id;
pub mod instance_type;
pub mod region;
pub mod slots;
pub mod state;
pub mod wildcard;

pub use cidr::{Cidr, CidrParseError};
pub use error::{Error, ErrorCode, Result};
pub use id::{IdKind, KindInfo, Record, ResourceId, KINDS};
pub use instance_type::{InstanceTypeInfo, INSTANCE_TYPES};
pub use state::InstanceState;
