//! Instances: RunInstances and the lifecycle actions. Each action validates, writes the new
//! desired state in one transaction and kicks the reconciler; the reconciler (see
//! `reconcile.rs`) makes the host follow and moves the EC2 state as the VM really changes.

mod attribute;
mod state;

use crate::{filter, limits, tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{Desired, EniRecord, ImageRecord, InstanceRecord, SecurityGroupRecord, TagRecord, VolumeRecord};
use corral_types::instance_type::{instance_type, FALLBACK_INSTANCE_TYPE};
use corral_types::{Error, ErrorCode, IdKind, InstanceState, ResourceId, Result};
use sha2::{Digest, Sha256};

/// An instance as the API shows it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub rec: InstanceRecord,
    pub tags: Vec<TagRecord>,
    pub root_device_name: String,
    /// Its network interfaces, primary first.
    pub enis: Vec<EniRecord>,
    /// (id, name) of the primary interface's security groups.
    pub groups: Vec<(String, String)>,
    /// Its attached volumes, the root first.
    pub volumes: Vec<VolumeRecord>,
}

/// What describing instances needs besides the instances: loaded once per call.
struct Related {
    images: Vec<ImageRecord>,
    /// Interfaces by instance id.
    enis: std::collections::HashMap<String, Vec<EniRecord>>,
    groups: Vec<SecurityGroupRecord>,
    /// Attached volumes by instance id.
    volumes: std::collections::HashMap<String, Vec<VolumeRecord>>,
}

impl Related {
    fn load(tx: &corral_store::Tx<'_>) -> Result<Related> {
        let mut enis: std::collections::HashMap<String, Vec<EniRecord>> = std::collections::HashMap::new();
        for e in tx.doc_list::<EniRecord>()? {
            if let Some(i) = &e.instance_id {
                enis.entry(i.clone()).or_default().push(e);
            }
        }
        let mut volumes: std::collections::HashMap<String, Vec<VolumeRecord>> = std::collections::HashMap::new();
        for v in tx.doc_list::<VolumeRecord>()? {
            if let Some(a) = &v.attachment {
                volumes.entry(a.instance_id.clone()).or_default().push(v);
            }
        }
        Ok(Related { images: tx.image_list()?, enis, groups: tx.doc_list()?, volumes })
    }

    fn instance(&self, rec: InstanceRecord, tags: Vec<TagRecord>) -> Instance {
        let root_device_name = root_device(&self.images, &rec.image_id);
        let mut enis: Vec<EniRecord> = self.enis.get(&rec.instance_id).cloned().unwrap_or_default();
        enis.sort_by_key(|e| e.device_index);
        let groups = enis.first().map(|e| crate::eni::group_names(&self.groups, &e.groups)).unwrap_or_default();
        let volumes = sorted_volumes(self.volumes.get(&rec.instance_id).cloned().unwrap_or_default(), &root_device_name);
        Instance { rec, tags, root_device_name, enis, groups, volumes }
    }
}

pub struct Reservation {
    pub reservation_id: String,
    pub owner_id: String,
    pub instances: Vec<Instance>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub instance_id: String,
    pub previous: InstanceState,
    pub current: InstanceState,
}

const INSTANCE_FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "instance-state-code",
    "instance-type",
    "image-id",
    "key-name",
    "availability-zone",
    "reservation-id",
    "owner-id",
    "architecture",
    "root-device-name",
    "root-device-type",
    "launch-time",
    "client-token",
    "instance-lifecycle",
    "virtualization-type",
    "vpc-id",
    "subnet-id",
    "private-ip-address",
    "network-interface.addresses.private-ip-address",
    "private-dns-name",
    "network-interface.network-interface-id",
    "instance.group-id",
    "group-id",
    "instance.group-name",
    "group-name",
    "ip-address",
    "network-interface.association.public-ip",
];

