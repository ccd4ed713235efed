//! Instances: RunInstances and the lifecycle actions. Each action validates, writes the new
//! desired state in one transaction and kicks the reconciler; the reconciler (see
//! `reconcile.rs`) makes the host follow and moves the EC2 state as the VM really changes.

mod attribute;
mod describe;
mod state;

use crate::{limits, tag, Control};
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
        // Only a call with a token is ever compared with another.
        let request_hash = req.client_token.as_ref().map(|_| request_hash(req)).unwrap_or_default();
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
                    rev: 0,
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
        .inspect(|r| self.kick_instances(r.instances.iter().map(|i| i.rec.instance_id.clone())))
    }

    fn reservation_load(&self, tx: &corral_store::Tx<'_>, reservation_id: &str) -> Result<Reservation> {
        let recs = tx.instance_list_by_reservation(reservation_id)?;
        let ids: Vec<&str> = recs.iter().map(|r| r.instance_id.as_str()).collect();
        let mut tags = tx.tag_map_for(&ids)?;
        let instances = <Instance as crate::describe::Described>::assemble(tx, recs, &mut tags)?;
        Ok(Reservation { reservation_id: reservation_id.to_string(), owner_id: self.account_id.clone(), instances })
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
        self.host_mark([id.to_string()]);
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
