//! The volumes of an instance's life: which ones a RunInstances creates (the image's block
//! device mappings, changed, suppressed or added to by the request's), recording them attached
//! to the new instance (their top layers are created when the VM first starts, so a launch
//! copies nothing), and what happens to them at termination (DeleteOnTermination).

use crate::device::device_bus;
use crate::layer::{collect_layers, Collected};
use crate::volume_type::{check_size, volume_performance};
use crate::{tag, Control};
use corral_agent_api::LayerId;
use corral_ec2_query::requests as rq;
use corral_store::{ImageBlockDevice, InstanceRecord, KernelBoot, LayerRecord, SnapshotRecord, Tx, VolumeAttachment, VolumeRecord};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};

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
    pub(crate) fn volumes_release(tx: &Tx<'_>, instance_id: &str) -> Result<Collected> {
        let mut released = Vec::new();
        for mut v in tx.doc_list_by_parent::<VolumeRecord>(instance_id)? {
            let delete = v.attachment.as_ref().is_some_and(|a| a.delete_on_termination);
            if delete {
                tx.doc_delete::<VolumeRecord>(&v.volume_id)?;
                tx.tag_delete_all(&v.volume_id)?;
                released.push(v.layer);
            } else {
                v.attachment = None;
                v.state = "available".into();
                tx.doc_put(&v)?;
            }
        }
        collect_layers(tx, released)
    }
}
