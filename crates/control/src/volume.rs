//! Volumes: CreateVolume, DescribeVolumes, DeleteVolume, AttachVolume, DetachVolume,
//! ModifyVolume, DescribeVolumesModifications, and the volumes a launch creates.
//!
//! A volume is a chain of copy-on-write layers in the host's storage pool (see
//! `corral_agent_api::storage`); the store keeps the graph and this module decides. Work on
//! the host happens in two steps around the agent call: the first transaction records the
//! intent (`creating`, `attaching`, `detaching`), the agent acts, the second transaction
//! records the outcome, or puts the previous state back when the agent failed, so a failure
//! halfway leaves the store as it was and no file or QEMU device behind.

use crate::{filter, tag, Control};
use corral_agent_api::{AgentError, DiskBus, DiskSpec, LayerId};
use corral_ec2_query::requests as rq;
use corral_store::{
    ImageBlockDevice, InstanceRecord, KernelBoot, LayerRecord, SnapshotRecord, TagRecord, Tx, VolumeAttachment, VolumeModification,
    VolumeRecord,
};
use corral_types::{Error, ErrorCode, IdKind, InstanceState, ResourceId, Result};

/// A volume as the API shows it.
#[derive(Debug, Clone)]
pub struct Volume {
    pub rec: VolumeRecord,
    pub tags: Vec<TagRecord>,
}

/// The sizes EC2 allows per volume type, in GiB.
fn size_bounds(volume_type: &str) -> (u64, u64) {
    match volume_type {
        "io1" | "io2" => (4, 16384),
        "st1" | "sc1" => (125, 16384),
        "standard" => (1, 1024),
        _ => (1, 16384),
    }
}

const VOLUME_TYPES: &[&str] = &["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];

/// Checks a volume type with its IOPS and throughput and fills in EC2's defaults.
pub(crate) fn volume_performance(
    volume_type: &str,
    size_gib: u64,
    iops: Option<i64>,
    throughput: Option<i64>,
) -> Result<(Option<i64>, Option<i64>)> {
    if !VOLUME_TYPES.contains(&volume_type) {
        return Err(Error::new(
            ErrorCode::UnknownVolumeType,
            format!("The volume type '{volume_type}' is unsupported. The supported volume types are gp2, gp3, io1, io2, st1, sc1, and standard."),
        ));
    }
    if throughput.is_some() && volume_type != "gp3" {
        return Err(Error::combination(format!("The parameter throughput is not supported for {volume_type} volumes.")));
    }
    let iops = match (volume_type, iops) {
        ("gp3", None) => Some(3000),
        ("gp3", Some(i)) if (3000..=16000).contains(&i) => Some(i),
        ("io1" | "io2", Some(i)) if (100..=64000).contains(&i) => {
            // EC2's ceiling on IOPS per GiB: 50 for io1, 500 for io2.
            let per_gib = if volume_type == "io1" { 50 } else { 500 };
            if i > per_gib * size_gib as i64 {
                return Err(Error::invalid_value(
                    "Iops",
                    &i.to_string(),
                    &format!(
                        "Iops to volume size ratio of {:.6} is too high; maximum is {per_gib}.000000",
                        i as f64 / size_gib.max(1) as f64
                    ),
                ));
            }
            Some(i)
        }
        ("gp3" | "io1" | "io2", Some(i)) => {
            return Err(Error::invalid_value(
                "Iops",
                &i.to_string(),
                &format!("The iops value is out of range for {volume_type} volumes."),
            ));
        }
        ("io1" | "io2", None) => {
            return Err(Error::combination(format!("The parameter iops must be specified for {volume_type} volumes.")))
        }
        ("gp2", None) => Some((3 * size_gib as i64).clamp(100, 16000)),
        (_, None) => None,
        (_, Some(_)) => return Err(Error::combination(format!("The parameter iops is not supported for {volume_type} volumes."))),
    };
    let throughput = match (volume_type, throughput) {
        ("gp3", None) => Some(125),
        ("gp3", Some(t)) if (125..=1000).contains(&t) => Some(t),
        ("gp3", Some(t)) => return Err(Error::invalid_value("Throughput", &t.to_string(), "Throughput must be between 125 and 1000.")),
        _ => None,
    };
    Ok((iops, throughput))
}

fn check_size(volume_type: &str, size: i64) -> Result<u64> {
    let (lo, hi) = size_bounds(volume_type);
    if size < lo as i64 || size > hi as i64 {
        return Err(Error::invalid_value(
            "size",
            &size.to_string(),
            &format!("Volume size must be between {lo} and {hi} GiB for {volume_type}."),
        ));
    }
    Ok(size as u64)
}

/// Bytes to whole GiB, rounding up.
pub(crate) fn gib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 30).max(1)
}

