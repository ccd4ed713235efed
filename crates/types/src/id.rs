//! Resource ids in EC2's format: a prefix, a dash and 17 lowercase hex digits (8 for ids made
//! before 2016, which AWS still accepts as well-formed).
//!
//! A string with the right prefix but the wrong body is *malformed*
//! (`InvalidInstanceID.Malformed`); a well-formed id nobody owns is *not found*.

use rand::Rng;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Instance,
    Reservation,
    Image,
    KeyPair,
    Volume,
    Snapshot,
    SecurityGroup,
    Vpc,
    Subnet,
    NetworkInterface,
    SecurityGroupRule,
    Attachment,
    InternetGateway,
    RouteTable,
    RouteTableAssociation,
    Allocation,
    Association,
    Request,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Instance => "i",
            IdKind::Reservation => "r",
            IdKind::Image => "ami",
            IdKind::KeyPair => "key",
            IdKind::Volume => "vol",
            IdKind::Snapshot => "snap",
            IdKind::SecurityGroup => "sg",
            IdKind::Vpc => "vpc",
            IdKind::Subnet => "subnet",
            IdKind::NetworkInterface => "eni",
            IdKind::SecurityGroupRule => "sgr",
            IdKind::Attachment => "eni-attach",
            IdKind::InternetGateway => "igw",
            IdKind::RouteTable => "rtb",
            IdKind::RouteTableAssociation => "rtbassoc",
            IdKind::Allocation => "eipalloc",
            IdKind::Association => "eipassoc",
            IdKind::Request => "req",
        }
    }

    /// The noun used in EC2's messages ("The instance ID 'i-...' does not exist").
    pub fn noun(self) -> &'static str {
        match self {
            IdKind::Instance => "instance",
            IdKind::Reservation => "reservation",
            IdKind::Image => "image",
            IdKind::KeyPair => "key pair",
            IdKind::Volume => "volume",
            IdKind::Snapshot => "snapshot",
            IdKind::SecurityGroup => "security group",
            IdKind::Vpc => "vpc",
            IdKind::Subnet => "subnet",
            IdKind::NetworkInterface => "network interface",
            IdKind::SecurityGroupRule => "security group rule",
            IdKind::Attachment => "attachment",
            IdKind::InternetGateway => "internet gateway",
            IdKind::RouteTable => "route table",
            IdKind::RouteTableAssociation => "association",
            IdKind::Allocation => "allocation",
            IdKind::Association => "association",
            IdKind::Request => "request",
        }
    }
}

/// A freshly minted or validated id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    pub fn generate(kind: IdKind) -> Self {
        let mut rng = rand::thread_rng();
        let body: String = (0..17).map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap()).collect();
        ResourceId(format!("{}-{}", kind.prefix(), body))
    }

    /// Checks `s` is a well-formed id of `kind`.
    pub fn parse(kind: IdKind, s: &str) -> Option<Self> {
        let body = s.strip_prefix(kind.prefix())?.strip_prefix('-')?;
        let ok = (body.len() == 8 || body.len() == 17) && body.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| ResourceId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        for kind in [IdKind::Instance, IdKind::Image, IdKind::KeyPair, IdKind::Reservation] {
            let id = ResourceId::generate(kind);
            assert_eq!(id.as_str().len(), kind.prefix().len() + 1 + 17);
            assert_eq!(ResourceId::parse(kind, id.as_str()), Some(id));
        }
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert!(ResourceId::parse(IdKind::Instance, "i-12345678").is_some());
        assert!(ResourceId::parse(IdKind::Instance, "i-1234567").is_none());
        assert!(ResourceId::parse(IdKind::Instance, "i-ABCDEF12").is_none());
        assert!(ResourceId::parse(IdKind::Instance, "ami-12345678").is_none());
        assert!(ResourceId::parse(IdKind::Instance, "bogus").is_none());
        assert!(ResourceId::parse(IdKind::Image, "ami-0123456789abcdef0").is_some());
    }
}
