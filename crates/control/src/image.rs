//! Images: DescribeImages, and registering the images Corral builds.

use crate::{filter, Control};
use corral_ec2_query::requests as rq;
use corral_store::{ImageRecord, TagRecord};
use corral_types::{Error, IdKind, ResourceId, Result};

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

/// Root device name AWS reports for HVM images.
pub const ROOT_DEVICE_NAME: &str = "/dev/xvda";

impl Control {
    /// Registers (or refreshes) an image Corral built; its id stays the same across rebuilds.
    pub fn image_register_built(&self, img: NewImage) -> Result<String> {
        let rec = ImageRecord {
            image_id: ResourceId::generate(IdKind::Image).into_string(),
            name: img.name,
            description: img.description,
            owner_id: self.account_id.clone(),
            state: "available".into(),
            created_at: crate::now_iso(),
            base_disk: img.base_disk,
            kernel: img.kernel,
            initrd: img.initrd,
            cmdline: img.cmdline,
            size_bytes: img.size_bytes,
            recipe_hash: img.recipe_hash,
            root_device_name: ROOT_DEVICE_NAME.into(),
            is_public: false,
        };
        Ok(self.store.transaction(|tx| tx.image_upsert_by_name(&rec))?)
    }

    pub fn image_describe(&self, req: &rq::DescribeImages) -> Result<(Vec<Image>, Option<String>)> {
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
        ];
        filter::check(&req.filters, NAMES, true)?;
        for id in &req.image_ids {
            if ResourceId::parse(IdKind::Image, id).is_none() {
                return Err(Error::malformed(IdKind::Image, id));
            }
        }
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let (all, tags) = self.store.read(|tx| Ok::<_, Error>((tx.image_list()?, tx.tag_map()?)))?;
        let missing: Vec<&str> = req.image_ids.iter().filter(|id| !all.iter().any(|i| &i.image_id == *id)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(Error::not_found(IdKind::Image, &missing.join(", ")));
        }
        let account = self.account_id.clone();
        let owner_ok =
            |i: &ImageRecord| req.owners.is_empty() || req.owners.iter().any(|o| o == "self" && i.owner_id == account || *o == i.owner_id);
        let items: Vec<Image> = all
            .into_iter()
            .filter(|i| req.image_ids.is_empty() || req.image_ids.contains(&i.image_id))
            .filter(owner_ok)
            .map(|rec| {
                let t = tags.get(&rec.image_id).cloned().unwrap_or_default();
                Image { rec, tags: t }
            })
            .filter(|i| {
                filter::matches(&req.filters, &i.tags, |n| match n {
                    "image-id" => vec![i.rec.image_id.clone()],
                    "name" => vec![i.rec.name.clone()],
                    "owner-id" => vec![i.rec.owner_id.clone()],
                    "state" => vec![i.rec.state.clone()],
                    "architecture" => vec!["x86_64".into()],
                    "image-type" => vec!["machine".into()],
                    "is-public" => vec![i.rec.is_public.to_string()],
                    "root-device-type" => vec!["ebs".into()],
                    "root-device-name" => vec![i.rec.root_device_name.clone()],
                    "virtualization-type" => vec!["hvm".into()],
                    "hypervisor" => vec!["xen".into()],
                    "description" => vec![i.rec.description.clone()],
                    "platform-details" => vec!["Linux/UNIX".into()],
                    _ => vec![],
                })
            })
            .collect();
        filter::page(items, req.max_results, req.next_token.as_deref(), (5, 1000))
    }
}