/// Where a device name puts a disk: the root, or a SCSI target from its letter
/// (`/dev/sdf` and `/dev/xvdf` are both target 5, so they cannot both be used).
pub(crate) fn device_bus(device: &str, root_device: &str) -> Option<DiskBus> {
    if device == root_device {
        return Some(DiskBus::Root);
    }
    let rest = device.strip_prefix("/dev/sd").or_else(|| device.strip_prefix("/dev/xvd"))?;
    let mut chars = rest.chars();
    let letter = chars.next()?;
    if !letter.is_ascii_lowercase() || chars.next().is_some() || letter == 'a' {
        return None;
    }
    Some(DiskBus::Scsi { target: letter as u8 - b'a' })
}

fn check_volume_id(id: Option<&str>) -> Result<&str> {
    let id = id.ok_or_else(|| Error::missing("VolumeId"))?;
    if ResourceId::parse(IdKind::Volume, id).is_none() {
        return Err(Error::malformed(IdKind::Volume, id));
    }
    Ok(id)
}

fn agent_error(context: &str, e: AgentError) -> Error {
    let text = format!("{e}: {:?}", std::error::Error::source(&e));
    if text.contains("No space left") || text.contains("ENOSPC") {
        return Error::new(ErrorCode::InsufficientVolumeCapacity, "There is not enough free storage on the host for this request.")
            .with_internal(format!("{context}: {text}"));
    }
    Error::internal(format!("{context}: {text}"))
}

/// The disks an instance's VM gets: its attached volumes, root first.
pub(crate) fn disks_of(tx: &Tx<'_>, inst: &InstanceRecord, root_device: &str) -> Result<Vec<DiskSpec>> {
    let mut disks = Vec::new();
    for v in tx.doc_list_by_parent::<VolumeRecord>(&inst.instance_id)? {
        let Some(a) = &v.attachment else { continue };
        if a.state == "attaching" {
            continue;
        }
        let Some(bus) = device_bus(&a.device, root_device) else { continue };
        disks.push(disk_spec(tx, &v, bus)?);
    }
    disks.sort_by_key(|d| match d.bus {
        DiskBus::Root => 0,
        DiskBus::Scsi { target } => 1 + target as u32,
    });
    Ok(disks)
}

fn layer_id(s: &str) -> Result<LayerId> {
    LayerId::parse(s).ok_or_else(|| Error::internal(format!("store holds a malformed layer id {s:?}")))
}

fn disk_spec(tx: &Tx<'_>, v: &VolumeRecord, bus: DiskBus) -> Result<DiskSpec> {
    let layer = tx.doc_get::<LayerRecord>(&v.layer)?.ok_or_else(|| Error::internal(format!("volume {} has no layer", v.volume_id)))?;
    Ok(DiskSpec {
        volume_id: v.volume_id.clone(),
        layer: layer_id(&layer.layer_id)?,
        backing: layer.backing.as_deref().map(layer_id).transpose()?,
        size_bytes: v.size_bytes(),
        bus,
    })
}

/// Removes the layer records nothing refers to any more (no volume writes to it, no snapshot
/// names it, no layer builds on it), repeatedly, since removing one may free its backing.
/// Returns them in an order safe for deleting their files (overlays before their backing).
pub(crate) fn collect_layers(tx: &Tx<'_>) -> Result<Vec<LayerId>> {
    let mut out = Vec::new();
    loop {
        let layers = tx.doc_list::<LayerRecord>()?;
        let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
        used.extend(tx.doc_field_values::<VolumeRecord>("layer", None)?);
        used.extend(tx.doc_field_values::<SnapshotRecord>("layer", None)?);
        used.extend(layers.iter().filter_map(|l| l.backing.clone()));
        let doomed: Vec<&LayerRecord> = layers.iter().filter(|l| !used.contains(&l.layer_id)).collect();
        if doomed.is_empty() {
            return Ok(out);
        }
        for l in doomed {
            tx.doc_delete::<LayerRecord>(&l.layer_id)?;
            out.push(layer_id(&l.layer_id)?);
        }
    }
}

/// One volume a launch creates.
#[derive(Debug, Clone)]
pub(crate) struct LaunchVolume {
    pub device: String,
    pub snapshot: Option<SnapshotRecord>,
    pub size_gib: u64,
    pub delete_on_termination: bool,
    pub volume_type: String,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
}

