//! Network interfaces: the primary interface RunInstances creates for each instance (subnet,
//! private IP, MAC, DNS name, security groups), and DescribeNetworkInterfaces.

use crate::describe::{Describe, Described, FilterLine, TagMap};
use crate::lookup::get;
use crate::{filter, Control};
use corral_ec2_query::requests as rq;
use corral_store::{EniRecord, SecurityGroupRecord, SubnetRecord, TagRecord, Tx};
use corral_types::{Cidr, Error, ErrorCode, IdKind, ResourceId, Result};
use rand::Rng;
use std::net::Ipv4Addr;

pub struct NetworkInterface {
    pub rec: EniRecord,
    pub tags: Vec<TagRecord>,
    /// (group id, group name) of its security groups.
    pub groups: Vec<(String, String)>,
}

/// Where a launch puts its instances' primary interfaces, resolved before any is created.
pub(crate) struct Placement {
    pub subnet: SubnetRecord,
    pub groups: Vec<String>,
    pub private_ip: Option<Ipv4Addr>,
    /// Give each interface a public address from the pool.
    pub public_ip: bool,
}

/// EC2's private DNS name for an address: `ip-10-0-1-5.<region>.compute.internal`.
pub fn private_dns_name(ip: &str, region: &str) -> String {
    format!("ip-{}.{region}.compute.internal", ip.replace('.', "-"))
}

fn random_mac() -> String {
    let mut rng = rand::thread_rng();
    // 02: locally administered, unicast.
    let b: [u8; 5] = rng.gen();
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4])
}

