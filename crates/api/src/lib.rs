//! The HTTP face of Corral: the EC2 Query API (and STS `GetCallerIdentity`) over HTTP.
//!
//! It parses and renders, it does not decide: a request is authenticated (SigV4), its form
//! decoded against botocore's model into a typed request ([`dispatch::Ec2Request`]), handed to
//! the control plane, and the result rendered as EC2's XML ([`views`]). Errors of every layer
//! become EC2's error envelope in exactly one place ([`error`]).

pub mod body_deadline;
pub mod dispatch;
pub mod error;
pub mod listen;
mod route;
pub mod server;
pub mod sts;
pub mod views;

pub use listen::{serve, Limits};
pub use server::{router, ApiState};
