//! The parts of this host's desired state besides VMs, derived from the store: what a VPC
//! contributes (subnets with their internet-gateway routing, security groups, routes through
//! an interface) and what an instance contributes (its ports, and what the metadata service
//! tells it). `host_cache.rs` keeps them between passes and puts them together.

use crate::Control;
use corral_agent_api::metadata::{GroupRef, InstanceView, InterfaceView, MetadataOptions, PublicKey};
use corral_agent_api::net::{self, Cidr, GroupSpec, PortLink, PortRoute, PortSpec, Protocol, RuleSpec, SubnetSpec, VpcSpec};
use corral_store::{EniRecord, InstanceRecord, RouteTableRecord, SecurityGroupRecord, SgRule, SubnetRecord, Tx, VpcRecord};
use corral_types::{Error, Result};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

fn bad(what: &str, v: &str) -> Error {
    Error::internal(format!("store holds a bad {what}: {v}"))
}

fn cidr(s: &str) -> Result<Cidr> {
    s.parse().map_err(|_| bad("CIDR", s))
}

fn ip(s: &str) -> Result<Ipv4Addr> {
    s.parse().map_err(|_| bad("address", s))
}

fn rule_specs(rules: &[SgRule], egress: bool) -> Result<Vec<RuleSpec>> {
    let mut out = Vec::new();
    for r in rules.iter().filter(|r| r.is_egress == egress) {
        let protocol = Protocol::parse(&r.ip_protocol).ok_or_else(|| bad("protocol", &r.ip_protocol))?;
        let port = |p: i64| (p >= 0).then_some(p as i32);
        let (from_port, to_port) = match protocol {
            Protocol::All | Protocol::Number(_) => (None, None),
            Protocol::Icmp => (Some(r.from_port as i32), Some(r.to_port as i32)),
            Protocol::Tcp | Protocol::Udp => (port(r.from_port), port(r.to_port)),
        };
        let cidrs = match &r.cidr_ipv4 {
            Some(c) => vec![(cidr(c)?, r.description.clone())],
            None => vec![],
        };
        let groups = r.referenced_group_id.iter().map(|g| (g.clone(), r.description.clone())).collect();
        out.push(RuleSpec { protocol, from_port, to_port, cidrs, groups });
    }
    Ok(out)
}

/// EC2's short host name for an address: `ip-10-0-1-5`.
fn short_hostname(addr: &str) -> String {
    format!("ip-{}", addr.replace('.', "-"))
}

/// What one VPC contributes to the desired state, whatever its ports: its subnets, groups and
/// routes through an interface, with the records the instance views read.
pub(crate) struct VpcPart {
    pub vpc: VpcRecord,
    pub cidr: Cidr,
    pub subnets: Vec<SubnetRecord>,
    pub subnet_specs: Vec<SubnetSpec>,
    pub groups: Vec<SecurityGroupRecord>,
    pub group_specs: Vec<GroupSpec>,
    /// Every route through an interface of this VPC; those whose interface has a port here
    /// apply.
    pub routes: Vec<PortRoute>,
}

/// What one instance contributes: its ports (in its VPC) and its metadata view.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct InstancePart {
    /// The instance's position in launch order: the host's lists are kept in this order, so a
    /// launch appends to them (an insert in the middle of a persistent vector rebalances it).
    pub order: i64,
    pub vpc_id: String,
    pub ports: Vec<Arc<PortSpec>>,
    pub view: Option<Arc<InstanceView>>,
}

