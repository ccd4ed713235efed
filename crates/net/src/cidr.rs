//! IPv4 networks: the type lives in the agent API (it is part of the desired state).

pub use corral_agent_api::net::Ipv4Net;
