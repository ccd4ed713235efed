//! What the metadata service knows about each instance: it lives in the agent API because the
//! control plane fills it in as part of the desired state (`corral_agent_api::metadata`).

pub use corral_agent_api::metadata::*;