impl VpcPart {
    pub(crate) fn read(tx: &Tx<'_>, vpc_id: &str) -> Result<Option<VpcPart>> {
        let Some(vpc) = tx.doc_get::<VpcRecord>(vpc_id)? else { return Ok(None) };
        let subnets: Vec<SubnetRecord> = tx.doc_list_by_parent(vpc_id)?;
        let groups: Vec<SecurityGroupRecord> = tx.doc_list_by_parent(vpc_id)?;
        let mut subnet_specs = Vec::new();
        for s in &subnets {
            subnet_specs.push(SubnetSpec {
                subnet_id: s.subnet_id.clone(),
                cidr: cidr(&s.cidr)?,
                routes_to_igw: crate::gateway::routes_to_igw(tx, s)?,
            });
        }
        let mut group_specs = Vec::new();
        for g in &groups {
            group_specs.push(GroupSpec {
                group_id: g.group_id.clone(),
                ingress: rule_specs(&g.rules, false)?,
                egress: rule_specs(&g.rules, true)?,
                remote_members: vec![],
            });
        }
        // They apply to the whole VPC namespace, not only to the subnets of their route table.
        let mut routes = Vec::new();
        for t in tx.doc_list_by_parent::<RouteTableRecord>(vpc_id)? {
            for r in &t.routes {
                if let Some(eni) = &r.network_interface_id {
                    routes.push(PortRoute { destination: cidr(&r.destination)?, eni_id: eni.clone() });
                }
            }
        }
        Ok(Some(VpcPart { cidr: cidr(&vpc.cidr)?, vpc, subnets, subnet_specs, groups, group_specs, routes }))
    }

    /// What the desired state takes from this part (the records are only read by views).
    pub(crate) fn specs(&self) -> (&Cidr, &[SubnetSpec], &[GroupSpec], &[PortRoute]) {
        (&self.cidr, &self.subnet_specs, &self.group_specs, &self.routes)
    }

    /// This VPC's spec with these ports (those of its instances on this host).
    pub(crate) fn spec(&self, ports: imbl::Vector<Arc<PortSpec>>) -> VpcSpec {
        let mut routes: Vec<PortRoute> = Vec::new();
        if !self.routes.is_empty() {
            let here: HashSet<&str> = ports.iter().map(|p| p.eni_id.as_str()).collect();
            routes = self.routes.iter().filter(|r| here.contains(r.eni_id.as_str())).cloned().collect();
        }
        routes.sort_by_key(|r| (r.destination.addr(), r.destination.prefix_len()));
        routes.dedup_by(|a, b| a.destination == b.destination);
        VpcSpec {
            vpc_id: self.vpc.vpc_id.clone(),
            cidr: self.cidr,
            subnets: self.subnet_specs.clone(),
            ports,
            groups: self.group_specs.clone(),
            routes,
        }
    }
}

/// What the views need besides the instance and its VPC, read once per distinct key and image.
#[derive(Default)]
pub(crate) struct Lookups {
    tags: HashMap<String, Vec<corral_store::TagRecord>>,
    keys: HashMap<String, Option<corral_store::KeyPairRecord>>,
    roots: HashMap<String, Option<String>>,
}

impl Lookups {
    pub(crate) fn read(tx: &Tx<'_>, instances: &[&InstanceRecord]) -> Result<Lookups> {
        let mut l =
            Lookups { tags: tx.tag_map_for(&instances.iter().map(|i| i.instance_id.as_str()).collect::<Vec<_>>())?, ..Default::default() };
        for i in instances {
            if let Some(k) = &i.key_name {
                if !l.keys.contains_key(k) {
                    l.keys.insert(k.clone(), tx.keypair_get_by_name(k)?);
                }
            }
            if !l.roots.contains_key(&i.image_id) {
                l.roots.insert(i.image_id.clone(), tx.image_get(&i.image_id)?.map(|img| img.root_device_name));
            }
        }
        Ok(l)
    }
}

impl Control {
    /// One instance's part, from its interfaces (each with its VPC's part).
    pub(crate) fn instance_part(
        &self,
        lookups: &Lookups,
        (order, inst): (i64, &InstanceRecord),
        enis: &[EniRecord],
        vpcs: &BTreeMap<String, VpcPart>,
    ) -> Result<Option<InstancePart>> {
        let mut part: Option<InstancePart> = None;
        for e in enis {
            let Some(vpc) = vpcs.get(&e.vpc_id) else { continue };
            let mac = net::parse_mac(&e.mac).ok_or_else(|| bad("MAC", &e.mac))?;
            let routed = vpc.subnet_specs.iter().any(|s| s.subnet_id == e.subnet_id && s.routes_to_igw);
            let port = PortSpec {
                eni_id: e.eni_id.clone(),
                instance_id: inst.instance_id.clone(),
                subnet_id: e.subnet_id.clone(),
                mac,
                ip: ip(&e.private_ip)?,
                hostname: short_hostname(&e.private_ip),
                public_ip: if routed { e.public_ip.as_deref().map(ip).transpose()? } else { None },
                groups: e.groups.clone(),
                link: PortLink::Tap,
                source_dest_check: e.source_dest_check,
            };
            let p = part.get_or_insert_with(|| InstancePart { order, vpc_id: e.vpc_id.clone(), ports: vec![], view: None });
            p.ports.push(Arc::new(port));
            if e.device_index == 0 {
                p.view = Some(Arc::new(self.instance_view(lookups, inst, e, vpc)?));
            }
        }
        Ok(part)
    }

