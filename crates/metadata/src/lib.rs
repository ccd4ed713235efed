//! `corral-metadata`: the EC2 instance metadata service (IMDS), IMDSv1 and IMDSv2.
//!
//! The agent runs one [`MetadataServer`] inside each VPC's network namespace, on a listener
//! bound to 169.254.169.254:80 ([`bind_in_netns`]). Each request is answered for the instance
//! whose private address the connection comes from, and only for it; what that instance is
//! comes from the agent through [`InstanceDirectory`] as a plain [`InstanceView`].
//!
//! ```text
//!  guest --TCP--> 169.254.169.254:80 (lo of the VPC namespace)
//!                   server.rs: peer IP -> InstanceDirectory -> InstanceView
//!                              HTTP request -> ImdsRequest
//!                   handler.rs: handle(request, view, token key, now) -> ImdsResponse   (pure)
//!                              tree.rs (paths, listings), identity.rs, token.rs
//!                   server.rs: ImdsResponse -> HTTP (IP TTL = hop limit for token PUTs)
//! ```
//!
//! Modules: [`view`] what the service knows, [`message`] request and response types,
//! [`handler`] the rules, [`tree`] the metadata tree, [`identity`] the identity document,
//! [`token`] IMDSv2 tokens, [`server`] HTTP, [`netns`] binding inside a namespace,
//! [`example`] a filled-in view for tests.

pub mod example;
pub mod handler;
pub mod identity;
pub mod message;
pub mod netns;
pub mod server;
pub mod token;
pub mod tree;
pub mod view;

pub use handler::handle;
pub use message::{ContentType, ImdsRequest, ImdsResponse, Method, Status};
pub use netns::{bind_in_netns, NetnsError};
pub use server::{Clock, InstanceDirectory, MetadataServer, IMDS_ADDR, IMDS_PORT};
pub use token::{TokenError, TokenKey, MAX_TOKEN_TTL_SECS, MIN_TOKEN_TTL_SECS};
pub use view::{GroupRef, HttpTokens, InstanceView, InterfaceView, MetadataOptions, PublicKey, Toggle};
