//! DescribeInstances and DescribeInstanceStatus: instances through the generic Describe path,
//! each joined (for its page only) with its interfaces, their groups, its volumes and its
//! image's root device.

use super::{root_device, sorted_volumes, Instance, Reservation};
use crate::describe::{Describe, Described, FilterLine, TagMap};
use crate::{filter, limits, Control};
use corral_ec2_query::requests as rq;
use corral_store::{Doc, EniRecord, ImageRecord, InstanceRecord, Listed, Related, TagRecord, Tx, VolumeRecord};
use corral_types::{IdKind, Result};
use std::collections::HashMap;

/// A filter on a field of the instance's interfaces.
const fn eni(field: &'static str, list: bool) -> Related {
    Related { kind: EniRecord::KIND, link: "instance_id", field, list }
}

impl Described for Instance {
    type Record = InstanceRecord;
    const KIND: IdKind = IdKind::Instance;
    const STORED_FILTERS: &'static [(&'static str, &'static str)] = &[
        ("instance-id", "instance_id"),
        ("instance-state-name", "state"),
        ("instance-type", "instance_type"),
        ("image-id", "image_id"),
        ("availability-zone", "availability_zone"),
        ("key-name", "key_name"),
        ("reservation-id", "reservation_id"),
    ];
    const RELATED_FILTERS: &'static [(&'static str, Related)] = &[
        ("vpc-id", eni("vpc_id", false)),
        ("subnet-id", eni("subnet_id", false)),
        ("network-interface.network-interface-id", eni("eni_id", false)),
        ("private-ip-address", eni("private_ip", false)),
        ("ip-address", eni("public_ip", false)),
        ("instance.group-id", eni("groups", true)),
        ("group-id", eni("groups", true)),
    ];
    fn record_id(rec: &InstanceRecord) -> &str {
        &rec.instance_id
    }
    fn assemble(tx: &Tx<'_>, recs: Vec<InstanceRecord>, tags: &mut TagMap) -> Result<Vec<Instance>> {
        let ids: Vec<String> = recs.iter().map(|r| r.instance_id.clone()).collect();
        let mut enis: HashMap<String, Vec<EniRecord>> = HashMap::new();
        for e in tx.eni_list_for_instances(&ids)? {
            if let Some(i) = &e.instance_id {
                enis.entry(i.clone()).or_default().push(e);
            }
        }
        let mut volumes: HashMap<String, Vec<VolumeRecord>> = HashMap::new();
        for v in tx.docs_by_parents_unordered::<VolumeRecord>(&ids)? {
            if let Some(a) = &v.attachment {
                volumes.entry(a.instance_id.clone()).or_default().push(v);
            }
        }
        let groups = crate::eni::groups_of(tx, enis.values().flatten().flat_map(|e| e.groups.iter()))?;
        let mut image_ids: Vec<String> = recs.iter().map(|r| r.image_id.clone()).collect();
        image_ids.sort();
        image_ids.dedup();
        let images: Vec<ImageRecord> = ImageRecord::with_ids(tx, &image_ids)?.into_iter().map(|(_, i)| i).collect();
        Ok(recs
            .into_iter()
            .map(|rec| {
                let root_device_name = root_device(&images, &rec.image_id);
                let mut enis: Vec<EniRecord> = enis.remove(&rec.instance_id).unwrap_or_default();
                enis.sort_by_key(|e| e.device_index);
                let groups = enis.first().map(|e| crate::eni::group_names(&groups, &e.groups)).unwrap_or_default();
                let volumes = sorted_volumes(volumes.remove(&rec.instance_id).unwrap_or_default(), &root_device_name);
                Instance { tags: tags.remove(&rec.instance_id).unwrap_or_default(), rec, root_device_name, enis, groups, volumes }
            })
            .collect())
    }
    fn id(&self) -> &str {
        &self.rec.instance_id
    }
    fn tags(&self) -> &[TagRecord] {
        &self.tags
    }
    /// The record without its interfaces, volumes, groups, tags or root device: only for a
    /// caller that renders it from what it holds at the record's revision.
    fn bare(rec: InstanceRecord) -> Option<Self> {
        Some(Instance { rec, tags: vec![], root_device_name: String::new(), enis: vec![], groups: vec![], volumes: vec![] })
    }
}

fn enis(i: &Instance, f: impl Fn(&EniRecord) -> Option<String>) -> Vec<String> {
    i.enis.iter().filter_map(f).collect()
}