    fn instance_view(&self, lookups: &Lookups, inst: &InstanceRecord, eni: &EniRecord, vpc: &VpcPart) -> Result<InstanceView> {
        use base64::Engine;
        let subnet = vpc.subnets.iter().find(|s| s.subnet_id == eni.subnet_id);
        let public_keys = inst
            .key_name
            .as_ref()
            .and_then(|k| lookups.keys.get(k))
            .and_then(Option::as_ref)
            .map(|kp| vec![PublicKey { name: kp.key_name.clone(), openssh_key: kp.public_key.clone() }])
            .unwrap_or_default();
        let user_data = inst.user_data.as_deref().and_then(|u| base64::engine::general_purpose::STANDARD.decode(u.trim()).ok());
        let time =
            |s: &str| chrono::DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&chrono::Utc)).unwrap_or_else(|_| chrono::Utc::now());
        let m = &inst.metadata;
        let options = MetadataOptions {
            http_tokens: if m.http_tokens == "required" {
                corral_agent_api::metadata::HttpTokens::Required
            } else {
                corral_agent_api::metadata::HttpTokens::Optional
            },
            http_endpoint: toggle(&m.http_endpoint),
            hop_limit: m.hop_limit,
            instance_metadata_tags: toggle(&m.instance_metadata_tags),
        };
        let root_device_name =
            lookups.roots.get(&inst.image_id).cloned().flatten().unwrap_or_else(|| crate::image::ROOT_DEVICE_NAME.to_string());
        Ok(InstanceView {
            instance_id: inst.instance_id.clone(),
            image_id: inst.image_id.clone(),
            instance_type: inst.instance_type.clone(),
            launch_index: inst.ami_launch_index,
            reservation_id: inst.reservation_id.clone(),
            account_id: self.account_id.clone(),
            region: self.config.region.clone(),
            availability_zone: inst.availability_zone.clone(),
            availability_zone_id: corral_types::region::zone_id(&inst.availability_zone).unwrap_or_default(),
            architecture: "x86_64".into(),
            hostname: eni.private_dns_name.clone(),
            interfaces: vec![InterfaceView {
                interface_id: eni.eni_id.clone(),
                device_number: eni.device_index,
                mac: eni.mac.clone(),
                private_ips: vec![ip(&eni.private_ip)?],
                public_ip: eni.public_ip.as_deref().map(ip).transpose()?,
                public_hostname: None,
                local_hostname: eni.private_dns_name.clone(),
                subnet_id: eni.subnet_id.clone(),
                subnet_cidr: subnet.map(|s| s.cidr.clone()).unwrap_or_default(),
                vpc_id: eni.vpc_id.clone(),
                vpc_cidrs: vec![vpc.vpc.cidr.clone()],
                security_groups: eni
                    .groups
                    .iter()
                    .map(|g| GroupRef {
                        id: g.clone(),
                        name: vpc.groups.iter().find(|x| &x.group_id == g).map(|x| x.group_name.clone()).unwrap_or_default(),
                    })
                    .collect(),
            }],
            public_keys,
            user_data,
            launch_time: time(&inst.launch_time),
            pending_time: time(&inst.launch_time),
            root_device_name,
            block_devices: vec![],
            tags: lookups.tags.get(&inst.instance_id).into_iter().flatten().map(|t| (t.key.clone(), t.value.clone())).collect(),
            options,
        })
    }
}

fn toggle(s: &str) -> corral_agent_api::metadata::Toggle {
    if s == "disabled" {
        corral_agent_api::metadata::Toggle::Disabled
    } else {
        corral_agent_api::metadata::Toggle::Enabled
    }
}