impl Control {
    /// The volumes a launch of `image` with `mappings` creates: the image's own, changed or
    /// removed by the request's, plus new ones.
    pub(crate) fn launch_volumes(
        &self,
        tx: &Tx<'_>,
        image: &corral_store::ImageRecord,
        mappings: &[rq::BlockDeviceMapping],
    ) -> Result<Vec<LaunchVolume>> {
        let mut wanted: Vec<ImageBlockDevice> = image.block_devices.clone();
        let mut perf: std::collections::HashMap<String, (Option<i64>, Option<i64>)> = Default::default();
        for m in mappings {
            let device = m.device_name.clone().ok_or_else(|| Error::missing("BlockDeviceMapping.N.DeviceName"))?;
            if device_bus(&device, &image.root_device_name).is_none() {
                return Err(Error::new(ErrorCode::InvalidBlockDeviceMapping, format!("Invalid device name {device}")));
            }
            if m.no_device.is_some() {
                if device == image.root_device_name {
                    return Err(Error::new(ErrorCode::InvalidBlockDeviceMapping, "The root device cannot be suppressed."));
                }
                wanted.retain(|b| b.device_name != device);
                continue;
            }
            let Some(ebs) = &m.ebs else {
                // Instance-store (VirtualName) mappings: there is no instance store here.
                continue;
            };
            let existing = wanted.iter().position(|b| b.device_name == device);
            let mut entry = match existing {
                Some(i) => wanted.remove(i),
                None => ImageBlockDevice {
                    device_name: device.clone(),
                    snapshot_id: None,
                    volume_size_gib: 0,
                    delete_on_termination: true,
                    volume_type: "gp2".into(),
                },
            };
            if let Some(s) = &ebs.snapshot_id {
                if existing.is_some() && entry.snapshot_id.as_deref() != Some(s.as_str()) {
                    return Err(Error::new(ErrorCode::InvalidBlockDeviceMapping, format!("The snapshot of {device} cannot be changed.")));
                }
                entry.snapshot_id = Some(s.clone());
            }
            let snap_size = match &entry.snapshot_id {
                Some(s) => Some(self.snapshot_usable(tx, s)?.volume_size_gib),
                None => None,
            };
            if let Some(v) = &ebs.volume_type {
                entry.volume_type = v.clone();
            }
            match (ebs.volume_size, snap_size) {
                (Some(size), Some(min)) if (size as u64) < min || size < 1 => {
                    return Err(Error::new(
                        ErrorCode::InvalidBlockDeviceMapping,
                        format!(
                            "Volume of size {size}GB is smaller than snapshot '{}', expect size >= {min}GB",
                            entry.snapshot_id.clone().unwrap_or_default()
                        ),
                    ));
                }
                (Some(size), _) => entry.volume_size_gib = check_size(&entry.volume_type, size)?,
                (None, Some(min)) => entry.volume_size_gib = entry.volume_size_gib.max(min),
                (None, None) => {
                    return Err(Error::new(
                        ErrorCode::InvalidBlockDeviceMapping,
                        format!("The device {device} needs a volume size or a snapshot."),
                    ));
                }
            }
            if let Some(d) = ebs.delete_on_termination {
                entry.delete_on_termination = d;
            }
            perf.insert(device.clone(), (ebs.iops, ebs.throughput));
            wanted.push(entry);
        }
        if !wanted.iter().any(|b| b.device_name == image.root_device_name) {
            return Err(Error::new(ErrorCode::InvalidBlockDeviceMapping, format!("Image {} has no root device.", image.image_id)));
        }
        let mut targets = std::collections::HashSet::new();
        let mut out = Vec::new();
        for b in wanted {
            let bus = device_bus(&b.device_name, &image.root_device_name)
                .ok_or_else(|| Error::new(ErrorCode::InvalidBlockDeviceMapping, format!("Invalid device name {}", b.device_name)))?;
            if !targets.insert(bus) {
                return Err(Error::new(ErrorCode::InvalidBlockDeviceMapping, format!("Device {} is mapped twice.", b.device_name)));
            }
            let snapshot = b.snapshot_id.as_deref().map(|s| self.snapshot_usable(tx, s)).transpose()?;
            let (iops, throughput) = perf.get(&b.device_name).copied().unwrap_or((None, None));
            let (iops, throughput) = volume_performance(&b.volume_type, b.volume_size_gib, iops, throughput)?;
            out.push(LaunchVolume {
                device: b.device_name,
                snapshot,
                size_gib: b.volume_size_gib,
                delete_on_termination: b.delete_on_termination,
                volume_type: b.volume_type,
                iops,
                throughput,
            });
        }
        Ok(out)
    }

    /// Records the volumes of a new instance, attached; their top layers are created by the
    /// agent when the VM first starts.
    pub(crate) fn launch_volumes_create(
        &self,
        tx: &Tx<'_>,
        inst: &InstanceRecord,
        image: &corral_store::ImageRecord,
        volumes: &[LaunchVolume],
        tags: &[(String, String)],
    ) -> Result<()> {
        let boot =
            image.kernel.as_ref().map(|k| KernelBoot { kernel: k.clone(), initrd: image.initrd.clone(), cmdline: image.cmdline.clone() });
        for lv in volumes {
            let layer = LayerRecord {
                layer_id: LayerId::random().to_string(),
                backing: lv.snapshot.as_ref().and_then(|s| s.layer.clone()),
                created_at: inst.launch_time.clone(),
            };
            tx.doc_put(&layer)?;
            let rec = VolumeRecord {
                volume_id: ResourceId::generate(IdKind::Volume).into_string(),
                size_gib: lv.size_gib,
                availability_zone: inst.availability_zone.clone(),
                volume_type: lv.volume_type.clone(),
                iops: lv.iops,
                throughput: lv.throughput,
                state: "in-use".into(),
                created_at: inst.launch_time.clone(),
                snapshot_id: lv.snapshot.as_ref().map(|s| s.snapshot_id.clone()),
                layer: layer.layer_id,
                attachment: Some(VolumeAttachment {
                    instance_id: inst.instance_id.clone(),
                    device: lv.device.clone(),
                    state: "attached".into(),
                    attach_time: inst.launch_time.clone(),
                    delete_on_termination: lv.delete_on_termination,
                }),
                modification: None,
                boot: if lv.device == image.root_device_name { boot.clone() } else { None },
                auto_enable_io: false,
            };
            tx.doc_put(&rec)?;
            tag::insert(tx, &rec.volume_id, "volume", tags)?;
        }
        Ok(())
    }