/// DescribeInstances' filters besides those the view answers.
const INSTANCE_FILTERS: &[FilterLine<Instance>] = &[
    ("instance-id", |i, _| vec![i.rec.instance_id.clone()]),
    ("instance-state-name", |i, _| vec![i.rec.state.name().into()]),
    ("instance-state-code", |i, _| vec![i.rec.state.code().to_string()]),
    ("instance-type", |i, _| vec![i.rec.instance_type.clone()]),
    ("image-id", |i, _| vec![i.rec.image_id.clone()]),
    ("key-name", |i, _| i.rec.key_name.iter().cloned().collect()),
    ("availability-zone", |i, _| vec![i.rec.availability_zone.clone()]),
    ("reservation-id", |i, _| vec![i.rec.reservation_id.clone()]),
    ("owner-id", |_, s| vec![s.account_id.to_string()]),
    ("architecture", |_, _| vec!["x86_64".into()]),
    ("root-device-name", |i, _| vec![i.root_device_name.clone()]),
    ("root-device-type", |_, _| vec!["ebs".into()]),
    ("launch-time", |i, _| vec![i.rec.launch_time.clone()]),
    ("client-token", |i, _| i.rec.client_token.iter().cloned().collect()),
    // On-demand instances have no lifecycle (it is `spot` or `scheduled`).
    ("instance-lifecycle", |_, _| vec![]),
    ("virtualization-type", |_, _| vec!["hvm".into()]),
    ("vpc-id", |i, _| enis(i, |e| Some(e.vpc_id.clone()))),
    ("subnet-id", |i, _| enis(i, |e| Some(e.subnet_id.clone()))),
    ("private-ip-address", |i, _| enis(i, |e| Some(e.private_ip.clone()))),
    ("network-interface.addresses.private-ip-address", |i, _| enis(i, |e| Some(e.private_ip.clone()))),
    ("private-dns-name", |i, _| enis(i, |e| Some(e.private_dns_name.clone()))),
    ("network-interface.network-interface-id", |i, _| enis(i, |e| Some(e.eni_id.clone()))),
    ("instance.group-id", |i, _| i.groups.iter().map(|(id, _)| id.clone()).collect()),
    ("group-id", |i, _| i.groups.iter().map(|(id, _)| id.clone()).collect()),
    ("instance.group-name", |i, _| i.groups.iter().map(|(_, n)| n.clone()).collect()),
    ("group-name", |i, _| i.groups.iter().map(|(_, n)| n.clone()).collect()),
    ("ip-address", |i, _| enis(i, |e| e.public_ip.clone())),
    ("network-interface.association.allocation-id", |i, _| enis(i, |e| e.public_ip_allocation.clone())),
    ("network-interface.addresses.association.allocation-id", |i, _| enis(i, |e| e.public_ip_allocation.clone())),
    ("network-interface.attachment.instance-id", |i, _| enis(i, |_| Some(i.rec.instance_id.clone()))),
    ("network-interface.attachment.instance-owner-id", |i, s| enis(i, |_| Some(s.account_id.to_string()))),
    ("network-interface.availability-zone", |i, _| enis(i, |_| Some(i.rec.availability_zone.clone()))),
    ("network-interface.requester-managed", |i, _| enis(i, |_| Some("false".into()))),
    ("network-interface.deny-all-igw-traffic", |i, _| enis(i, |_| Some("false".into()))),
    ("network-interface.ipv6-native", |i, _| enis(i, |_| Some("false".into()))),
    ("network-interface.tag-key", |_, _| vec![]),
    ("network-interface.tag-value", |_, _| vec![]),
    // Documented by AWS, with no member in the response (and nothing here that has one).
    ("metadata-options.http-protocol-ipv4", |_, _| vec!["enabled".into()]),
    ("network-interface.association.association-id", |_, _| vec![]),
    ("network-interface.addresses.association.association-id", |_, _| vec![]),
    ("network-interface.requester-id", |_, _| vec![]),
    ("network-interface.outpost-arn", |_, _| vec![]),
    ("product-code", |_, _| vec![]),
    ("requester-id", |_, _| vec![]),
    ("network-interface.association.public-ip", |i, _| enis(i, |e| e.public_ip.clone())),
];

/// Whether an instance still shows: a terminated one does for an hour, as on AWS.
fn visible(i: &Instance) -> bool {
    let cutoff = chrono::Utc::now() - chrono::Duration::seconds(limits::TERMINATED_VISIBLE_SECS);
    match &i.rec.terminated_at {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t).map(|t| t > cutoff).unwrap_or(true),
        None => true,
    }
}

impl Control {
    /// Instances matching ids and filters, in launch order, paginated. `rendered` answers the
    /// filters that have no line here from each instance's view.
    fn instance_describe(
        &self,
        d: Describe<'_, Instance>,
        rendered: &filter::Rendered<'_, Instance>,
    ) -> Result<(Vec<Instance>, Option<String>)> {
        d.ids_without_max_results("instancesSet")?;
        self.describe(&d.table(INSTANCE_FILTERS).rendered(Some(rendered)), visible)
    }

    /// DescribeInstanceStatus: without IncludeAllInstances only running instances, as on AWS
    /// (decided before the page is cut). `rendered` answers the status filters.
    pub fn instance_status_describe(
        &self,
        req: &rq::DescribeInstanceStatus,
        rendered: &filter::Rendered<'_, Instance>,
    ) -> Result<(Vec<Instance>, Option<String>)> {
        let mut filters = req.filters.clone();
        if !req.include_all_instances {
            filters.push(rq::Filter { name: "instance-state-name".into(), values: vec!["running".into()] });
        }
        let d = Describe::new(&req.instance_ids, &filters, req.dry_run, req.max_results, req.next_token.as_deref());
        self.instance_describe(d, rendered)
    }

    /// DescribeInstances, by reservation. `known` names the instances whose rendering the
    /// caller holds at their record's `rev`: those may come back bare (the record only).
    pub fn instance_describe_reservations(
        &self,
        req: &rq::DescribeInstances,
        rendered: &filter::Rendered<'_, Instance>,
        known: &dyn Fn(&InstanceRecord) -> bool,
    ) -> Result<(Vec<Reservation>, Option<String>)> {
        let d = Describe::new(&req.instance_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref()).known(Some(known));
        let (items, next) = self.instance_describe(d, rendered)?;
        let mut out: Vec<Reservation> = Vec::new();
        for i in items {
            match out.last_mut() {
                Some(r) if r.reservation_id == i.rec.reservation_id => r.instances.push(i),
                _ => out.push(Reservation {
                    reservation_id: i.rec.reservation_id.clone(),
                    owner_id: self.account_id.clone(),
                    instances: vec![i],
                }),
            }
        }
        Ok((out, next))
    }
}
