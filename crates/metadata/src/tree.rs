//! The metadata tree of one instance, built from its [`InstanceView`], and path lookup in it.
//!
//! IMDS's listing rules, which clients parse:
//! - a directory answers with its entries, one a line, no trailing newline, in name order;
//! - a sub-directory is listed with a trailing `/` (`placement/`), a value without;
//! - a version directory lists `dynamic`, `meta-data` and `user-data` without slashes;
//! - `public-keys/` lists `0=name` (cloud-init turns that into `public-keys/0/openssh-key`).
//!
//! A directory answers with or without its trailing slash; a value asked for with a trailing
//! slash is not found.

use std::collections::BTreeMap;

use crate::identity::identity_document;
use crate::message::ContentType;
use crate::view::{InstanceView, InterfaceView, Toggle};

/// The versions `/` lists (AWS's list, oldest first, `latest` last). The same tree is served
/// under each, as cloud-init probes `/<version>/meta-data/instance-id` newest first (22.4:
/// 2021-03-23, 2018-09-24, 2016-09-02, then falls back to 2009-04-04).
pub const VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-09-24",
    "latest",
];

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir(Dir),
    Value(ContentType, Vec<u8>),
}

/// A directory: its entries by path segment, each with the line it is listed as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dir {
    entries: BTreeMap<String, (String, Node)>,
}

impl Dir {
    fn value(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.entries.insert(name.to_string(), (name.to_string(), Node::Value(ContentType::Text, value.into().into_bytes())));
        self
    }

    fn lines(&mut self, name: &str, values: impl IntoIterator<Item = impl ToString>) -> &mut Self {
        let joined: Vec<String> = values.into_iter().map(|v| v.to_string()).collect();
        self.value(name, joined.join("\n"))
    }

    fn dir(&mut self, name: &str, dir: Dir) -> &mut Self {
        self.entries.insert(name.to_string(), (format!("{name}/"), Node::Dir(dir)));
        self
    }

    fn entry(&mut self, name: &str, listed_as: String, node: Node) -> &mut Self {
        self.entries.insert(name.to_string(), (listed_as, node));
        self
    }

    /// The listing body.
    pub fn listing(&self) -> String {
        let lines: Vec<&str> = self.entries.values().map(|(l, _)| l.as_str()).collect();
        lines.join("\n")
    }

    pub fn get(&self, segment: &str) -> Option<&Node> {
        self.entries.get(segment).map(|(_, n)| n)
    }
}

/// What a path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    Found(&'a Node),
    NotFound,
}

/// Resolves `segments` (already split on `/`, percent-decoded) below `root`. `trailing_slash`
/// says whether the path ended in `/`.
pub fn resolve<'a>(root: &'a Node, segments: &[String], trailing_slash: bool) -> Lookup<'a> {
    let mut node = root;
    for seg in segments {
        match node {
            Node::Dir(d) => match d.get(seg) {
                Some(n) => node = n,
                None => return Lookup::NotFound,
            },
            Node::Value(..) => return Lookup::NotFound,
        }
    }
    if trailing_slash && matches!(node, Node::Value(..)) && !segments.is_empty() {
        return Lookup::NotFound;
    }
    Lookup::Found(node)
}

/// The tree under one version (`/latest/`): `dynamic`, `meta-data`, `user-data`.
pub fn version_tree(view: &InstanceView) -> Node {
    let mut v = Dir::default();
    let mut dynamic = Dir::default();
    let mut identity = Dir::default();
    identity.value("document", identity_document(view));
    dynamic.dir("instance-identity", identity);
    v.entry("dynamic", "dynamic".into(), Node::Dir(dynamic));
    v.entry("meta-data", "meta-data".into(), Node::Dir(meta_data(view)));
    if let Some(ud) = &view.user_data {
        v.entry("user-data", "user-data".into(), Node::Value(ContentType::OctetStream, ud.clone()));
    }
    Node::Dir(v)
}

