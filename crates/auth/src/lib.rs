//! Authentication material for Corral's EC2-compatible API: verifying AWS Signature Version 4
//! on incoming requests ([`sigv4`]) and making or importing the SSH key pairs behind
//! `CreateKeyPair` / `ImportKeyPair` ([`keypair`]).
//!
//! Everything here is pure and synchronous: no HTTP framework types, no store, no I/O beyond the
//! operating system's random number generator. The API crate turns an HTTP request into a
//! [`sigv4::SignedRequest`], looks secrets up in its store, and maps [`sigv4::AuthError::code`]
//! and [`keypair::KeyError`] into its one error type.

pub mod keypair;
pub mod sigv4;