    /// At termination: volumes marked DeleteOnTermination go, the others are detached.
    /// Returns the layers to delete once the transaction commits.
    pub(crate) fn volumes_release(tx: &Tx<'_>, instance_id: &str) -> Result<Vec<LayerId>> {
        for mut v in tx.doc_list_by_parent::<VolumeRecord>(instance_id)? {
            let delete = v.attachment.as_ref().is_some_and(|a| a.delete_on_termination);
            if delete {
                tx.doc_delete::<VolumeRecord>(&v.volume_id)?;
                tx.tag_delete_all(&v.volume_id)?;
            } else {
                v.attachment = None;
                v.state = "available".into();
                tx.doc_put(&v)?;
            }
        }
        collect_layers(tx)
    }

    /// Deletes layer files after the records are gone. A failure leaves a file nobody refers
    /// to; it is logged, and the pool's use shows it.
    pub(crate) async fn layers_delete(&self, layers: Vec<LayerId>) {
        if !layers.is_empty() {
            self.chains_dirty();
        }
        for l in layers {
            if let Err(e) = self.storage.layer_delete(&l).await {
                tracing::warn!(layer = %l, error = %e, "deleting a layer file failed");
            }
        }
    }

    pub(crate) fn snapshot_usable(&self, tx: &Tx<'_>, id: &str) -> Result<SnapshotRecord> {
        if ResourceId::parse(IdKind::Snapshot, id).is_none() {
            return Err(Error::malformed(IdKind::Snapshot, id));
        }
        let s = tx.doc_get::<SnapshotRecord>(id)?.ok_or_else(|| Error::not_found(IdKind::Snapshot, id))?;
        if s.state != "completed" || s.layer.is_none() {
            return Err(Error::new(ErrorCode::IncorrectState, format!("Snapshot '{id}' is not completed (state: {}).", s.state)));
        }
        Ok(s)
    }

    fn volume_load(tx: &Tx<'_>, id: &str) -> Result<VolumeRecord> {
        tx.doc_get::<VolumeRecord>(id)?.ok_or_else(|| Error::not_found(IdKind::Volume, id))
    }