impl Control {
    pub fn instance_run(&self, req: &rq::RunInstances) -> Result<Reservation> {
        let image_id = req.image_id.as_deref().ok_or_else(|| Error::missing("ImageId"))?;
        if ResourceId::parse(IdKind::Image, image_id).is_none() {
            return Err(Error::malformed(IdKind::Image, image_id));
        }
        let min = req.min_count.ok_or_else(|| Error::missing("MinCount"))?;
        let max = req.max_count.ok_or_else(|| Error::missing("MaxCount"))?;
        if min < 1 {
            return Err(Error::invalid_value("MinCount", &min.to_string(), "MinCount must be at least 1."));
        }
        if max < min {
            return Err(Error::invalid_value("MaxCount", &max.to_string(), "MaxCount must be at least MinCount."));
        }
        let type_name = req.instance_type.as_deref().unwrap_or(FALLBACK_INSTANCE_TYPE);
        let itype = instance_type(type_name)
            .ok_or_else(|| Error::new(ErrorCode::InvalidParameterValue, format!("Invalid value '{type_name}' for InstanceType.")))?;
        let zones = self.config.zones();
        let explicit_zone = match req.placement.as_ref().and_then(|p| p.availability_zone.as_deref()).filter(|z| !z.is_empty()) {
            Some(z) if zones.iter().any(|x| x == z) => Some(z.to_string()),
            Some(z) => return Err(Error::new(ErrorCode::InvalidParameterValue, format!("Invalid availability zone: [{z}]"))),
            None => None,
        };
        let behaviour = req.instance_initiated_shutdown_behavior.as_deref().unwrap_or("stop");
        if behaviour != "stop" && behaviour != "terminate" {
            return Err(Error::invalid_value("InstanceInitiatedShutdownBehavior", behaviour, "Valid values are stop and terminate."));
        }
        if let Some(ud) = &req.user_data {
            check_user_data(ud)?;
        }
        let tags = tag::from_specifications(&req.tag_specifications, "instance", &["instance", "volume", "network-interface"])?;
        let volume_tags = tag::from_specifications(&req.tag_specifications, "volume", &["instance", "volume", "network-interface"])?;
        if let Some(t) = &req.client_token {
            if t.len() > 64 {
                return Err(Error::invalid_value("ClientToken", t, "Client tokens are at most 64 ASCII characters."));
            }
        }
        let request_hash = request_hash(req);
        let metadata = metadata_options(corral_store::MetadataOptions::default(), req.metadata_options.as_ref())?;
        let options = attribute::launch_options(req, itype)?;

        self.store.transaction(|tx| {
            if let Some(token) = &req.client_token {
                if let Some((hash, reservation_id)) = tx.client_token_get(token, "RunInstances")? {
                    if hash != request_hash {
                        return Err(Error::new(
                            ErrorCode::IdempotentParameterMismatch,
                            "The client token you have provided is associated with a resource that is already deleted or with different parameters.",
                        ));
                    }
                    return self.reservation_load(tx, &reservation_id);
                }
            }
            let image = tx.image_get(image_id)?.ok_or_else(|| Error::not_found(IdKind::Image, image_id))?;
            if image.state != "available" {
                return Err(Error::new(ErrorCode::InvalidAmiNotAvailable, format!("Image {image_id} is not available.")));
            }
            let launch_volumes = self.launch_volumes(tx, &image, &req.block_device_mappings)?;
            if let Some(k) = &req.key_name {
                if tx.keypair_get_by_name(k)?.is_none() {
                    return Err(Error::not_found(IdKind::KeyPair, k));
                }
            }
            let placement = self.launch_placement(tx, req, explicit_zone.as_deref(), max)?;
            let zone = placement.subnet.availability_zone.clone();
            let delete_eni = req.network_interfaces.first().and_then(|n| n.delete_on_termination).unwrap_or(true);
            let active = tx.instance_count_active()?;
            let room = self.config.max_instances.saturating_sub(active) as i64;
            if room < min {
                return Err(Error::new(
                    ErrorCode::InsufficientInstanceCapacity,
                    format!("There is not enough capacity to fulfill your request: {room} more instances fit on this cloud."),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let count = max.min(room);
            let reservation_id = ResourceId::generate(IdKind::Reservation).into_string();
            let now = crate::now_iso();
            let mut instances = Vec::with_capacity(count as usize);
            for idx in 0..count {
                let rec = InstanceRecord {
                    instance_id: ResourceId::generate(IdKind::Instance).into_string(),
                    reservation_id: reservation_id.clone(),
                    image_id: image_id.to_string(),
                    instance_type: itype.name.to_string(),
                    vcpus: itype.vcpus,
                    memory_mib: itype.memory_mib,
                    key_name: req.key_name.clone(),
                    state: InstanceState::Pending,
                    desired: Desired::Running,
                    force_stop: false,
                    state_reason_code: Some("pending".into()),
                    state_reason_message: Some("pending".into()),
                    state_transition_reason: String::new(),
                    availability_zone: zone.clone(),
                    launch_time: now.clone(),
                    ami_launch_index: idx as u32,
                    user_data: req.user_data.clone(),
                    client_token: req.client_token.clone(),
                    disable_api_termination: req.disable_api_termination.unwrap_or(false),
                    shutdown_behavior: behaviour.to_string(),
                    host: self.config.host.clone(),
                    observed_generation: 0,
                    terminated_at: None,
                    seq: 0,
                    metadata: metadata.clone(),
                    options: options.clone(),
                };
                tx.instance_insert(&rec)?;
                let eni = self.eni_create_primary(tx, &placement, &rec.instance_id, delete_eni)?;
                let t = tag::insert(tx, &rec.instance_id, "instance", &tags)?;
                self.launch_volumes_create(tx, &rec, &image, &launch_volumes, &volume_tags)?;
                let volumes = sorted_volumes(tx.doc_list_by_parent::<VolumeRecord>(&rec.instance_id)?, &image.root_device_name);
                let groups = crate::eni::group_names(&tx.doc_list::<SecurityGroupRecord>()?, &eni.groups);
                instances.push(Instance { rec, tags: t, root_device_name: image.root_device_name.clone(), enis: vec![eni], groups, volumes });
            }
            if let Some(token) = &req.client_token {
                tx.client_token_insert(token, "RunInstances", &request_hash, &reservation_id)?;
            }
            Ok(Reservation { reservation_id, owner_id: self.account_id.clone(), instances })
        })
        .inspect(|_| self.kick())
    }

    fn reservation_load(&self, tx: &corral_store::Tx<'_>, reservation_id: &str) -> Result<Reservation> {
        let related = Related::load(tx)?;
        let mut instances = Vec::new();
        for rec in tx.instance_list()?.into_iter().filter(|i| i.reservation_id == reservation_id) {
            let tags = tx.tag_list_for(&rec.instance_id)?;
            instances.push(related.instance(rec, tags));
        }
        Ok(Reservation { reservation_id: reservation_id.to_string(), owner_id: self.account_id.clone(), instances })
    }

    /// Instances matching ids and filters, in launch order, paginated. `rendered` answers the
    /// filters that have no line here from each instance's view.
    pub fn instance_describe(
        &self,
        ids: &[String],
        filters: &[rq::Filter],
        max_results: Option<i64>,
        next_token: Option<&str>,
        dry_run: bool,
        rendered: Option<&filter::Rendered<'_, Instance>>,
    ) -> Result<(Vec<Instance>, Option<String>)> {
        filter::check_rendered(filters, INSTANCE_FILTERS, true, rendered.map(|r| r.shape))?;
        check_ids(ids)?;
        if !ids.is_empty() && max_results.is_some() {
            return Err(Error::combination("The parameter instancesSet cannot be used with the parameter maxResults"));
        }
        if dry_run {
            return Err(Error::dry_run());
        }
        let (all, tags, related) = self.store.read(|tx| Ok::<_, Error>((tx.instance_list()?, tx.tag_map()?, Related::load(tx)?)))?;
        let cutoff = chrono::Utc::now() - chrono::Duration::seconds(limits::TERMINATED_VISIBLE_SECS);
        let visible = |i: &InstanceRecord| match &i.terminated_at {
            Some(t) => chrono::DateTime::parse_from_rfc3339(t).map(|t| t > cutoff).unwrap_or(true),
            None => true,
        };
        let missing: Vec<&str> =
            ids.iter().filter(|id| !all.iter().any(|i| &i.instance_id == *id && visible(i))).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(Error::not_found(IdKind::Instance, &missing.join(", ")));
        }
        let account = self.account_id.clone();
        let items: Vec<Instance> = all
            .into_iter()
            .filter(|i| visible(i) && (ids.is_empty() || ids.contains(&i.instance_id)))
            .map(|rec| {
                let t = tags.get(&rec.instance_id).cloned().unwrap_or_default();
                related.instance(rec, t)
            })
            .filter(|i| {
                let r = &i.rec;
                filter::matches(filters, &i.tags, |n| match n {
                    "instance-id" => vec![r.instance_id.clone()],
                    "instance-state-name" => vec![r.state.name().into()],
                    "instance-state-code" => vec![r.state.code().to_string()],
                    "instance-type" => vec![r.instance_type.clone()],
                    "image-id" => vec![r.image_id.clone()],
                    "key-name" => r.key_name.iter().cloned().collect(),
                    "availability-zone" => vec![r.availability_zone.clone()],
                    "reservation-id" => vec![r.reservation_id.clone()],
                    "owner-id" => vec![account.clone()],
                    "architecture" => vec!["x86_64".into()],
                    "root-device-name" => vec![i.root_device_name.clone()],
                    "root-device-type" => vec!["ebs".into()],
                    "launch-time" => vec![r.launch_time.clone()],
                    "client-token" => r.client_token.iter().cloned().collect(),
                    "virtualization-type" => vec!["hvm".into()],
                    "vpc-id" => i.enis.iter().map(|e| e.vpc_id.clone()).collect(),
                    "subnet-id" => i.enis.iter().map(|e| e.subnet_id.clone()).collect(),
                    "private-ip-address" | "network-interface.addresses.private-ip-address" => {
                        i.enis.iter().map(|e| e.private_ip.clone()).collect()
                    }
                    "private-dns-name" => i.enis.iter().map(|e| e.private_dns_name.clone()).collect(),
                    "network-interface.network-interface-id" => i.enis.iter().map(|e| e.eni_id.clone()).collect(),
                    "instance.group-id" | "group-id" => i.groups.iter().map(|(id, _)| id.clone()).collect(),
                    "instance.group-name" | "group-name" => i.groups.iter().map(|(_, n)| n.clone()).collect(),
                    "ip-address" | "network-interface.association.public-ip" => i.enis.iter().filter_map(|e| e.public_ip.clone()).collect(),
                    other => rendered.map(|v| v.values(i, other)).unwrap_or_default(),
                })
            })
            .collect();
        filter::page(items, max_results, next_token, (5, 1000))
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
        self.instance_describe(&req.instance_ids, &filters, req.max_results, req.next_token.as_deref(), req.dry_run, Some(rendered))
    }

    pub fn instance_describe_reservations(
        &self,
        req: &rq::DescribeInstances,
        rendered: &filter::Rendered<'_, Instance>,
    ) -> Result<(Vec<Reservation>, Option<String>)> {
        let (items, next) = self.instance_describe(
            &req.instance_ids,
            &req.filters,
            req.max_results,
            req.next_token.as_deref(),
            req.dry_run,
            Some(rendered),
        )?;
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

    /// (instance id, console bytes, timestamp). The last 64 KiB, as EC2 keeps.
    pub async fn instance_console(&self, req: &rq::GetConsoleOutput) -> Result<(String, Vec<u8>, String)> {
        let id = req.instance_id.as_deref().ok_or_else(|| Error::missing("InstanceId"))?;
        check_ids(&[id.to_string()])?;
        let rec = self.store.read(|tx| tx.instance_get(id))?.ok_or_else(|| Error::not_found(IdKind::Instance, id))?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        if rec.state == InstanceState::Terminated {
            return Ok((rec.instance_id, Vec::new(), crate::now_iso()));
        }
        let mut bytes = self.agent.vm_console(id).await.unwrap_or_default();
        if bytes.len() > limits::CONSOLE_OUTPUT_BYTES {
            bytes.drain(..bytes.len() - limits::CONSOLE_OUTPUT_BYTES);
        }
        Ok((rec.instance_id, bytes, crate::now_iso()))
    }

    pub fn instance_metadata_options_modify(&self, req: &rq::ModifyInstanceMetadataOptions) -> Result<InstanceRecord> {
        let id = req.instance_id.as_deref().ok_or_else(|| Error::missing("InstanceId"))?;
        check_ids(&[id.to_string()])?;
        let change = rq::MetadataOptionsRequest {
            http_tokens: req.http_tokens.clone(),
            http_endpoint: req.http_endpoint.clone(),
            http_put_response_hop_limit: req.http_put_response_hop_limit,
            instance_metadata_tags: req.instance_metadata_tags.clone(),
        };
        let out = self.store.transaction(|tx| {
            let mut r = tx.instance_get(id)?.ok_or_else(|| Error::not_found(IdKind::Instance, id))?;
            if r.state == InstanceState::Terminated {
                return Err(Error::incorrect_state(id, r.state.name(), "modified"));
            }
            r.metadata = metadata_options(r.metadata.clone(), Some(&change))?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.instance_update(&r)?;
            Ok(r)
        })?;
        self.kick_host();
        Ok(out)
    }

    /// Replaces the security groups of an instance's primary interface (ModifyInstanceAttribute
    /// groupSet); the data path applies the change live.
    fn instance_groups_set(&self, tx: &corral_store::Tx<'_>, id: &str, groups: &[String]) -> Result<()> {
        let mut eni = tx
            .eni_list_for_instance(id)?
            .into_iter()
            .find(|e| e.device_index == 0)
            .ok_or_else(|| Error::new(ErrorCode::InvalidParameterValue, format!("Instance {id} has no network interface.")))?;
        for g in groups {
            let rec: SecurityGroupRecord = crate::lookup::get(tx, IdKind::SecurityGroup, g)?;
            if rec.vpc_id != eni.vpc_id {
                return Err(Error::new(
                    ErrorCode::InvalidParameter,
                    format!("Security group {g} and instance {id} belong to different networks."),
                ));
            }
        }
        eni.groups = groups.to_vec();
        eni.groups.dedup();
        tx.doc_put(&eni)?;
        Ok(())
    }

    /// (id, name) of the security groups of an instance's primary interface.
    pub fn instance_groups(&self, id: &str) -> Result<Vec<(String, String)>> {
        self.store.read(|tx| {
            let groups = tx.doc_list::<SecurityGroupRecord>()?;
            let eni = tx.eni_list_for_instance(id)?.into_iter().find(|e| e.device_index == 0);
            Ok(eni.map(|e| crate::eni::group_names(&groups, &e.groups)).unwrap_or_default())
        })
    }

    pub fn instance_get(&self, id: &str) -> Result<InstanceRecord> {
        check_ids(&[id.to_string()])?;
        self.store.read(|tx| tx.instance_get(id))?.ok_or_else(|| Error::not_found(IdKind::Instance, id))
    }
}

/// Applies MetadataOptions (RunInstances or ModifyInstanceMetadataOptions) to `base`.
pub(crate) fn metadata_options(
    mut base: corral_store::MetadataOptions,
    req: Option<&rq::MetadataOptionsRequest>,
) -> Result<corral_store::MetadataOptions> {
    let Some(req) = req else { return Ok(base) };
    if let Some(t) = &req.http_tokens {
        if t != "optional" && t != "required" {
            return Err(Error::invalid_value("HttpTokens", t, "Valid values are optional and required."));
        }
        base.http_tokens = t.clone();
    }
    if let Some(e) = &req.http_endpoint {
        if e != "enabled" && e != "disabled" {
            return Err(Error::invalid_value("HttpEndpoint", e, "Valid values are enabled and disabled."));
        }
        base.http_endpoint = e.clone();
    }
    if let Some(h) = req.http_put_response_hop_limit {
        if !(1..=64).contains(&h) {
            return Err(Error::invalid_value("HttpPutResponseHopLimit", &h.to_string(), "Valid values are 1 to 64."));
        }
        base.hop_limit = h as u8;
    }
    if let Some(t) = &req.instance_metadata_tags {
        if t != "enabled" && t != "disabled" {
            return Err(Error::invalid_value("InstanceMetadataTags", t, "Valid values are enabled and disabled."));
        }
        base.instance_metadata_tags = t.clone();
    }
    Ok(base)
}

/// Volumes as DescribeInstances lists them: the root first, then by device name.
fn sorted_volumes(mut v: Vec<VolumeRecord>, root: &str) -> Vec<VolumeRecord> {
    v.sort_by_key(|v| v.attachment.as_ref().map(|a| (a.device != root, a.device.clone())));
    v
}

fn root_device(images: &[ImageRecord], image_id: &str) -> String {
    images
        .iter()
        .find(|i| i.image_id == image_id)
        .map(|i| i.root_device_name.clone())
        .unwrap_or_else(|| crate::image::ROOT_DEVICE_NAME.to_string())
}

pub(super) fn check_ids(ids: &[String]) -> Result<()> {
    for id in ids {
        if ResourceId::parse(IdKind::Instance, id).is_none() {
            return Err(Error::malformed(IdKind::Instance, id));
        }
    }
    Ok(())
}

pub(super) fn check_user_data(b64: &str) -> Result<()> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| Error::new(ErrorCode::InvalidUserDataMalformed, "Invalid BASE64 encoding of user data."))?;
    if raw.len() > limits::USER_DATA_BYTES {
        return Err(Error::new(ErrorCode::InvalidParameterValue, "User data is limited to 16384 bytes"));
    }
    Ok(())
}

/// A digest of the parameters that make two RunInstances calls "the same request".
fn request_hash(req: &rq::RunInstances) -> String {
    let mut h = Sha256::new();
    h.update(format!("{req:?}").as_bytes());
    hex::encode(h.finalize())
}
