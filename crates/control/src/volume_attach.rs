//! AttachVolume and DetachVolume. On a stopped instance they only change the records (the VM
//! gets its disks when it starts); on a running one they are live: the volume is recorded as
//! `attaching` or `detaching`, the agent hot-plugs or unplugs the disk, and the outcome is
//! recorded, or the previous state put back when the agent failed. The root volume only
//! detaches from a stopped instance.

use crate::device::{device_bus, disk_spec, ROOT_DEVICE_NAME};
use crate::layer::agent_error;
use crate::volume::check_volume_id;
use crate::Control;
use corral_agent_api::DiskBus;
use corral_ec2_query::requests as rq;
use corral_store::{VolumeAttachment, VolumeRecord};
use corral_types::{Error, ErrorCode, IdKind, InstanceState, ResourceId, Result};

impl Control {
    pub async fn volume_attach(&self, req: &rq::AttachVolume) -> Result<VolumeRecord> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let instance_id = req.instance_id.as_deref().ok_or_else(|| Error::missing("InstanceId"))?;
        if ResourceId::parse(IdKind::Instance, instance_id).is_none() {
            return Err(Error::malformed(IdKind::Instance, instance_id));
        }
        let device = req.device.as_deref().ok_or_else(|| Error::missing("Device"))?;
        let _disks = self.disk_lock.lock().await;
        let (v, inst, disk) = self.store.transaction(|tx| {
            let mut v = Self::volume_load(tx, id)?;
            let inst = tx.instance_get(instance_id)?.ok_or_else(|| Error::not_found(IdKind::Instance, instance_id))?;
            if let Some(a) = &v.attachment {
                return Err(Error::new(ErrorCode::VolumeInUse, format!("{id} is already attached to an instance ({})", a.instance_id)));
            }
            if v.state != "available" {
                return Err(Error::new(ErrorCode::IncorrectState, format!("The volume '{id}' is not 'available' (state: {}).", v.state)));
            }
            if !matches!(inst.state, InstanceState::Running | InstanceState::Stopped) {
                return Err(Error::new(
                    ErrorCode::IncorrectInstanceState,
                    format!("Instance '{instance_id}' is not 'running' or 'stopped' (state: {}).", inst.state.name()),
                ));
            }
            if inst.availability_zone != v.availability_zone {
                return Err(Error::new(
                    ErrorCode::InvalidVolumeZoneMismatch,
                    format!("The volume '{id}' is not in the same availability zone as instance '{instance_id}'"),
                ));
            }
            let root = self.root_device_of(tx, &inst)?;
            let bus = match device_bus(device, &root) {
                Some(DiskBus::Root) | None => {
                    return Err(Error::invalid_value("device", device, "Device names are /dev/sd[b-z] or /dev/xvd[b-z]."));
                }
                Some(b) => b,
            };
            for other in tx.doc_list_by_parent::<VolumeRecord>(instance_id)? {
                let taken = other.attachment.as_ref().is_some_and(|a| device_bus(&a.device, &root) == Some(bus));
                if taken {
                    return Err(Error::invalid_value("device", device, &format!("Attachment point {device} is already in use")));
                }
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let live = inst.state == InstanceState::Running;
            v.attachment = Some(VolumeAttachment {
                instance_id: instance_id.to_string(),
                device: device.to_string(),
                state: if live { "attaching" } else { "attached" }.into(),
                attach_time: crate::now_iso(),
                delete_on_termination: false,
            });
            v.state = "in-use".into();
            tx.doc_put(&v)?;
            let disk = if live { Some(disk_spec(tx, &v, bus)?) } else { None };
            Ok((v, inst, disk))
        })?;
        let Some(disk) = disk else { return Ok(v) };
        let attached = async {
            self.layer_ensure_backing(disk.backing.as_ref()).await?;
            self.agent.vm_disk_attach(&inst.instance_id, &disk).await.map_err(|e| agent_error("attaching the volume", e))
        }
        .await;
        self.store
            .transaction(|tx| {
                let mut v = Self::volume_load(tx, id)?;
                match &attached {
                    Ok(()) => {
                        if let Some(a) = v.attachment.as_mut() {
                            a.state = "attached".into();
                        }
                    }
                    Err(_) => {
                        v.attachment = None;
                        v.state = "available".into();
                    }
                }
                tx.doc_put(&v)?;
                Ok::<_, Error>(v)
            })
            .and_then(|v| attached.map(|()| v))
    }

    pub async fn volume_detach(&self, req: &rq::DetachVolume) -> Result<VolumeRecord> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let force = req.force.unwrap_or(false);
        let _disks = self.disk_lock.lock().await;
        let (before, live) = self.store.transaction(|tx| {
            let mut v = Self::volume_load(tx, id)?;
            let Some(a) = v.attachment.clone() else {
                return Err(Error::new(ErrorCode::IncorrectState, format!("Volume '{id}' is in the '{}' state.", v.state)));
            };
            if req.instance_id.as_deref().is_some_and(|i| i != a.instance_id) || req.device.as_deref().is_some_and(|d| d != a.device) {
                return Err(Error::new(
                    ErrorCode::InvalidAttachmentNotFound,
                    format!(
                        "Attachment point {} for instance {} and volume {id} not found",
                        req.device.clone().unwrap_or_default(),
                        req.instance_id.clone().unwrap_or_default()
                    ),
                ));
            }
            if a.state != "attached" {
                return Err(Error::new(ErrorCode::IncorrectState, format!("Volume '{id}' is '{}'.", a.state)));
            }
            let inst = tx.instance_get(&a.instance_id)?;
            let root = match &inst {
                Some(i) => self.root_device_of(tx, i)?,
                None => ROOT_DEVICE_NAME.into(),
            };
            let state = inst.as_ref().map(|i| i.state).unwrap_or(InstanceState::Terminated);
            if a.device == root && !matches!(state, InstanceState::Stopped | InstanceState::Terminated) {
                return Err(Error::new(
                    ErrorCode::IncorrectState,
                    format!("Unable to detach root volume '{id}' from instance '{}'", a.instance_id),
                ));
            }
            if !matches!(state, InstanceState::Running | InstanceState::Stopped | InstanceState::Terminated) && !force {
                return Err(Error::new(ErrorCode::IncorrectInstanceState, format!("Instance '{}' is {}.", a.instance_id, state.name())));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let before = v.clone();
            let live = state == InstanceState::Running;
            if live {
                if let Some(at) = v.attachment.as_mut() {
                    at.state = "detaching".into();
                }
            } else {
                v.attachment = None;
                v.state = "available".into();
            }
            tx.doc_put(&v)?;
            Ok((before, live))
        })?;
        let a = before.attachment.clone().ok_or_else(|| Error::internal("attachment vanished"))?;
        if live {
            let result = self.agent.vm_disk_detach(&a.instance_id, id, force).await.map_err(|e| agent_error("detaching the volume", e));
            self.store.transaction(|tx| {
                let mut v = Self::volume_load(tx, id)?;
                match &result {
                    Ok(()) => {
                        v.attachment = None;
                        v.state = "available".into();
                    }
                    Err(_) => v = before.clone(),
                }
                tx.doc_put(&v)?;
                Ok::<_, Error>(())
            })?;
            result?;
        }
        let mut shown = before;
        if let Some(at) = shown.attachment.as_mut() {
            at.state = "detached".into();
        }
        shown.state = "available".into();
        Ok(shown)
    }
}