impl Control {
    /// Resolves subnet, groups and address of a RunInstances request.
    pub(crate) fn launch_placement(&self, tx: &Tx<'_>, req: &rq::RunInstances, zone: Option<&str>, count: i64) -> Result<Placement> {
        let nic = match req.network_interfaces.as_slice() {
            [] => None,
            [n] => {
                if n.device_index.unwrap_or(0) != 0 {
                    return Err(Error::invalid_value(
                        "NetworkInterface.1.DeviceIndex",
                        &n.device_index.unwrap_or(0).to_string(),
                        "Only the primary interface (device index 0) is supported.",
                    ));
                }
                if n.network_interface_id.is_some() {
                    return Err(Error::new(ErrorCode::Unsupported, "Attaching an existing network interface at launch is not supported."));
                }
                if req.subnet_id.is_some() || !req.security_group_ids.is_empty() || req.private_ip_address.is_some() {
                    return Err(Error::combination("Network interfaces and an instance-level subnet ID, security groups or private IP address may not be specified on the same request"));
                }
                Some(n)
            }
            _ => return Err(Error::new(ErrorCode::Unsupported, "Only one network interface per instance is supported.")),
        };
        let subnet_id = nic.and_then(|n| n.subnet_id.clone()).or_else(|| req.subnet_id.clone());
        let subnet: SubnetRecord = match subnet_id {
            Some(id) => get(tx, IdKind::Subnet, &id)?,
            None => {
                let vpc = tx
                    .meta_get("default_vpc")?
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| Error::new(ErrorCode::MissingParameter, "No default VPC for this user: give a SubnetId."))?;
                let subnets = tx.doc_list_by_parent::<SubnetRecord>(&vpc)?;
                let zone = zone.map(str::to_string).unwrap_or_else(|| self.config.zones()[0].clone());
                subnets
                    .into_iter()
                    .find(|s| s.default_for_az && s.availability_zone == zone)
                    .ok_or_else(|| Error::new(ErrorCode::MissingParameter, format!("No default subnet for availability zone: '{zone}'.")))?
            }
        };
        if let Some(z) = zone {
            if z != subnet.availability_zone {
                return Err(Error::combination(format!(
                    "The specified Availability Zone {z} does not match the subnet's ({}).",
                    subnet.availability_zone
                )));
            }
        }
        let vpc_groups = tx.doc_list_by_parent::<SecurityGroupRecord>(&subnet.vpc_id)?;
        let mut groups = Vec::new();
        let ids: Vec<String> = nic.map(|n| n.groups.clone()).unwrap_or_else(|| req.security_group_ids.clone());
        for id in &ids {
            let g: SecurityGroupRecord = get(tx, IdKind::SecurityGroup, id)?;
            if g.vpc_id != subnet.vpc_id {
                return Err(Error::new(
                    ErrorCode::InvalidParameter,
                    format!("Security group {id} and subnet {} belong to different networks.", subnet.subnet_id),
                ));
            }
            groups.push(g.group_id);
        }
        for name in &req.security_groups {
            let g = vpc_groups.iter().find(|g| &g.group_name == name).ok_or_else(|| {
                Error::new(
                    ErrorCode::NotFound(IdKind::SecurityGroup),
                    format!("The security group '{name}' does not exist in VPC '{}'", subnet.vpc_id),
                )
            })?;
            groups.push(g.group_id.clone());
        }
        if groups.is_empty() {
            let d = vpc_groups
                .iter()
                .find(|g| g.group_name == "default")
                .ok_or_else(|| Error::internal(format!("VPC {} has no default group", subnet.vpc_id)))?;
            groups.push(d.group_id.clone());
        }
        groups.dedup();
        let private_ip = match nic.and_then(|n| n.private_ip_address.clone()).or_else(|| req.private_ip_address.clone()) {
            None => None,
            Some(s) => {
                if count > 1 {
                    return Err(Error::combination("A private IP address can only be given when launching one instance."));
                }
                let ip: Ipv4Addr = s.parse().map_err(|_| Error::invalid_value("PrivateIpAddress", &s, "Not an IPv4 address."))?;
                let cidr: Cidr = subnet.cidr.parse().map_err(|_| Error::internal("bad subnet cidr"))?;
                if !cidr.is_usable(ip) {
                    return Err(Error::new(
                        ErrorCode::InvalidParameterValue,
                        format!("Address {ip} does not fall within the subnet's address range"),
                    ));
                }
                Some(ip)
            }
        };
        let public_ip = nic.and_then(|n| n.associate_public_ip_address).unwrap_or(subnet.map_public_ip_on_launch);
        Ok(Placement { subnet, groups, private_ip, public_ip })
    }

    /// Creates the primary interface of `instance_id` in `tx`.
    pub(crate) fn eni_create_primary(
        &self,
        tx: &Tx<'_>,
        p: &Placement,
        instance_id: &str,
        delete_on_termination: bool,
    ) -> Result<EniRecord> {
        let subnet = &p.subnet.subnet_id;
        let taken = |ip: Ipv4Addr| -> Result<bool> { Ok(tx.doc_field_taken::<EniRecord>("private_ip", &ip.to_string(), Some(subnet))?) };
        let ip = match p.private_ip {
            Some(ip) if taken(ip)? => return Err(Error::new(ErrorCode::InvalidIpAddressInUse, format!("Address {ip} is in use."))),
            Some(ip) => ip,
            None => {
                let cidr: Cidr = p.subnet.cidr.parse().map_err(|_| Error::internal("bad subnet cidr"))?;
                // AWS keeps a subnet's first four addresses and its last.
                let count = cidr.size().saturating_sub(5);
                self.cursors.next_free(subnet, count, |i| cidr.nth(i + 4), taken)?.ok_or_else(|| {
                    Error::new(
                        ErrorCode::InsufficientFreeAddressesInSubnet,
                        format!("There are not enough free addresses in subnet '{subnet}' to satisfy the requested number of instances."),
                    )
                })?
            }
        };
        let now = crate::now_iso();
        let rec = EniRecord {
            eni_id: ResourceId::generate(IdKind::NetworkInterface).into_string(),
            subnet_id: p.subnet.subnet_id.clone(),
            vpc_id: p.subnet.vpc_id.clone(),
            availability_zone: p.subnet.availability_zone.clone(),
            private_ip: ip.to_string(),
            mac: random_mac(),
            private_dns_name: private_dns_name(&ip.to_string(), &self.config.region),
            groups: p.groups.clone(),
            description: String::new(),
            instance_id: Some(instance_id.to_string()),
            device_index: 0,
            attachment_id: Some(ResourceId::generate(IdKind::Attachment).into_string()),
            attach_time: Some(now),
            delete_on_termination,
            status: "in-use".into(),
            source_dest_check: true,
            public_ip: if p.public_ip { Some(self.public_ip_allocate(tx)?.to_string()) } else { None },
            public_ip_allocation: None,
            auto_public_ip: p.public_ip,
        };
        tx.doc_put(&rec)?;
        Ok(rec)
    }

    pub fn eni_describe(
        &self,
        req: &rq::DescribeNetworkInterfaces,
        rendered: &filter::Rendered<'_, NetworkInterface>,
    ) -> Result<(Vec<NetworkInterface>, Option<String>)> {
        let d = Describe::new(&req.network_interface_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        self.describe(&d.table(ENI_FILTERS).rendered(Some(rendered)), |_| true)
    }
}

impl Described for NetworkInterface {
    type Record = EniRecord;
    const KIND: IdKind = IdKind::NetworkInterface;
    fn record_id(rec: &EniRecord) -> &str {
        &rec.eni_id
    }
    fn assemble(tx: &Tx<'_>, recs: Vec<EniRecord>, tags: &mut TagMap) -> Result<Vec<NetworkInterface>> {
        let groups = groups_of(tx, recs.iter().flat_map(|e| e.groups.iter()))?;
        Ok(recs
            .into_iter()
            .map(|rec| NetworkInterface {
                tags: tags.remove(&rec.eni_id).unwrap_or_default(),
                groups: group_names(&groups, &rec.groups),
                rec,
            })
            .collect())
    }
    fn id(&self) -> &str {
        &self.rec.eni_id
    }
    fn tags(&self) -> &[TagRecord] {
        &self.tags
    }
}

