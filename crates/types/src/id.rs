//! Resource ids in EC2's format: a prefix, a dash and 17 lowercase hex digits (8 for ids made
//! before 2016, which AWS still accepts as well-formed).
//!
//! A string with the right prefix but the wrong body is *malformed*
//! (`InvalidInstanceID.Malformed`); a well-formed id nobody owns is *not found*.
//!
//! A new id's 17 digits are the second it was made (8 digits) and then a count (9 digits,
//! 36 bits) that this process keeps for all kinds, started at a random value. So the ids made
//! in a second follow each other, and the store's indexes on ids take each new one at their
//! end. Random ids went into a random leaf of every such index: at 50,000 instances a launch
//! and its termination touched pages the store's cache had not held, and launch+terminate
//! pairs ran 13% slower than with ids in order (`bench/api_load.py`, 2026-12-05). Within a
//! process no id is made twice (until 2^36 ids in one second); two processes making ids in
//! the same second (`corral serve`, and `corral images import` beside it) start their counts
//! at random points of 2^36, so theirs meet only if one of those counts runs into the other.

use rand::Rng;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

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
    NetworkAcl,
    NetworkAclAssociation,
    PlacementGroup,
}

/// Where the store keeps a kind's records, so one existence check serves every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// A table of its own, with this id column.
    Table(&'static str, &'static str),
    /// Documents of this `kind` in the documents table.
    Doc(&'static str),
    /// Rules inside security group documents.
    SecurityGroupRule,
    /// Not kept as a record of its own (reservations, requests).
    None,
}

/// What Corral knows of one resource kind: the one registry that ids, error codes, tags and
/// lookups read. A new kind is one row here (and its variant above).
#[derive(Debug)]
pub struct KindInfo {
    pub kind: IdKind,
    /// Id prefix, without the dash (`vpc`).
    pub prefix: &'static str,
    /// The noun in EC2's messages ("The vpc ID 'vpc-1' does not exist").
    pub noun: &'static str,
    /// EC2's error code for a well-formed id nobody owns.
    pub not_found: &'static str,
    /// EC2's error code for an id that is not well formed.
    pub malformed: &'static str,
    /// The resource type in tags (`DescribeTags`' `resource-type`); `None` when it takes none.
    pub tag_type: Option<&'static str>,
    pub record: Record,
}

macro_rules! kinds {
    ($($kind:ident: $prefix:literal, $noun:literal, $nf:literal, $mal:literal, $tag:expr, $rec:expr;)*) => {
        /// Every kind, in one table.
        pub const KINDS: &[KindInfo] = &[
            $(KindInfo { kind: IdKind::$kind, prefix: $prefix, noun: $noun, not_found: $nf, malformed: $mal, tag_type: $tag, record: $rec },)*
        ];
    };
}

kinds! {
    Instance: "i", "instance", "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed", Some("instance"), Record::Table("instances", "instance_id");
    Reservation: "r", "reservation", "InvalidReservationID.NotFound", "InvalidReservationID.Malformed", None, Record::None;
    Image: "ami", "image", "InvalidAMIID.NotFound", "InvalidAMIID.Malformed", Some("image"), Record::Table("images", "image_id");
    KeyPair: "key", "key pair", "InvalidKeyPair.NotFound", "InvalidKeyPair.Malformed", Some("key-pair"), Record::Table("key_pairs", "key_pair_id");
    Volume: "vol", "volume", "InvalidVolume.NotFound", "InvalidVolumeID.Malformed", Some("volume"), Record::Doc("volume");
    Snapshot: "snap", "snapshot", "InvalidSnapshot.NotFound", "InvalidSnapshotID.Malformed", Some("snapshot"), Record::Doc("snapshot");
    SecurityGroup: "sg", "security group", "InvalidGroup.NotFound", "InvalidGroupId.Malformed", Some("security-group"), Record::Doc("security-group");
    Vpc: "vpc", "vpc", "InvalidVpcID.NotFound", "InvalidVpcID.Malformed", Some("vpc"), Record::Doc("vpc");
    Subnet: "subnet", "subnet", "InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed", Some("subnet"), Record::Doc("subnet");
    NetworkInterface: "eni", "network interface", "InvalidNetworkInterfaceID.NotFound", "InvalidNetworkInterfaceID.Malformed", Some("network-interface"), Record::Doc("network-interface");
    SecurityGroupRule: "sgr", "security group rule", "InvalidSecurityGroupRuleId.NotFound", "InvalidSecurityGroupRuleId.Malformed", Some("security-group-rule"), Record::SecurityGroupRule;
    Attachment: "eni-attach", "attachment", "InvalidAttachmentID.NotFound", "InvalidAttachmentID.Malformed", None, Record::None;
    InternetGateway: "igw", "internet gateway", "InvalidInternetGatewayID.NotFound", "InvalidInternetGatewayID.Malformed", Some("internet-gateway"), Record::Doc("internet-gateway");
    RouteTable: "rtb", "route table", "InvalidRouteTableID.NotFound", "InvalidRouteTableID.Malformed", Some("route-table"), Record::Doc("route-table");
    RouteTableAssociation: "rtbassoc", "association", "InvalidAssociationID.NotFound", "InvalidAssociationID.Malformed", None, Record::None;
    Allocation: "eipalloc", "allocation", "InvalidAllocationID.NotFound", "InvalidAllocationID.Malformed", Some("elastic-ip"), Record::Doc("address");
    Association: "eipassoc", "association", "InvalidAssociationID.NotFound", "InvalidAssociationID.Malformed", None, Record::None;
    Request: "req", "request", "InvalidRequestID.NotFound", "InvalidRequestID.Malformed", None, Record::None;
    NetworkAcl: "acl", "network ACL", "InvalidNetworkAclID.NotFound", "InvalidNetworkAclID.Malformed", Some("network-acl"), Record::Doc("network-acl");
    NetworkAclAssociation: "aclassoc", "association", "InvalidAssociationID.NotFound", "InvalidAssociationID.Malformed", None, Record::None;
    PlacementGroup: "pg", "placement group", "InvalidPlacementGroup.Unknown", "InvalidPlacementGroupId.Malformed", Some("placement-group"), Record::Doc("placement-group");
}

