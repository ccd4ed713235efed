//! CreateImage: snapshots of every volume of an instance, named by a new image. With
//! NoReboot the snapshots are taken at once, crash-consistent while the instance runs; without
//! it, as on EC2, a running instance is stopped first (so its file systems are clean),
//! snapshotted and started again in the background, the image `pending` until then:
//!
//! ```text
//!   CreateImage ── NoReboot, or stopped ──> snapshots ──> available | failed
//!        │
//!        └─ running ─> (background) stop ─> wait for stopped ─> snapshots ─> start
//!                                                  └─ fails ─> failed
//! ```

use crate::image::check_image_name;
use crate::{tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{ImageBlockDevice, ImageRecord, VolumeRecord};
use corral_types::{Error, ErrorCode, IdKind, InstanceState, ResourceId, Result};

/// A CreateImage whose image record exists (pending) and whose snapshots are to be taken.
struct ImageJob {
    image_id: String,
    instance_id: String,
    /// The pending image record (its root device name).
    source: ImageRecord,
    volumes: Vec<VolumeRecord>,
    snap_tags: Vec<(String, String)>,
    mappings: Vec<rq::BlockDeviceMapping>,
}

impl Control {
    /// CreateImage: snapshots of every volume of the instance, named by a new image. With
    /// NoReboot the snapshots are taken at once, crash-consistent while the instance runs;
    /// without it, as on EC2, a running instance is shut down first (so its file systems are
    /// clean), snapshotted and started again, in the background: the image is `pending` until
    /// then.
    pub async fn image_create(&self, req: &rq::CreateImage) -> Result<String> {
        let instance_id = req.instance_id.as_deref().ok_or_else(|| Error::missing("InstanceId"))?;
        if ResourceId::parse(IdKind::Instance, instance_id).is_none() {
            return Err(Error::malformed(IdKind::Instance, instance_id));
        }
        let name = req.name.as_deref().ok_or_else(|| Error::missing("Name"))?;
        check_image_name(name)?;
        let image_tags = tag::from_specifications(&req.tag_specifications, "image", &["image", "snapshot"])?;
        let snap_tags = tag::from_specifications(&req.tag_specifications, "snapshot", &["image", "snapshot"])?;
        let image_id = ResourceId::generate(IdKind::Image).into_string();
        let (source, volumes, running) = self.store.transaction(|tx| {
            let inst = tx.instance_get(instance_id)?.ok_or_else(|| Error::not_found(IdKind::Instance, instance_id))?;
            if !matches!(inst.state, InstanceState::Running | InstanceState::Stopped) {
                return Err(Error::new(
                    ErrorCode::IncorrectInstanceState,
                    format!(
                        "Instance '{instance_id}' is not in a state from which an image can be created (state: {}).",
                        inst.state.name()
                    ),
                ));
            }
            if tx.image_get_by_name(name)?.is_some() {
                return Err(Error::new(ErrorCode::InvalidAmiNameDuplicate, format!("AMI name {name} is already in use by AMI")));
            }
            let source = tx.image_get(&inst.image_id)?;
            let root = self.root_device_of(tx, &inst)?;
            let mut volumes: Vec<VolumeRecord> =
                tx.doc_list_by_parent::<VolumeRecord>(instance_id)?.into_iter().filter(|v| v.attachment.is_some()).collect();
            volumes.sort_by_key(|v| v.attachment.as_ref().map(|a| (a.device != root, a.device.clone())));
            let has_root = volumes.first().and_then(|v| v.attachment.as_ref()).is_some_and(|a| a.device == root);
            if !has_root {
                return Err(Error::new(ErrorCode::IncorrectState, format!("Instance '{instance_id}' has no root volume.")));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            // The name is taken now; the image is pending until its snapshots are.
            let rec = ImageRecord {
                image_id: image_id.clone(),
                name: name.to_string(),
                description: {
                    crate::limits::description("Description", req.description.as_deref())?;
                    req.description.clone().unwrap_or_default()
                },
                owner_id: self.account_id.clone(),
                state: "pending".into(),
                created_at: crate::now_iso(),
                base_disk: String::new(),
                kernel: source.as_ref().and_then(|s| s.kernel.clone()),
                initrd: source.as_ref().and_then(|s| s.initrd.clone()),
                cmdline: source.as_ref().map(|s| s.cmdline.clone()).unwrap_or_default(),
                size_bytes: volumes[0].size_bytes(),
                recipe_hash: String::new(),
                root_device_name: root.clone(),
                is_public: false,
                block_devices: vec![],
                launch_users: vec![],
                deprecation_time: None,
            };
            tx.image_insert(&rec)?;
            tag::insert(tx, &image_id, "image", &image_tags)?;
            Ok((rec, volumes, inst.state == InstanceState::Running))
        })?;
        let job = ImageJob {
            image_id: image_id.clone(),
            instance_id: instance_id.to_string(),
            source,
            volumes,
            snap_tags,
            mappings: req.block_device_mappings.clone(),
        };
        if running && req.no_reboot != Some(true) {
            let this = self.me.upgrade().ok_or_else(|| Error::internal("the control plane is shutting down"))?;
            tokio::spawn(async move { this.image_create_rebooting(job).await });
        } else {
            self.image_finish(job).await?;
        }
        Ok(image_id)
    }

    /// CreateImage without NoReboot: stop, snapshot, start.
    async fn image_create_rebooting(&self, job: ImageJob) {
        let id = job.instance_id.clone();
        let stop = rq::StopInstances { instance_ids: vec![id.clone()], ..Default::default() };
        let stopped = match self.instance_stop(&stop) {
            Ok(_) => self.wait_instance_state(&id, InstanceState::Stopped, std::time::Duration::from_secs(900)).await,
            Err(e) => Err(e),
        };
        let result = match stopped {
            Ok(()) => {
                let image_id = job.image_id.clone();
                let done = self.image_finish(job).await;
                let start = rq::StartInstances { instance_ids: vec![id.clone()], ..Default::default() };
                if let Err(e) = self.instance_start(&start) {
                    tracing::warn!(instance = %id, image = %image_id, error = %e, "starting the instance again after CreateImage failed");
                }
                done
            }
            Err(e) => {
                let _ = self.store.transaction(|tx| {
                    let Some(mut rec) = tx.image_get(&job.image_id)? else { return Ok::<_, Error>(()) };
                    rec.state = "failed".into();
                    Ok(tx.image_update(&rec)?)
                });
                Err(e)
            }
        };
        if let Err(e) = result {
            tracing::warn!(instance = %id, error = %e, internal = ?e.internal, "CreateImage with a reboot failed");
        }
    }

    /// Waits until the instance reaches `want`; fails if it ends up somewhere it cannot come
    /// back from (terminated) or the deadline passes.
    async fn wait_instance_state(&self, id: &str, want: InstanceState, deadline: std::time::Duration) -> Result<()> {
        let until = std::time::Instant::now() + deadline;
        loop {
            let state = self.store.read(|tx| tx.instance_get(id))?.map(|r| r.state);
            match state {
                Some(s) if s == want => return Ok(()),
                Some(InstanceState::ShuttingDown | InstanceState::Terminated) | None => {
                    return Err(Error::new(
                        ErrorCode::IncorrectInstanceState,
                        format!("Instance '{id}' went away while an image was made of it."),
                    ));
                }
                _ if std::time::Instant::now() > until => {
                    return Err(Error::internal(format!("instance {id} did not reach {} in time", want.name())));
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    }

    /// Takes the snapshots of a CreateImage and makes the image available (or failed).
    async fn image_finish(&self, job: ImageJob) -> Result<()> {
        let ImageJob { image_id, instance_id, source, volumes, snap_tags, mappings: requested } = job;
        let instance_id = instance_id.as_str();
        let _disks = self.disk_lock.lock().await;
        let mut mappings = Vec::new();
        let mut failed = false;
        for v in &volumes {
            let a = v.attachment.clone().ok_or_else(|| Error::internal("attachment vanished"))?;
            let description = format!("Created by CreateImage({instance_id}) for {image_id}");
            match self.snapshot_take(&v.volume_id, description, &snap_tags).await {
                Ok(s) if s.state == "completed" => mappings.push(ImageBlockDevice {
                    device_name: a.device.clone(),
                    snapshot_id: Some(s.snapshot_id),
                    volume_size_gib: v.size_gib,
                    delete_on_termination: true,
                    volume_type: v.volume_type.clone(),
                }),
                Ok(_) | Err(_) => failed = true,
            }
        }
        // Mappings in the request add empty volumes or suppress ones the instance has.
        for m in &requested {
            let Some(device) = m.device_name.clone() else { continue };
            if m.no_device.is_some() {
                mappings.retain(|b| b.device_name != device || b.device_name == source.root_device_name);
            } else if let Some(ebs) = &m.ebs {
                if let Some(b) = mappings.iter_mut().find(|b| b.device_name == device) {
                    if let Some(size) = ebs.volume_size {
                        b.volume_size_gib = b.volume_size_gib.max(crate::volume_type::check_size(&b.volume_type, size)?);
                    }
                    if let Some(d) = ebs.delete_on_termination {
                        b.delete_on_termination = d;
                    }
                } else if let Some(size) = ebs.volume_size {
                    let volume_type = ebs.volume_type.clone().unwrap_or_else(|| "gp2".into());
                    mappings.push(ImageBlockDevice {
                        device_name: device,
                        snapshot_id: None,
                        volume_size_gib: crate::volume_type::check_size(&volume_type, size)?,
                        delete_on_termination: ebs.delete_on_termination.unwrap_or(true),
                        volume_type,
                    });
                }
            }
        }
        self.store.transaction(|tx| {
            let Some(mut rec) = tx.image_get(&image_id)? else { return Ok::<_, Error>(()) };
            rec.block_devices = mappings.clone();
            rec.state = if failed { "failed" } else { "available" }.into();
            Ok(tx.image_update(&rec)?)
        })
    }
}
