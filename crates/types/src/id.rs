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