    pub async fn volume_create(&self, req: &rq::CreateVolume) -> Result<Volume> {
        let zones = self.config.zones();
        let zone = match (req.availability_zone.as_deref(), req.availability_zone_id.as_deref()) {
            (Some(_), Some(_)) => return Err(Error::combination("Only one of AvailabilityZone and AvailabilityZoneId may be given.")),
            (Some(z), None) => z.to_string(),
            (None, Some(zid)) => match corral_types::region::zone_by_id(&self.config.region, zid) {
                Some(z) => z,
                None => return Err(Error::new(ErrorCode::InvalidZoneNotFound, format!("The zone ID '{zid}' does not exist."))),
            },
            (None, None) => return Err(Error::missing("AvailabilityZone")),
        };
        let zone = zone.as_str();
        if !zones.iter().any(|z| z == zone) {
            return Err(Error::new(ErrorCode::InvalidZoneNotFound, format!("The zone '{zone}' does not exist.")));
        }
        if req.size.is_none() && req.snapshot_id.is_none() {
            return Err(Error::missing("size or snapshot"));
        }
        if req.encrypted == Some(true) {
            return Err(Error::new(ErrorCode::Unsupported, "Encrypted volumes are not supported here."));
        }
        if req.multi_attach_enabled == Some(true) {
            return Err(Error::new(ErrorCode::Unsupported, "Multi-attach is not supported here."));
        }
        let volume_type = req.volume_type.clone().unwrap_or_else(|| "gp2".into());
        let tags = tag::from_specifications(&req.tag_specifications, "volume", &["volume"])?;
        let now = crate::now_iso();
        let (rec, tags, backing) = self.store.transaction(|tx| {
            let snapshot = req.snapshot_id.as_deref().map(|s| self.snapshot_usable(tx, s)).transpose()?;
            let size_gib = match (req.size, &snapshot) {
                (Some(size), Some(s)) if size >= 0 && (size as u64) < s.volume_size_gib => {
                    return Err(Error::invalid_value(
                        "size",
                        &size.to_string(),
                        &format!(
                            "Volume of size {size}GB is smaller than snapshot '{}', expect size >= {}GB",
                            s.snapshot_id, s.volume_size_gib
                        ),
                    ));
                }
                (Some(size), _) => check_size(&volume_type, size)?,
                (None, Some(s)) => s.volume_size_gib,
                (None, None) => unreachable!("checked above"),
            };
            let (iops, throughput) = volume_performance(&volume_type, size_gib, req.iops, req.throughput)?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let layer = LayerRecord {
                layer_id: LayerId::random().to_string(),
                backing: snapshot.as_ref().and_then(|s| s.layer.clone()),
                created_at: now.clone(),
            };
            tx.doc_put(&layer)?;
            let rec = VolumeRecord {
                volume_id: ResourceId::generate(IdKind::Volume).into_string(),
                size_gib,
                availability_zone: zone.to_string(),
                volume_type: volume_type.clone(),
                iops,
                throughput,
                state: "creating".into(),
                created_at: now.clone(),
                snapshot_id: snapshot.as_ref().map(|s| s.snapshot_id.clone()),
                layer: layer.layer_id,
                attachment: None,
                modification: None,
                boot: snapshot.as_ref().and_then(|s| s.boot.clone()),
                auto_enable_io: false,
            };
            tx.doc_put(&rec)?;
            let t = tag::insert(tx, &rec.volume_id, "volume", &tags)?;
            Ok((rec, t, layer.backing))
        })?;
        let layer = layer_id(&rec.layer)?;
        let backing = backing.as_deref().map(layer_id).transpose()?;
        if let Err(e) = self.layer_ensure_backing(backing.as_ref()).await {
            self.volume_create_undo(&rec.volume_id).await;
            return Err(e);
        }
        if let Err(e) = self.storage.layer_create(&layer, backing.as_ref(), rec.size_bytes()).await {
            self.volume_create_undo(&rec.volume_id).await;
            return Err(agent_error("creating the volume's disk", e));
        }
        let rec = self.store.transaction(|tx| {
            let mut v = Self::volume_load(tx, &rec.volume_id)?;
            v.state = "available".into();
            tx.doc_put(&v)?;
            Ok::<_, Error>(v)
        })?;
        Ok(Volume { rec, tags })
    }

    async fn volume_create_undo(&self, volume_id: &str) {
        let doomed = self.store.transaction(|tx| {
            tx.doc_delete::<VolumeRecord>(volume_id)?;
            tx.tag_delete_all(volume_id)?;
            collect_layers(tx)
        });
        match doomed {
            Ok(layers) => self.layers_delete(layers).await,
            Err(e) => tracing::error!(volume = volume_id, error = %e, "undoing a failed CreateVolume"),
        }
    }

    /// Makes sure a layer that is about to be built on exists as a file: a root volume's top
    /// layer, for one, is only created when its instance first starts.
    pub(crate) async fn layer_ensure_backing(&self, layer: Option<&LayerId>) -> Result<()> {
        let Some(layer) = layer else { return Ok(()) };
        if self.storage.layer_size(layer).await.map_err(|e| agent_error("reading a layer", e))?.is_some() {
            return Ok(());
        }
        // Walk down to the first layer that exists, then create upwards.
        let mut chain = vec![layer.clone()];
        loop {
            let rec = self
                .store
                .read(|tx| tx.doc_get::<LayerRecord>(chain.last().map(|l| l.as_str()).unwrap_or_default()))?
                .ok_or_else(|| Error::internal(format!("layer {} has no record", chain.last().map(|l| l.as_str()).unwrap_or_default())))?;
            match rec.backing.as_deref().map(layer_id).transpose()? {
                Some(b) if self.storage.layer_size(&b).await.map_err(|e| agent_error("reading a layer", e))?.is_none() => chain.push(b),
                _ => break,
            }
        }
        while let Some(l) = chain.pop() {
            let rec = self
                .store
                .read(|tx| tx.doc_get::<LayerRecord>(l.as_str()))?
                .ok_or_else(|| Error::internal(format!("layer {l} vanished")))?;
            let backing = rec.backing.as_deref().map(layer_id).transpose()?;
            let size = match &backing {
                Some(b) => self.storage.layer_size(b).await.map_err(|e| agent_error("reading a layer", e))?.unwrap_or(1 << 30),
                None => 1 << 30,
            };
            // The volume that writes to it (if any) says how big it is.
            let size = self
                .store
                .read(|tx| {
                    Ok::<_, Error>(tx.doc_list::<VolumeRecord>()?.into_iter().find(|v| v.layer == l.as_str()).map(|v| v.size_bytes()))
                })?
                .unwrap_or(size)
                .max(size);
            self.storage.layer_create(&l, backing.as_ref(), size).await.map_err(|e| agent_error("creating a layer", e))?;
        }
        Ok(())
    }

