//! Images: DescribeImages, CreateImage, RegisterImage, DeregisterImage, CopyImage, image
//! attributes, and registering the images Corral builds or imports.
//!
//! An image is a list of block device mappings, each naming a snapshot, so launching one
//! copies nothing (root volumes are overlays on the snapshots' layers). An image without a
//! kernel boots through its own bootloader (q35 firmware boot); one with a kernel (Corral's
//! default images, and images made from their instances) boots that kernel directly.

use crate::volume::{collect_layers, gib_ceil};
use crate::{filter, tag, Control};
use corral_agent_api::LayerId;
use corral_ec2_query::requests as rq;
use corral_store::{ImageBlockDevice, ImageRecord, KernelBoot, LayerRecord, SnapshotRecord, TagRecord, VolumeRecord};
use corral_types::{Error, ErrorCode, IdKind, InstanceState, ResourceId, Result};

pub struct Image {
    pub rec: ImageRecord,
    pub tags: Vec<TagRecord>,
}

/// What an image build produced, to be registered.
pub struct NewImage {
    pub name: String,
    pub description: String,
    pub base_disk: String,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: String,
    pub size_bytes: u64,
    pub recipe_hash: String,
}

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

/// Root device name AWS reports for HVM images.
pub const ROOT_DEVICE_NAME: &str = "/dev/xvda";

impl Control {
    /// Registers (or refreshes) an image Corral built; its id stays the same across rebuilds.
    /// The built disk becomes a layer of the pool and the root snapshot of the image; with no
    /// disk (`base_disk` empty: the simulated hypervisor's placeholder) the layer is empty.
    pub async fn image_register_built(&self, img: NewImage) -> Result<String> {
        let existing = self.store.read(|tx| {
            let Some(i) = tx.image_get_by_name(&img.name)? else { return Ok::<_, Error>(None) };
            let snap_ok = match i.root_block_device().and_then(|b| b.snapshot_id.clone()) {
                Some(s) => tx.doc_get::<SnapshotRecord>(&s)?.is_some_and(|s| s.layer.is_some()),
                None => false,
            };
            Ok(Some((i, snap_ok)))
        })?;
        if let Some((i, true)) = &existing {
            if i.recipe_hash == img.recipe_hash && i.base_disk == img.base_disk {
                return Ok(i.image_id.clone());
            }
        }
        let layer = LayerId::random();
        let size_bytes = if img.base_disk.is_empty() {
            self.storage.layer_create(&layer, None, img.size_bytes).await.map(|()| img.size_bytes)
        } else {
            self.storage.layer_import(&layer, std::path::Path::new(&img.base_disk)).await
        }
        .map_err(|e| Error::internal(format!("adding {} to the storage pool: {e}: {:?}", img.base_disk, std::error::Error::source(&e))))?;
        let boot = img.kernel.as_ref().map(|k| KernelBoot { kernel: k.clone(), initrd: img.initrd.clone(), cmdline: img.cmdline.clone() });
        let (id, doomed) = self.store.transaction(|tx| {
            let snap = self.snapshot_of_layer(tx, &layer, size_bytes, format!("Root disk of {}", img.name), boot.clone())?;
            let rec = ImageRecord {
                image_id: ResourceId::generate(IdKind::Image).into_string(),
                name: img.name.clone(),
                description: img.description.clone(),
                owner_id: self.account_id.clone(),
                state: "available".into(),
                created_at: crate::now_iso(),
                base_disk: img.base_disk.clone(),
                kernel: img.kernel.clone(),
                initrd: img.initrd.clone(),
                cmdline: img.cmdline.clone(),
                size_bytes,
                recipe_hash: img.recipe_hash.clone(),
                root_device_name: ROOT_DEVICE_NAME.into(),
                is_public: false,
                block_devices: vec![root_mapping(&snap)],
                launch_users: vec![],
                deprecation_time: None,
            };
            let old = tx.image_get_by_name(&img.name)?;
            let id = tx.image_upsert_by_name(&rec)?;
            // The previous build's snapshot goes unless another image uses it; instances
            // launched from it keep its layer alive until they are gone.
            if let Some(old_snap) = old.as_ref().and_then(|o| o.root_block_device()).and_then(|b| b.snapshot_id.clone()) {
                let used =
                    tx.image_list()?.iter().any(|i| i.block_devices.iter().any(|b| b.snapshot_id.as_deref() == Some(old_snap.as_str())));
                if !used {
                    tx.doc_delete::<SnapshotRecord>(&old_snap)?;
                }
            }
            Ok::<_, Error>((id, collect_layers(tx)?))
        })?;
        self.layers_delete(doomed).await;
        Ok(id)
    }