fn meta_data(view: &InstanceView) -> Dir {
    let primary = view.primary_interface();
    let mut md = Dir::default();
    md.value("ami-id", &view.image_id)
        .value("ami-launch-index", view.launch_index.to_string())
        .value("ami-manifest-path", "(unknown)")
        .value("hostname", &view.hostname)
        .value("instance-action", "none")
        .value("instance-id", &view.instance_id)
        .value("instance-life-cycle", "on-demand")
        .value("instance-type", &view.instance_type)
        .value("local-hostname", &view.hostname)
        .value("reservation-id", &view.reservation_id);

    let mut bdm = Dir::default();
    bdm.value("ami", &view.root_device_name).value("root", &view.root_device_name);
    for (name, device) in &view.block_devices {
        bdm.value(name, device);
    }
    md.dir("block-device-mapping", bdm);

    if let Some(p) = primary {
        if let Some(ip) = p.private_ips.first() {
            md.value("local-ipv4", ip.to_string());
        }
        md.value("mac", &p.mac);
        md.lines("security-groups", p.security_groups.iter().map(|g| &g.name));
        if let Some(ip) = p.public_ip {
            md.value("public-ipv4", ip.to_string());
        }
        if let Some(h) = &p.public_hostname {
            md.value("public-hostname", h);
        }
    }

    let mut macs = Dir::default();
    for nic in &view.interfaces {
        macs.dir(&nic.mac, interface_dir(view, nic));
    }
    let mut interfaces = Dir::default();
    interfaces.dir("macs", macs);
    let mut network = Dir::default();
    network.dir("interfaces", interfaces);
    md.dir("network", network);

    let mut placement = Dir::default();
    placement
        .value("availability-zone", &view.availability_zone)
        .value("availability-zone-id", &view.availability_zone_id)
        .value("region", &view.region);
    md.dir("placement", placement);

    if !view.public_keys.is_empty() {
        let mut keys = Dir::default();
        for (i, key) in view.public_keys.iter().enumerate() {
            let mut k = Dir::default();
            k.value("openssh-key", &key.openssh_key);
            keys.entry(&i.to_string(), format!("{i}={}", key.name), Node::Dir(k));
        }
        md.dir("public-keys", keys);
    }

    let mut services = Dir::default();
    services.value("domain", "amazonaws.com").value("partition", "aws");
    md.dir("services", services);

    if view.options.instance_metadata_tags == Toggle::Enabled {
        let mut instance = Dir::default();
        for (k, v) in &view.tags {
            if tag_key_servable(k) {
                instance.value(k, v);
            }
        }
        let mut tags = Dir::default();
        tags.dir("instance", instance);
        md.dir("tags", tags);
    }
    md
}

/// AWS refuses to turn metadata tags on while a key cannot be a path segment (`/`, spaces,
/// `.`, `..`, `_index`); Corral skips such keys instead.
fn tag_key_servable(k: &str) -> bool {
    !k.is_empty() && !k.contains('/') && !k.contains(' ') && k != "." && k != ".." && k != "_index"
}

fn interface_dir(view: &InstanceView, nic: &InterfaceView) -> Dir {
    let mut d = Dir::default();
    d.value("device-number", nic.device_number.to_string())
        .value("interface-id", &nic.interface_id)
        .value("local-hostname", &nic.local_hostname)
        .lines("local-ipv4s", &nic.private_ips)
        .value("mac", &nic.mac)
        .value("owner-id", &view.account_id)
        .lines("security-group-ids", nic.security_groups.iter().map(|g| &g.id))
        .lines("security-groups", nic.security_groups.iter().map(|g| &g.name))
        .value("subnet-id", &nic.subnet_id)
        .value("subnet-ipv4-cidr-block", &nic.subnet_cidr)
        .value("vpc-id", &nic.vpc_id)
        .value("vpc-ipv4-cidr-block", nic.vpc_cidrs.first().cloned().unwrap_or_default())
        .lines("vpc-ipv4-cidr-blocks", &nic.vpc_cidrs);
    if let Some(public) = nic.public_ip {
        d.value("public-ipv4s", public.to_string());
        if let Some(h) = &nic.public_hostname {
            d.value("public-hostname", h);
        }
        if let Some(private) = nic.private_ips.first() {
            let mut assoc = Dir::default();
            assoc.value(&public.to_string(), private.to_string());
            d.dir("ipv4-associations", assoc);
        }
    }
    d
}
