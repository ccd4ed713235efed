//! Where a volume appears to its instance. A device name (`/dev/sdf`, `/dev/xvdf`) puts a
//! disk on a bus: the root device (virtio-blk), or a target on the VM's virtio-scsi controller
//! taken from the name's letter. This module owns that rule, the root device name an instance
//! has, and the disks its VM gets (its attached volumes, root first); volumes, images and the
//! reconciler read them from here.

use crate::layer::layer_id;
use crate::Control;
use corral_agent_api::{DiskBus, DiskSpec};
use corral_store::{InstanceRecord, LayerRecord, Tx, VolumeRecord};
use corral_types::{Error, Result};

/// Root device name AWS reports for HVM images.
pub const ROOT_DEVICE_NAME: &str = "/dev/xvda";

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

/// How a VM sees one volume on `bus`: the volume's top layer and what that layer is on.
pub(crate) fn disk_spec(tx: &Tx<'_>, v: &VolumeRecord, bus: DiskBus) -> Result<DiskSpec> {
    let layer = tx.doc_get::<LayerRecord>(&v.layer)?.ok_or_else(|| Error::internal(format!("volume {} has no layer", v.volume_id)))?;
    Ok(DiskSpec {
        volume_id: v.volume_id.clone(),
        layer: layer_id(&layer.layer_id)?,
        backing: layer.backing.as_deref().map(layer_id).transpose()?,
        size_bytes: v.size_bytes(),
        bus,
    })
}

impl Control {
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
            .unwrap_or(ROOT_DEVICE_NAME)
            .to_string())
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
}