    /// `corral images import`: a raw or qcow2 disk with its own bootloader becomes a layer, a
    /// snapshot and an image that boots through its firmware.
    pub async fn image_import(&self, name: &str, description: &str, source: &std::path::Path) -> Result<String> {
        check_image_name(name)?;
        if self.store.read(|tx| tx.image_get_by_name(name))?.is_some() {
            return Err(Error::new(ErrorCode::InvalidAmiNameDuplicate, format!("AMI name {name} is already in use by another AMI")));
        }
        let layer = LayerId::random();
        let size_bytes = self.storage.layer_import(&layer, source).await.map_err(|e| {
            Error::invalid_value("file", &source.display().to_string(), &format!("{e}: {:?}", std::error::Error::source(&e)))
        })?;
        let result = self.store.transaction(|tx| {
            let snap = self.snapshot_of_layer(tx, &layer, size_bytes, format!("Imported from {}", source.display()), None)?;
            let rec = ImageRecord {
                image_id: ResourceId::generate(IdKind::Image).into_string(),
                name: name.to_string(),
                description: description.to_string(),
                owner_id: self.account_id.clone(),
                state: "available".into(),
                created_at: crate::now_iso(),
                base_disk: String::new(),
                kernel: None,
                initrd: None,
                cmdline: String::new(),
                size_bytes,
                recipe_hash: String::new(),
                root_device_name: ROOT_DEVICE_NAME.into(),
                is_public: false,
                block_devices: vec![root_mapping(&snap)],
                launch_users: vec![],
                deprecation_time: None,
            };
            if !tx.image_insert(&rec)? {
                return Err(Error::new(ErrorCode::InvalidAmiNameDuplicate, format!("AMI name {name} is already in use by another AMI")));
            }
            Ok(rec.image_id)
        });
        if result.is_err() {
            let _ = self.storage.layer_delete(&layer).await;
        }
        result
    }

    /// A completed snapshot (and its layer record) for a disk that came from outside.
    fn snapshot_of_layer(
        &self,
        tx: &corral_store::Tx<'_>,
        layer: &LayerId,
        size_bytes: u64,
        description: String,
        boot: Option<KernelBoot>,
    ) -> Result<SnapshotRecord> {
        let now = crate::now_iso();
        tx.doc_put(&LayerRecord { layer_id: layer.to_string(), backing: None, created_at: now.clone() })?;
        let snap = SnapshotRecord {
            snapshot_id: ResourceId::generate(IdKind::Snapshot).into_string(),
            volume_id: "vol-ffffffff".into(),
            volume_size_gib: gib_ceil(size_bytes),
            owner_id: self.account_id.clone(),
            description,
            state: "completed".into(),
            state_message: None,
            started_at: now.clone(),
            completed_at: Some(now),
            layer: Some(layer.to_string()),
            pending_top: None,
            boot,
            public: false,
            volume_users: vec![],
        };
        tx.doc_put(&snap)?;
        Ok(snap)
    }