    pub fn volume_describe(&self, req: &rq::DescribeVolumes) -> Result<(Vec<Volume>, Option<String>)> {
        const NAMES: &[&str] = &[
            "volume-id",
            "status",
            "size",
            "availability-zone",
            "volume-type",
            "snapshot-id",
            "create-time",
            "encrypted",
            "multi-attach-enabled",
            "attachment.instance-id",
            "attachment.status",
            "attachment.device",
            "attachment.attach-time",
            "attachment.delete-on-termination",
        ];
        let q = filter::Query {
            kind: IdKind::Volume,
            ids: &req.volume_ids,
            filters: &req.filters,
            names: NAMES,
            dry_run: req.dry_run,
            max_results: req.max_results,
            next_token: req.next_token.as_deref(),
            bounds: (5, 500),
        };
        q.check()?;
        if req.max_results.is_some() && !req.volume_ids.is_empty() {
            return Err(Error::combination("The parameter volumeSet cannot be used with the parameter maxResults"));
        }
        let (all, tags) = self.store.read(|tx| Ok::<_, Error>((tx.doc_list::<VolumeRecord>()?, tx.tag_map()?)))?;
        let (items, next) = q.select(
            all,
            &tags,
            |v| &v.volume_id,
            |_| true,
            |v, n| {
                let a = v.attachment.as_ref();
                match n {
                    "volume-id" => vec![v.volume_id.clone()],
                    "status" => vec![v.state.clone()],
                    "size" => vec![v.size_gib.to_string()],
                    "availability-zone" => vec![v.availability_zone.clone()],
                    "volume-type" => vec![v.volume_type.clone()],
                    "snapshot-id" => v.snapshot_id.iter().cloned().collect(),
                    "create-time" => vec![v.created_at.clone()],
                    "encrypted" | "multi-attach-enabled" => vec!["false".into()],
                    "attachment.instance-id" => a.map(|a| a.instance_id.clone()).into_iter().collect(),
                    "attachment.status" => a.map(|a| a.state.clone()).into_iter().collect(),
                    "attachment.device" => a.map(|a| a.device.clone()).into_iter().collect(),
                    "attachment.attach-time" => a.map(|a| a.attach_time.clone()).into_iter().collect(),
                    "attachment.delete-on-termination" => a.map(|a| a.delete_on_termination.to_string()).into_iter().collect(),
                    _ => vec![],
                }
            },
        )?;
        Ok((items.into_iter().map(|(rec, tags)| Volume { rec, tags }).collect(), next))
    }

    pub async fn volume_delete(&self, req: &rq::DeleteVolume) -> Result<()> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let doomed = self.store.transaction(|tx| {
            let v = Self::volume_load(tx, id)?;
            if let Some(a) = &v.attachment {
                return Err(Error::new(ErrorCode::VolumeInUse, format!("Volume {id} is currently attached to {}", a.instance_id)));
            }
            if v.state != "available" && v.state != "error" {
                return Err(Error::new(ErrorCode::IncorrectState, format!("The volume '{id}' is '{}'.", v.state)));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_delete::<VolumeRecord>(id)?;
            tx.tag_delete_all(id)?;
            collect_layers(tx)
        })?;
        self.layers_delete(doomed).await;
        Ok(())
    }

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