impl IdKind {
    /// This kind's row of [`KINDS`].
    pub fn info(self) -> &'static KindInfo {
        KINDS.iter().find(|k| k.kind == self).expect("every IdKind has a row in KINDS")
    }

    pub fn prefix(self) -> &'static str {
        self.info().prefix
    }

    /// The noun used in EC2's messages ("The instance ID 'i-...' does not exist").
    pub fn noun(self) -> &'static str {
        self.info().noun
    }

    /// The kind an id claims to be by its prefix (the longest prefix that fits, so
    /// `eni-attach-…` is an attachment), well formed or not.
    pub fn of_id(id: &str) -> Option<IdKind> {
        KINDS
            .iter()
            .filter(|k| id.strip_prefix(k.prefix).is_some_and(|rest| rest.starts_with('-')))
            .max_by_key(|k| k.prefix.len())
            .map(|k| k.kind)
    }
}

/// A freshly minted or validated id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    /// A new id of `kind`: the second it is made, then this process's next count (see the
    /// module documentation).
    pub fn generate(kind: IdKind) -> Self {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        ResourceId(format!("{}-{:08x}{:09x}", kind.prefix(), secs & 0xffff_ffff, next_count()))
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

/// The ids' count: 36 bits, from a random start, shared by every kind.
fn next_count() -> u64 {
    static COUNT: OnceLock<AtomicU64> = OnceLock::new();
    let count = COUNT.get_or_init(|| AtomicU64::new(rand::thread_rng().gen::<u64>()));
    count.fetch_add(1, Ordering::Relaxed) & COUNT_MASK
}

const COUNT_MASK: u64 = (1 << 36) - 1;

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

    /// Ids made one after the other carry the second they were made and counts that follow
    /// each other (other tests' ids may come between), and none is made twice.
    #[test]
    fn new_ids_follow_each_other() {
        let secs = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let before = secs();
        let ids: Vec<ResourceId> =
            (0..2000).map(|i| ResourceId::generate(if i % 2 == 0 { IdKind::Instance } else { IdKind::Volume })).collect();
        let after = secs();
        let parts = |id: &ResourceId| {
            let body = &id.as_str()[id.as_str().len() - 17..];
            (u64::from_str_radix(&body[..8], 16).unwrap(), u64::from_str_radix(&body[8..], 16).unwrap())
        };
        for pair in ids.windows(2) {
            let ((s0, c0), (s1, c1)) = (parts(&pair[0]), parts(&pair[1]));
            assert!((before..=after).contains(&s0) && s0 <= s1, "{pair:?}");
            let step = c1.wrapping_sub(c0) & COUNT_MASK;
            assert!((1..1 << 20).contains(&step), "counts do not follow each other: {pair:?}");
        }
        let bodies: std::collections::HashSet<&str> = ids.iter().map(|id| &id.as_str()[id.as_str().len() - 17..]).collect();
        assert_eq!(bodies.len(), ids.len(), "an id body made twice");
    }

    #[test]
    fn every_kind_has_one_row_and_ids_name_their_kind() {
        for k in KINDS {
            assert_eq!(KINDS.iter().filter(|o| o.kind == k.kind).count(), 1, "{:?}", k.kind);
            let id = ResourceId::generate(k.kind);
            assert_eq!(IdKind::of_id(id.as_str()), Some(k.kind), "{id}");
            // Placement groups are the one kind whose code says Unknown, as on AWS.
            assert!((k.not_found.ends_with(".NotFound") || k.not_found.ends_with(".Unknown")) && k.malformed.ends_with(".Malformed"));
        }
        assert_eq!(IdKind::of_id("eni-attach-12345678"), Some(IdKind::Attachment));
        assert_eq!(IdKind::of_id("vpc-nothex"), Some(IdKind::Vpc));
        assert_eq!(IdKind::of_id("vpcx-12345678"), None);
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