    pub(crate) fn image_load(tx: &corral_store::Tx<'_>, id: &str) -> Result<ImageRecord> {
        if ResourceId::parse(IdKind::Image, id).is_none() {
            return Err(Error::malformed(IdKind::Image, id));
        }
        tx.image_get(id)?.ok_or_else(|| Error::not_found(IdKind::Image, id))
    }

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
                description: req.description.clone().unwrap_or_default(),
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
                        b.volume_size_gib = b.volume_size_gib.max(size.max(0) as u64);
                    }
                    if let Some(d) = ebs.delete_on_termination {
                        b.delete_on_termination = d;
                    }
                } else if let Some(size) = ebs.volume_size {
                    mappings.push(ImageBlockDevice {
                        device_name: device,
                        snapshot_id: None,
                        volume_size_gib: size.max(1) as u64,
                        delete_on_termination: ebs.delete_on_termination.unwrap_or(true),
                        volume_type: ebs.volume_type.clone().unwrap_or_else(|| "gp2".into()),
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

    pub fn image_register(&self, req: &rq::RegisterImage) -> Result<String> {
        let name = req.name.as_deref().ok_or_else(|| Error::missing("Name"))?;
        check_image_name(name)?;
        // Terraform's aws_ami sends an empty ImageLocation.
        if req.image_location.as_deref().is_some_and(|l| !l.is_empty()) {
            return Err(Error::new(ErrorCode::Unsupported, "Instance-store (S3) images are not supported; register a snapshot."));
        }
        if let Some(a) = req.architecture.as_deref() {
            if a != "x86_64" {
                return Err(Error::invalid_value("Architecture", a, "This cloud runs x86_64 only."));
            }
        }
        if let Some(v) = req.virtualization_type.as_deref() {
            if v != "hvm" {
                return Err(Error::invalid_value("VirtualizationType", v, "This cloud runs hvm only."));
            }
        }
        let root = req.root_device_name.clone().ok_or_else(|| Error::missing("RootDeviceName"))?;
        let tags = tag::from_specifications(&req.tag_specifications, "image", &["image"])?;
        self.store.transaction(|tx| {
            let mut mappings = Vec::new();
            let mut boot = None;
            for m in &req.block_device_mappings {
                let device = m.device_name.clone().ok_or_else(|| Error::missing("BlockDeviceMapping.N.DeviceName"))?;
                if crate::volume::device_bus(&device, &root).is_none() {
                    return Err(Error::new(ErrorCode::InvalidBlockDeviceMapping, format!("Invalid device name {device}")));
                }
                let Some(ebs) = &m.ebs else { continue };
                let snap = ebs.snapshot_id.as_deref().map(|s| self.snapshot_usable(tx, s)).transpose()?;
                let size = match (ebs.volume_size, &snap) {
                    (Some(sz), Some(s)) if sz >= 0 && (sz as u64) < s.volume_size_gib => {
                        return Err(Error::new(
                            ErrorCode::InvalidBlockDeviceMapping,
                            format!("Volume of size {sz}GB is smaller than snapshot '{}'", s.snapshot_id),
                        ));
                    }
                    (Some(sz), _) => sz.max(1) as u64,
                    (None, Some(s)) => s.volume_size_gib,
                    (None, None) => {
                        return Err(Error::new(
                            ErrorCode::InvalidBlockDeviceMapping,
                            format!("The device {device} needs a volume size or a snapshot."),
                        ))
                    }
                };
                if device == root {
                    boot = snap.as_ref().and_then(|s| s.boot.clone());
                }
                mappings.push(ImageBlockDevice {
                    device_name: device,
                    snapshot_id: snap.map(|s| s.snapshot_id),
                    volume_size_gib: size,
                    delete_on_termination: ebs.delete_on_termination.unwrap_or(true),
                    volume_type: ebs.volume_type.clone().unwrap_or_else(|| "gp2".into()),
                });
            }
            if !mappings.iter().any(|b| b.device_name == root && b.snapshot_id.is_some()) {
                return Err(Error::new(ErrorCode::InvalidBlockDeviceMapping, format!("The root device {root} must map a snapshot.")));
            }
            if tx.image_get_by_name(name)?.is_some() {
                return Err(Error::new(ErrorCode::InvalidAmiNameDuplicate, format!("AMI name {name} is already in use by AMI")));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let rec = ImageRecord {
                image_id: ResourceId::generate(IdKind::Image).into_string(),
                name: name.to_string(),
                description: req.description.clone().unwrap_or_default(),
                owner_id: self.account_id.clone(),
                state: "available".into(),
                created_at: crate::now_iso(),
                base_disk: String::new(),
                kernel: boot.as_ref().map(|b| b.kernel.clone()),
                initrd: boot.as_ref().and_then(|b| b.initrd.clone()),
                cmdline: boot.as_ref().map(|b| b.cmdline.clone()).unwrap_or_default(),
                size_bytes: mappings.iter().find(|b| b.device_name == root).map(|b| b.volume_size_gib << 30).unwrap_or(0),
                recipe_hash: String::new(),
                root_device_name: root.clone(),
                is_public: false,
                block_devices: mappings,
                launch_users: vec![],
                deprecation_time: None,
            };
            tx.image_insert(&rec)?;
            tag::insert(tx, &rec.image_id, "image", &tags)?;
            Ok(rec.image_id)
        })
    }

    /// DeregisterImage; its snapshots stay (as on EC2) unless asked to go too.
    pub async fn image_deregister(&self, req: &rq::DeregisterImage) -> Result<Vec<String>> {
        let id = req.image_id.as_deref().ok_or_else(|| Error::missing("ImageId"))?;
        let (deleted, doomed) = self.store.transaction(|tx| {
            let img = Self::image_load(tx, id)?;
            if img.owner_id != self.account_id {
                return Err(Error::new(ErrorCode::UnauthorizedOperation, format!("You do not own {id}.")));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.image_delete(id)?;
            tx.tag_delete_all(id)?;
            let mut deleted = Vec::new();
            if req.delete_associated_snapshots == Some(true) {
                let others = tx.image_list()?;
                for s in img.block_devices.iter().filter_map(|b| b.snapshot_id.clone()) {
                    if !others.iter().any(|i| i.block_devices.iter().any(|b| b.snapshot_id.as_deref() == Some(s.as_str())))
                        && tx.doc_delete::<SnapshotRecord>(&s)?
                    {
                        tx.tag_delete_all(&s)?;
                        deleted.push(s);
                    }
                }
            }
            Ok((deleted, collect_layers(tx)?))
        })?;
        self.chains_dirty();
        self.layers_delete(doomed).await;
        Ok(deleted)
    }

    /// CopyImage within this region: new snapshots that share the source's frozen layers.
    pub fn image_copy(&self, req: &rq::CopyImage) -> Result<String> {
        let source = req.source_image_id.as_deref().ok_or_else(|| Error::missing("SourceImageId"))?;
        let region = req.source_region.as_deref().ok_or_else(|| Error::missing("SourceRegion"))?;
        let name = req.name.as_deref().ok_or_else(|| Error::missing("Name"))?;
        check_image_name(name)?;
        crate::region::same_region("SourceRegion", region, self.region())?;
        if req.encrypted == Some(true) {
            return Err(Error::new(ErrorCode::Unsupported, "Encrypted images are not supported here."));
        }
        let tags = tag::from_specifications(&req.tag_specifications, "image", &["image"])?;
        self.store.transaction(|tx| {
            let src = Self::image_load(tx, source)?;
            if src.state != "available" {
                return Err(Error::new(ErrorCode::InvalidAmiNotAvailable, format!("Image {source} is not available.")));
            }
            if tx.image_get_by_name(name)?.is_some() {
                return Err(Error::new(ErrorCode::InvalidAmiNameDuplicate, format!("AMI name {name} is already in use by AMI")));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let image_id = ResourceId::generate(IdKind::Image).into_string();
            let mut mappings = Vec::new();
            for b in &src.block_devices {
                let mut nb = b.clone();
                if let Some(s) = &b.snapshot_id {
                    let snap = self.snapshot_usable(tx, s)?;
                    let copy = self.snapshot_copy_in(
                        tx,
                        &snap,
                        format!("Copied for DestinationAmi {image_id} from SourceAmi {source} for SourceSnapshot {s}"),
                    )?;
                    nb.snapshot_id = Some(copy.snapshot_id);
                }
                mappings.push(nb);
            }
            let rec = ImageRecord {
                image_id: image_id.clone(),
                name: name.to_string(),
                description: req.description.clone().unwrap_or_else(|| src.description.clone()),
                owner_id: self.account_id.clone(),
                state: "available".into(),
                created_at: crate::now_iso(),
                base_disk: String::new(),
                recipe_hash: String::new(),
                is_public: false,
                block_devices: mappings,
                launch_users: vec![],
                deprecation_time: None,
                ..src.clone()
            };
            tx.image_insert(&rec)?;
            let mut t = tags.clone();
            if req.copy_image_tags == Some(true) {
                for st in tx.tag_list_for(source)? {
                    if !t.iter().any(|(k, _)| *k == st.key) {
                        t.push((st.key, st.value));
                    }
                }
            }
            tag::insert(tx, &image_id, "image", &t)?;
            Ok(image_id)
        })
    }

    pub fn image_attribute(&self, req: &rq::DescribeImageAttribute) -> Result<(ImageRecord, String)> {
        let id = req.image_id.as_deref().ok_or_else(|| Error::missing("ImageId"))?;
        let attribute = req.attribute.clone().ok_or_else(|| Error::missing("Attribute"))?;
        const ATTRIBUTES: &[&str] = &[
            "description",
            "kernel",
            "ramdisk",
            "launchPermission",
            "productCodes",
            "blockDeviceMapping",
            "sriovNetSupport",
            "bootMode",
            "imdsSupport",
            "lastLaunchedTime",
            "deregistrationProtection",
        ];
        if !ATTRIBUTES.contains(&attribute.as_str()) {
            return Err(Error::invalid_value("Attribute", &attribute, "Unknown image attribute."));
        }
        let img = self.store.read(|tx| Self::image_load(tx, id))?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        Ok((img, attribute))
    }

    /// ResetImageAttribute: launchPermission back to private (the only resettable one).
    pub fn image_attribute_reset(&self, req: &rq::ResetImageAttribute) -> Result<()> {
        let id = req.image_id.as_deref().ok_or_else(|| Error::missing("ImageId"))?;
        let attribute = req.attribute.as_deref().ok_or_else(|| Error::missing("Attribute"))?;
        if attribute != "launchPermission" {
            return Err(Error::invalid_value("Attribute", attribute, "Only launchPermission can be reset."));
        }
        self.store.transaction(|tx| {
            let mut img = Self::image_load(tx, id)?;
            if img.owner_id != self.account_id {
                return Err(Error::new(ErrorCode::UnauthorizedOperation, format!("You do not own {id}.")));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            img.is_public = false;
            img.launch_users.clear();
            Ok(tx.image_update(&img)?)
        })
    }

    pub fn image_attribute_modify(&self, req: &rq::ModifyImageAttribute) -> Result<()> {
        let id = req.image_id.as_deref().ok_or_else(|| Error::missing("ImageId"))?;
        self.store.transaction(|tx| {
            let mut img = Self::image_load(tx, id)?;
            if img.owner_id != self.account_id {
                return Err(Error::new(ErrorCode::UnauthorizedOperation, format!("You do not own {id}.")));
            }
            let attribute = req.attribute.as_deref();
            let description = req.description.as_ref().and_then(|d| d.value.clone()).or_else(|| match attribute {
                Some("description") => req.value.clone(),
                _ => None,
            });
            let listed = attribute == Some("launchPermission") || !req.user_ids.is_empty() || !req.user_groups.is_empty();
            let (adds, removes) = permission_changes(
                req.launch_permission.as_ref().map(|l| (&l.add[..], &l.remove[..])),
                if listed { &req.user_ids[..] } else { &[] },
                if listed { &req.user_groups[..] } else { &[] },
                req.operation_type.as_deref(),
            )?;
            if description.is_none() && adds.is_empty() && removes.is_empty() {
                return Err(Error::missing("Attribute"));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            if let Some(d) = description {
                img.description = d;
            }
            apply_permissions(&mut img.is_public, &mut img.launch_users, &adds, &removes);
            Ok(tx.image_update(&img)?)
        })
    }

    /// `rendered` answers the filters without a line here from each image's view.
    pub fn image_describe(
        &self,
        req: &rq::DescribeImages,
        rendered: &filter::Rendered<'_, ImageRecord>,
    ) -> Result<(Vec<Image>, Option<String>)> {
        const NAMES: &[&str] = &[
            "image-id",
            "name",
            "owner-id",
            "owner-alias",
            "state",
            "architecture",
            "image-type",
            "is-public",
            "root-device-type",
            "root-device-name",
            "virtualization-type",
            "hypervisor",
            "description",
            "platform-details",
            "block-device-mapping.snapshot-id",
            "block-device-mapping.device-name",
            "block-device-mapping.volume-size",
            "block-device-mapping.volume-type",
            "block-device-mapping.delete-on-termination",
            "kernel-id",
            "ramdisk-id",
            "creation-date",
        ];
        let q = filter::Query {
            kind: IdKind::Image,
            ids: &req.image_ids,
            filters: &req.filters,
            names: NAMES,
            dry_run: req.dry_run,
            max_results: req.max_results,
            next_token: req.next_token.as_deref(),
            bounds: (5, 1000),
        };
        q.check_with(Some(rendered.shape))?;
        let (all, tags) = self.store.read(|tx| Ok::<_, Error>((tx.image_list()?, tx.tag_map()?)))?;
        let account = self.account_id.clone();
        let keep = |i: &ImageRecord| {
            let owner_ok = req.owners.is_empty() || req.owners.iter().any(|o| o == "self" && i.owner_id == account || *o == i.owner_id);
            owner_ok
                && req.executable_users.iter().all(|u| {
                    (u == "self" && i.owner_id == account) || (u == "all" && i.is_public) || i.launch_users.contains(u) || *u == i.owner_id
                })
        };
        let (items, next) = q.select_with(
            all,
            &tags,
            |i| &i.image_id,
            keep,
            |i, n| match n {
                "image-id" => vec![i.image_id.clone()],
                "name" => vec![i.name.clone()],
                "owner-id" => vec![i.owner_id.clone()],
                "state" => vec![i.state.clone()],
                "architecture" => vec!["x86_64".into()],
                "image-type" => vec!["machine".into()],
                "is-public" => vec![i.is_public.to_string()],
                "root-device-type" => vec!["ebs".into()],
                "root-device-name" => vec![i.root_device_name.clone()],
                "virtualization-type" => vec!["hvm".into()],
                "hypervisor" => vec!["xen".into()],
                "description" => vec![i.description.clone()],
                "platform-details" => vec!["Linux/UNIX".into()],
                "block-device-mapping.snapshot-id" => i.block_devices.iter().filter_map(|b| b.snapshot_id.clone()).collect(),
                "block-device-mapping.device-name" => i.block_devices.iter().map(|b| b.device_name.clone()).collect(),
                "block-device-mapping.volume-size" => i.block_devices.iter().map(|b| b.volume_size_gib.to_string()).collect(),
                "block-device-mapping.volume-type" => i.block_devices.iter().map(|b| b.volume_type.clone()).collect(),
                "block-device-mapping.delete-on-termination" => {
                    i.block_devices.iter().map(|b| b.delete_on_termination.to_string()).collect()
                }
                "creation-date" => vec![i.created_at.clone()],
                _ => vec![],
            },
            Some(rendered),
        )?;
        Ok((items.into_iter().map(|(rec, tags)| Image { rec, tags }).collect(), next))
    }
}

/// The permissions a Modify{Image,Snapshot}Attribute call adds and removes, from its structured
/// form (`LaunchPermission`/`CreateVolumePermission` with Add and Remove lists) and its older
/// one (UserIds and groups with an OperationType), checked: the group `all` or 12-digit
/// account ids.
pub(crate) fn permission_changes(
    structured: Option<(&[rq::LaunchPermission], &[rq::LaunchPermission])>,
    user_ids: &[String],
    groups: &[String],
    operation_type: Option<&str>,
) -> Result<(Vec<rq::LaunchPermission>, Vec<rq::LaunchPermission>)> {
    let (mut adds, mut removes) = structured.map(|(a, r)| (a.to_vec(), r.to_vec())).unwrap_or_default();
    let listed: Vec<rq::LaunchPermission> = user_ids
        .iter()
        .map(|u| rq::LaunchPermission { user_id: Some(u.clone()), group: None })
        .chain(groups.iter().map(|g| rq::LaunchPermission { group: Some(g.clone()), user_id: None }))
        .collect();
    match (operation_type, listed.is_empty()) {
        (_, true) => {}
        (Some("add"), false) => adds.extend(listed),
        (Some("remove"), false) => removes.extend(listed),
        (Some(o), false) => return Err(Error::invalid_value("OperationType", o, "Valid values are add and remove.")),
        (None, false) => return Err(Error::missing("OperationType")),
    }
    check_permissions(adds.iter().chain(removes.iter()))?;
    Ok((adds, removes))
}

fn check_permissions<'a>(perms: impl Iterator<Item = &'a rq::LaunchPermission>) -> Result<()> {
    for p in perms {
        if let Some(g) = &p.group {
            if g != "all" {
                return Err(Error::invalid_value("UserGroup", g, "The only group is 'all'."));
            }
        }
        if let Some(u) = &p.user_id {
            if u.len() != 12 || !u.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid_value("UserId", u, "Account ids are 12 digits."));
            }
        }
    }
    Ok(())
}

/// Adds, then removes, permissions: `group all` sets `public`, user ids join `users`.
pub(crate) fn apply_permissions(
    public: &mut bool,
    users: &mut Vec<String>,
    adds: &[rq::LaunchPermission],
    removes: &[rq::LaunchPermission],
) {
    for p in adds {
        if p.group.is_some() {
            *public = true;
        }
        if let Some(u) = &p.user_id {
            if !users.contains(u) {
                users.push(u.clone());
            }
        }
    }
    for p in removes {
        if p.group.is_some() {
            *public = false;
        }
        if let Some(u) = &p.user_id {
            users.retain(|x| x != u);
        }
    }
}

/// The root mapping of an image made of one snapshot.
fn root_mapping(snap: &SnapshotRecord) -> ImageBlockDevice {
    ImageBlockDevice {
        device_name: ROOT_DEVICE_NAME.into(),
        snapshot_id: Some(snap.snapshot_id.clone()),
        volume_size_gib: snap.volume_size_gib,
        delete_on_termination: true,
        volume_type: "gp2".into(),
    }
}

/// EC2's rule for AMI names: 3 to 128 characters of letters, digits, spaces and `()[]./-'@_`.
fn check_image_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || " ()[]./-'@_".contains(c);
    if name.len() < 3 || name.len() > 128 || !name.chars().all(ok_char) {
        return Err(Error::new(
            ErrorCode::InvalidAmiNameMalformed,
            format!("AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_' ({name:?})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert!(check_image_name("corral-minimal").is_ok());
        assert!(check_image_name("web (v2) [test]/a.b@c_d").is_ok());
        assert!(check_image_name("ab").is_err());
        assert!(check_image_name("a*b").is_err());
        assert!(check_image_name(&"x".repeat(129)).is_err());
    }
}