    /// The instance's root device name: its image's, or, once the image is deregistered, the
    /// first of EC2's root names one of its volumes is attached at.
    pub(crate) fn root_device_of(&self, tx: &Tx<'_>, inst: &InstanceRecord) -> Result<String> {
        if let Some(i) = tx.image_get(&inst.image_id)? {
            return Ok(i.root_device_name);
        }
        let devices: Vec<String> =
            tx.doc_list_by_parent::<VolumeRecord>(&inst.instance_id)?.into_iter().filter_map(|v| v.attachment.map(|a| a.device)).collect();
        Ok(["/dev/xvda", "/dev/sda1", "/dev/sda"]
            .into_iter()
            .find(|d| devices.iter().any(|x| x == d))
            .unwrap_or(crate::image::ROOT_DEVICE_NAME)
            .to_string())
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
                None => crate::image::ROOT_DEVICE_NAME.into(),
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

    pub async fn volume_modify(&self, req: &rq::ModifyVolume) -> Result<VolumeRecord> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let _disks = self.disk_lock.lock().await;
        let now = crate::now_iso();
        let (v, live) = self.store.read(|tx| {
            let v = Self::volume_load(tx, id)?;
            let live = match &v.attachment {
                Some(a) => tx.instance_get(&a.instance_id)?.is_some_and(|i| i.state == InstanceState::Running),
                None => false,
            };
            Ok::<_, Error>((v, live))
        })?;
        let target_type = req.volume_type.clone().unwrap_or_else(|| v.volume_type.clone());
        let target_size = match req.size {
            Some(s) if s >= 0 && (s as u64) < v.size_gib => {
                return Err(Error::invalid_value("size", &s.to_string(), "New size cannot be smaller than existing size"));
            }
            Some(s) => check_size(&target_type, s)?,
            None => v.size_gib,
        };
        let iops = req.iops.or(if target_type == v.volume_type { v.iops } else { None });
        let throughput = req.throughput.or(if target_type == v.volume_type { v.throughput } else { None });
        let iops = if target_type == "gp2" { None } else { iops };
        let (iops, throughput) = volume_performance(&target_type, target_size, iops, throughput)?;
        if req.size.is_none() && req.volume_type.is_none() && req.iops.is_none() && req.throughput.is_none() {
            return Err(Error::missing("size, volumeType, iops or throughput"));
        }
        if req.dry_run {
            return Err(Error::dry_run());
        }
        if target_size > v.size_gib {
            let bytes = target_size << 30;
            let grown = if live {
                let a = v.attachment.as_ref().map(|a| a.instance_id.clone()).unwrap_or_default();
                self.agent.vm_disk_resize(&a, id, bytes).await
            } else {
                let layer = layer_id(&v.layer)?;
                match self.storage.layer_size(&layer).await {
                    // Not created yet: it is created at the new size.
                    Ok(None) => Ok(()),
                    Ok(Some(_)) => self.storage.layer_resize(&layer, bytes).await,
                    Err(e) => Err(e),
                }
            };
            grown.map_err(|e| agent_error("growing the volume", e))?;
        }
        self.store.transaction(|tx| {
            let mut cur = Self::volume_load(tx, id)?;
            cur.modification = Some(VolumeModification {
                state: "completed".into(),
                status_message: None,
                original_size_gib: cur.size_gib,
                target_size_gib: target_size,
                original_volume_type: cur.volume_type.clone(),
                target_volume_type: target_type.clone(),
                original_iops: cur.iops,
                target_iops: iops,
                original_throughput: cur.throughput,
                target_throughput: throughput,
                start_time: now.clone(),
                end_time: Some(crate::now_iso()),
            });
            cur.size_gib = target_size;
            cur.volume_type = target_type.clone();
            cur.iops = iops;
            cur.throughput = throughput;
            tx.doc_put(&cur)?;
            Ok(cur)
        })
    }

    pub fn volume_modifications(&self, req: &rq::DescribeVolumesModifications) -> Result<(Vec<VolumeRecord>, Option<String>)> {
        const NAMES: &[&str] = &[
            "volume-id",
            "modification-state",
            "target-size",
            "target-volume-type",
            "original-size",
            "original-volume-type",
            "start-time",
        ];
        filter::check(&req.filters, NAMES, false)?;
        for id in &req.volume_ids {
            check_volume_id(Some(id))?;
        }
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let all = self.store.read(|tx| tx.doc_list::<VolumeRecord>())?;
        let missing: Vec<&str> = req.volume_ids.iter().filter(|id| !all.iter().any(|v| &v.volume_id == *id)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(Error::not_found(IdKind::Volume, &missing.join(", ")));
        }
        let items: Vec<VolumeRecord> = all
            .into_iter()
            .filter(|v| v.modification.is_some())
            .filter(|v| req.volume_ids.is_empty() || req.volume_ids.contains(&v.volume_id))
            .filter(|v| {
                let Some(m) = &v.modification else { return false };
                filter::matches(&req.filters, &[], |n| match n {
                    "volume-id" => vec![v.volume_id.clone()],
                    "modification-state" => vec![m.state.clone()],
                    "target-size" => vec![m.target_size_gib.to_string()],
                    "target-volume-type" => vec![m.target_volume_type.clone()],
                    "original-size" => vec![m.original_size_gib.to_string()],
                    "original-volume-type" => vec![m.original_volume_type.clone()],
                    "start-time" => vec![m.start_time.clone()],
                    _ => vec![],
                })
            })
            .collect();
        filter::page(items, req.max_results, req.next_token.as_deref(), (5, 500))
    }

