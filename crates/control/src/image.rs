//! Images: DescribeImages, RegisterImage and DeregisterImage, and the types and rules every
//! image action shares (the image the API shows, what an image build produced, EC2's rule for
//! AMI names). CreateImage is in `image_create.rs`, CopyImage in `image_copy.rs`, image
//! attributes in `image_attribute.rs`, deprecation in `image_deprecation.rs`, and the images
//! Corral builds or imports in `image_built.rs`.
//!
//! An image is a list of block device mappings, each naming a snapshot, so launching one
//! copies nothing (root volumes are overlays on the snapshots' layers). An image without a
//! kernel boots through its own bootloader (q35 firmware boot); one with a kernel (Corral's
//! default images, and images made from their instances) boots that kernel directly.

use crate::describe::{Describe, FilterLine};
use crate::device::device_bus;
use crate::layer::collect_layers;
use crate::{filter, tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{ImageBlockDevice, ImageRecord, SnapshotRecord, TagRecord};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};

/// Root device name AWS reports for HVM images (the API and instances read it here).
pub use crate::device::ROOT_DEVICE_NAME;

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

impl Control {
    pub(crate) fn image_load(tx: &corral_store::Tx<'_>, id: &str) -> Result<ImageRecord> {
        if ResourceId::parse(IdKind::Image, id).is_none() {
            return Err(Error::malformed(IdKind::Image, id));
        }
        tx.image_get(id)?.ok_or_else(|| Error::not_found(IdKind::Image, id))
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
                if device_bus(&device, &root).is_none() {
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
                    (Some(sz), _) => crate::volume_type::check_size(ebs.volume_type.as_deref().unwrap_or("gp2"), sz)?,
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
                description: {
                    crate::limits::description("Description", req.description.as_deref())?;
                    req.description.clone().unwrap_or_default()
                },
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
        let (deleted, released, doomed) = self.store.transaction(|tx| {
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
            let mut released = Vec::new();
            if req.delete_associated_snapshots == Some(true) {
                let others = tx.image_list()?;
                for s in img.block_devices.iter().filter_map(|b| b.snapshot_id.clone()) {
                    if others.iter().any(|i| i.block_devices.iter().any(|b| b.snapshot_id.as_deref() == Some(s.as_str()))) {
                        continue;
                    }
                    if let Some(snap) = tx.doc_get::<SnapshotRecord>(&s)? {
                        tx.doc_delete::<SnapshotRecord>(&s)?;
                        tx.tag_delete_all(&s)?;
                        released.extend(snap.layer);
                        deleted.push(s);
                    }
                }
            }
            Ok((deleted, released.clone(), collect_layers(tx, released)?))
        })?;
        // Their layers may now be droppable from the middle of a chain.
        self.chains_dirty_at(released);
        self.layers_delete(doomed).await;
        Ok(deleted)
    }

    /// `rendered` answers the filters without a line here from each image's view.
    pub fn image_describe(&self, req: &rq::DescribeImages, rendered: &filter::Rendered<'_, Image>) -> Result<(Vec<Image>, Option<String>)> {
        let d = Describe::new(&req.image_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        let account = self.account_id.as_str();
        self.describe(&d.table(IMAGE_FILTERS).rendered(Some(rendered)), |i| {
            let i = &i.rec;
            let owner_ok = req.owners.is_empty() || req.owners.iter().any(|o| o == "self" && i.owner_id == account || *o == i.owner_id);
            owner_ok
                && req.executable_users.iter().all(|u| {
                    (u == "self" && i.owner_id == account) || (u == "all" && i.is_public) || i.launch_users.contains(u) || *u == i.owner_id
                })
        })
    }
}

crate::described_as_tagged!(Image, ImageRecord, IdKind::Image, image_id);

fn block_devices(i: &Image, f: impl Fn(&ImageBlockDevice) -> Option<String>) -> Vec<String> {
    i.rec.block_devices.iter().filter_map(f).collect()
}

/// DescribeImages' filters besides those its view answers.
const IMAGE_FILTERS: &[FilterLine<Image>] = &[
    ("image-id", |i, _| vec![i.rec.image_id.clone()]),
    ("name", |i, _| vec![i.rec.name.clone()]),
    ("owner-id", |i, _| vec![i.rec.owner_id.clone()]),
    ("owner-alias", |_, _| vec![]),
    ("state", |i, _| vec![i.rec.state.clone()]),
    ("architecture", |_, _| vec!["x86_64".into()]),
    ("image-type", |_, _| vec!["machine".into()]),
    ("is-public", |i, _| vec![i.rec.is_public.to_string()]),
    ("root-device-type", |_, _| vec!["ebs".into()]),
    ("root-device-name", |i, _| vec![i.rec.root_device_name.clone()]),
    ("virtualization-type", |_, _| vec!["hvm".into()]),
    ("hypervisor", |_, _| vec!["xen".into()]),
    ("description", |i, _| vec![i.rec.description.clone()]),
    ("platform-details", |_, _| vec!["Linux/UNIX".into()]),
    ("block-device-mapping.snapshot-id", |i, _| block_devices(i, |b| b.snapshot_id.clone())),
    ("block-device-mapping.device-name", |i, _| block_devices(i, |b| Some(b.device_name.clone()))),
    ("block-device-mapping.volume-size", |i, _| block_devices(i, |b| Some(b.volume_size_gib.to_string()))),
    ("block-device-mapping.volume-type", |i, _| block_devices(i, |b| Some(b.volume_type.clone()))),
    ("block-device-mapping.delete-on-termination", |i, _| block_devices(i, |b| Some(b.delete_on_termination.to_string()))),
    ("kernel-id", |_, _| vec![]),
    // Images here are EBS-backed and carry no product codes.
    ("manifest-location", |_, _| vec![]),
    ("product-code", |_, _| vec![]),
    ("ramdisk-id", |_, _| vec![]),
    ("creation-date", |i, _| vec![i.rec.created_at.clone()]),
];

/// EC2's rule for AMI names: 3 to 128 characters of letters, digits, spaces and `()[]./-'@_`.
pub(crate) fn check_image_name(name: &str) -> Result<()> {
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
