//! The desired state of this host besides VMs, derived from the store: the networks of its
//! instances (VPCs, subnets with their internet-gateway routing, ports, security groups) and
//! what the metadata service tells each instance. The reconciler sends it to the agent
//! whenever it changes, before starting VMs that need it.

use crate::Control;
use corral_agent_api::metadata::{GroupRef, InstanceView, InterfaceView, MetadataOptions, PublicKey};
use corral_agent_api::net::{self, Cidr, DesiredNet, GroupSpec, PortLink, PortRoute, PortSpec, Protocol, RuleSpec, SubnetSpec, VpcSpec};
use corral_agent_api::DesiredHost;
use corral_store::{EniRecord, InstanceRecord, RouteTableRecord, SecurityGroupRecord, SgRule, SubnetRecord, Tx, VpcRecord};
use corral_types::{Error, Result};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

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

impl Control {
    pub(crate) fn desired_host(&self, tx: &Tx<'_>) -> Result<DesiredHost> {
        let instances: BTreeMap<String, InstanceRecord> =
            tx.instance_list_live(&self.config.host)?.into_iter().map(|i| (i.instance_id.clone(), i)).collect();
        let enis: Vec<EniRecord> =
            tx.doc_list::<EniRecord>()?.into_iter().filter(|e| e.instance_id.as_ref().is_some_and(|i| instances.contains_key(i))).collect();
        let mut by_vpc: BTreeMap<String, Vec<EniRecord>> = BTreeMap::new();
        for e in enis {
            by_vpc.entry(e.vpc_id.clone()).or_default().push(e);
        }
        // Everything the views need, read once rather than per instance.
        let lookups = Lookups {
            tags: tx.tag_map_for(&instances.keys().map(String::as_str).collect::<Vec<_>>())?,
            keys: tx.keypair_list()?.into_iter().map(|k| (k.key_name.clone(), k)).collect(),
            roots: tx.image_list()?.into_iter().map(|i| (i.image_id, i.root_device_name)).collect(),
        };
        let mut vpcs = Vec::new();
        let mut views = Vec::new();
        for (vpc_id, ports) in by_vpc {
            let Some(vpc) = tx.doc_get::<VpcRecord>(&vpc_id)? else { continue };
            let subnets: Vec<SubnetRecord> = tx.doc_list_by_parent(&vpc_id)?;
            let groups: Vec<SecurityGroupRecord> = tx.doc_list_by_parent(&vpc_id)?;
            let mut subnet_specs = Vec::new();
            for s in &subnets {
                subnet_specs.push(SubnetSpec {
                    subnet_id: s.subnet_id.clone(),
                    cidr: cidr(&s.cidr)?,
                    routes_to_igw: crate::gateway::routes_to_igw(tx, s)?,
                });
            }
            let mut port_specs = Vec::new();
            for e in &ports {
                let inst = &instances[e.instance_id.as_deref().unwrap_or_default()];
                let mac = net::parse_mac(&e.mac).ok_or_else(|| bad("MAC", &e.mac))?;
                let routed = subnet_specs.iter().any(|s| s.subnet_id == e.subnet_id && s.routes_to_igw);
                port_specs.push(PortSpec {
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
                });
                if e.device_index == 0 {
                    views.push(self.instance_view(&lookups, inst, e, &vpc, &subnets, &groups)?);
                }
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
            // Routes through an instance of this VPC on this host. They apply to the whole VPC
            // namespace, not only to the subnets of their route table.
            let mut routes = Vec::new();
            for t in tx.doc_list_by_parent::<RouteTableRecord>(&vpc_id)? {
                for r in &t.routes {
                    if let Some(eni) = r.network_interface_id.as_ref().filter(|e| port_specs.iter().any(|p| &p.eni_id == *e)) {
                        routes.push(PortRoute { destination: cidr(&r.destination)?, eni_id: eni.clone() });
                    }
                }
            }
            routes.sort_by(|a, b| {
                (a.destination.addr(), a.destination.prefix_len()).cmp(&(b.destination.addr(), b.destination.prefix_len()))
            });
            routes.dedup_by(|a, b| a.destination == b.destination);
            vpcs.push(VpcSpec { vpc_id, cidr: cidr(&vpc.cidr)?, subnets: subnet_specs, ports: port_specs, groups: group_specs, routes });
        }
        Ok(DesiredHost { net: DesiredNet { vpcs }, instances: views })
    }

    fn instance_view(
        &self,
        lookups: &Lookups,
        inst: &InstanceRecord,
        eni: &EniRecord,
        vpc: &VpcRecord,
        subnets: &[SubnetRecord],
        groups: &[SecurityGroupRecord],
    ) -> Result<InstanceView> {
        use base64::Engine;
        let subnet = subnets.iter().find(|s| s.subnet_id == eni.subnet_id);
        let public_keys = inst
            .key_name
            .as_ref()
            .and_then(|k| lookups.keys.get(k))
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
        let root_device_name = lookups.roots.get(&inst.image_id).cloned().unwrap_or_else(|| crate::image::ROOT_DEVICE_NAME.to_string());
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
                vpc_cidrs: vec![vpc.cidr.clone()],
                security_groups: eni
                    .groups
                    .iter()
                    .map(|g| GroupRef {
                        id: g.clone(),
                        name: groups.iter().find(|x| &x.group_id == g).map(|x| x.group_name.clone()).unwrap_or_default(),
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

/// What the views need besides the instance, read once per desired state.
struct Lookups {
    tags: std::collections::HashMap<String, Vec<corral_store::TagRecord>>,
    keys: std::collections::HashMap<String, corral_store::KeyPairRecord>,
    roots: std::collections::HashMap<String, String>,
}

fn toggle(s: &str) -> corral_agent_api::metadata::Toggle {
    if s == "disabled" {
        corral_agent_api::metadata::Toggle::Disabled
    } else {
        corral_agent_api::metadata::Toggle::Enabled
    }
}