    /// The volumes attached to an instance, for DescribeInstances.
    pub fn volumes_of(&self, instance_id: &str) -> Result<Vec<VolumeRecord>> {
        Ok(self.store.read(|tx| tx.doc_list_by_parent::<VolumeRecord>(instance_id))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        assert_eq!(device_bus("/dev/xvda", "/dev/xvda"), Some(DiskBus::Root));
        assert_eq!(device_bus("/dev/sda1", "/dev/sda1"), Some(DiskBus::Root));
        assert_eq!(device_bus("/dev/sdf", "/dev/xvda"), Some(DiskBus::Scsi { target: 5 }));
        assert_eq!(device_bus("/dev/xvdf", "/dev/xvda"), Some(DiskBus::Scsi { target: 5 }));
        assert_eq!(device_bus("/dev/sdb", "/dev/xvda"), Some(DiskBus::Scsi { target: 1 }));
        assert_eq!(device_bus("/dev/xvda", "/dev/sda1"), None);
        assert_eq!(device_bus("/dev/sdf1", "/dev/xvda"), None);
        assert_eq!(device_bus("/dev/nvme1n1", "/dev/xvda"), None);
        assert_eq!(device_bus("sdf", "/dev/xvda"), None);
    }

    #[test]
    fn performance_defaults_and_limits() {
        assert_eq!(volume_performance("gp3", 10, None, None).unwrap(), (Some(3000), Some(125)));
        assert_eq!(volume_performance("gp2", 10, None, None).unwrap(), (Some(100), None));
        assert_eq!(volume_performance("gp2", 1000, None, None).unwrap(), (Some(3000), None));
        assert_eq!(volume_performance("io1", 10, Some(500), None).unwrap(), (Some(500), None));
        assert_eq!(volume_performance("io1", 10, None, None).unwrap_err().code, ErrorCode::InvalidParameterCombination);
        assert_eq!(volume_performance("io1", 10, Some(1000), None).unwrap_err().code, ErrorCode::InvalidParameterValue);
        assert_eq!(volume_performance("io2", 10, Some(1000), None).unwrap(), (Some(1000), None));
        assert_eq!(volume_performance("gp2", 10, None, Some(200)).unwrap_err().code, ErrorCode::InvalidParameterCombination);
        assert_eq!(volume_performance("gp3", 10, Some(100), None).unwrap_err().code, ErrorCode::InvalidParameterValue);
        assert_eq!(volume_performance("magnetic", 10, None, None).unwrap_err().code, ErrorCode::UnknownVolumeType);
        assert_eq!(gib_ceil(1), 1);
        assert_eq!(gib_ceil(1 << 30), 1);
        assert_eq!(gib_ceil((1 << 30) + 1), 2);
    }
}

/// One volume's health as DescribeVolumeStatus shows it: `ok` unless the volume is in error.
#[derive(Debug, Clone)]
pub struct VolumeStatus {
    pub volume_id: String,
    pub availability_zone: String,
    /// "ok", "impaired" or "insufficient-data".
    pub status: &'static str,
    /// io-enabled: "passed" or "failed".
    pub io_enabled: &'static str,
}

impl Control {
    pub fn volume_status(&self, req: &rq::DescribeVolumeStatus) -> Result<(Vec<VolumeStatus>, Option<String>)> {
        const NAMES: &[&str] = &["availability-zone", "volume-status.status", "volume-status.details-name", "volume-status.details-status"];
        let q = filter::Query {
            kind: IdKind::Volume,
            ids: &req.volume_ids,
            filters: &req.filters,
            names: NAMES,
            dry_run: req.dry_run,
            max_results: req.max_results,
            next_token: req.next_token.as_deref(),
            bounds: (5, 1000),
        };
        q.check()?;
        let all = self.store.read(|tx| tx.doc_list::<VolumeRecord>())?;
        let statuses: Vec<VolumeStatus> = all
            .iter()
            .map(|v| {
                let failed = v.state == "error";
                VolumeStatus {
                    volume_id: v.volume_id.clone(),
                    availability_zone: v.availability_zone.clone(),
                    status: if failed { "impaired" } else { "ok" },
                    io_enabled: if failed { "failed" } else { "passed" },
                }
            })
            .collect();
        let (items, next) = q.select(
            statuses,
            &Default::default(),
            |s| &s.volume_id,
            |_| true,
            |s, n| match n {
                "availability-zone" => vec![s.availability_zone.clone()],
                "volume-status.status" => vec![s.status.into()],
                "volume-status.details-name" => vec!["io-enabled".into(), "io-performance".into()],
                "volume-status.details-status" => vec![s.io_enabled.into(), "not-applicable".into()],
                _ => vec![],
            },
        )?;
        Ok((items.into_iter().map(|(s, _)| s).collect(), next))
    }

    pub fn volume_attribute(&self, req: &rq::DescribeVolumeAttribute) -> Result<(VolumeRecord, String)> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let attribute = req.attribute.clone().ok_or_else(|| Error::missing("Attribute"))?;
        if attribute != "autoEnableIO" && attribute != "productCodes" {
            return Err(Error::invalid_value("Attribute", &attribute, "Valid attributes are autoEnableIO and productCodes."));
        }
        let v = self.store.read(|tx| Self::volume_load(tx, id))?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        Ok((v, attribute))
    }

    pub fn volume_attribute_modify(&self, req: &rq::ModifyVolumeAttribute) -> Result<()> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let value = req.auto_enable_io.as_ref().and_then(|v| v.value).ok_or_else(|| Error::missing("AutoEnableIO"))?;
        self.store.transaction(|tx| {
            let mut v = Self::volume_load(tx, id)?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            v.auto_enable_io = value;
            Ok(tx.doc_put(&v)?)
        })
    }
}