/// DescribeNetworkInterfaces' filters besides those its view answers.
const ENI_FILTERS: &[FilterLine<NetworkInterface>] = &[
    ("network-interface-id", |n, _| vec![n.rec.eni_id.clone()]),
    ("subnet-id", |n, _| vec![n.rec.subnet_id.clone()]),
    ("vpc-id", |n, _| vec![n.rec.vpc_id.clone()]),
    ("availability-zone", |n, _| vec![n.rec.availability_zone.clone()]),
    ("private-ip-address", |n, _| vec![n.rec.private_ip.clone()]),
    ("addresses.private-ip-address", |n, _| vec![n.rec.private_ip.clone()]),
    ("mac-address", |n, _| vec![n.rec.mac.clone()]),
    ("status", |n, _| vec![n.rec.status.clone()]),
    ("attachment.instance-id", |n, _| n.rec.instance_id.iter().cloned().collect()),
    ("attachment.device-index", |n, _| vec![n.rec.device_index.to_string()]),
    ("attachment.status", |n, _| vec![if n.rec.instance_id.is_some() { "attached".into() } else { "detached".into() }]),
    ("group-id", |n, _| n.groups.iter().map(|(id, _)| id.clone()).collect()),
    ("group-name", |n, _| n.groups.iter().map(|(_, name)| name.clone()).collect()),
    ("description", |n, _| vec![n.rec.description.clone()]),
    ("owner-id", |_, s| vec![s.account_id.to_string()]),
    ("private-dns-name", |n, _| vec![n.rec.private_dns_name.clone()]),
    ("source-dest-check", |n, _| vec![n.rec.source_dest_check.to_string()]),
    ("association.public-ip", |n, _| n.rec.public_ip.iter().cloned().collect()),
    ("association.allocation-id", |n, _| n.rec.public_ip_allocation.iter().cloned().collect()),
];

/// The security groups with these ids (a page's), for their names.
pub(crate) fn groups_of<'a>(tx: &Tx<'_>, ids: impl Iterator<Item = &'a String>) -> Result<Vec<SecurityGroupRecord>> {
    let mut ids: Vec<String> = ids.cloned().collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(<SecurityGroupRecord as corral_store::Listed>::with_ids(tx, &ids)?.into_iter().map(|(_, g)| g).collect())
}

/// (id, name) pairs for `ids`, in order.
pub fn group_names(groups: &[SecurityGroupRecord], ids: &[String]) -> Vec<(String, String)> {
    ids.iter().map(|id| (id.clone(), groups.iter().find(|g| &g.group_id == id).map(|g| g.group_name.clone()).unwrap_or_default())).collect()
}

/// A stopped instance gives its pool address back (an elastic IP stays).
pub(crate) fn release_public_ips(control: &Control, tx: &Tx<'_>, instance_id: &str) -> Result<()> {
    for mut e in tx.eni_list_for_instance(instance_id)?.into_iter() {
        if e.public_ip.is_some() && e.public_ip_allocation.is_none() {
            given_back(control, &e, false);
            e.public_ip = None;
            tx.doc_put(&e)?;
        }
    }
    Ok(())
}

/// A started instance gets a fresh pool address where it had one.
pub(crate) fn assign_public_ips(control: &Control, tx: &Tx<'_>, instance_id: &str) -> Result<()> {
    for mut e in tx.eni_list_for_instance(instance_id)?.into_iter() {
        if e.auto_public_ip && e.public_ip.is_none() {
            e.public_ip = Some(control.public_ip_allocate(tx)?.to_string());
            tx.doc_put(&e)?;
        }
    }
    Ok(())
}

/// Tells the allocator what `e` gives back: its pool address (not an elastic one), and with
/// `private` its private address, so the next launch in a nearly full range finds them
/// without a walk (`alloc.rs`).
fn given_back(control: &Control, e: &EniRecord, private: bool) {
    if let Some(ip) = e.public_ip.as_deref().filter(|_| e.public_ip_allocation.is_none()).and_then(|ip| ip.parse().ok()) {
        control.cursors.freed(crate::address::PUBLIC_POOL, ip);
    }
    if let Some(ip) = Some(e.private_ip.as_str()).filter(|_| private).and_then(|ip| ip.parse().ok()) {
        control.cursors.freed(&e.subnet_id, ip);
    }
}

/// Removes the interfaces of a terminated instance that go with it.
pub(crate) fn release_for_instance(control: &Control, tx: &Tx<'_>, instance_id: &str) -> Result<()> {
    for mut a in tx.doc_list::<corral_store::AddressRecord>()?.into_iter().filter(|a| a.instance_id.as_deref() == Some(instance_id)) {
        a.association_id = None;
        a.instance_id = None;
        a.eni_id = None;
        a.private_ip = None;
        tx.doc_put(&a)?;
    }
    for e in tx.eni_list_for_instance(instance_id)?.into_iter() {
        given_back(control, &e, e.delete_on_termination);
        if e.delete_on_termination {
            tx.doc_delete::<EniRecord>(&e.eni_id)?;
            tx.tag_delete_all(&e.eni_id)?;
        } else {
            let mut e = e;
            e.public_ip = None;
            e.public_ip_allocation = None;
            e.instance_id = None;
            e.attachment_id = None;
            e.attach_time = None;
            e.status = "available".into();
            tx.doc_put(&e)?;
        }
    }
    Ok(())
}
