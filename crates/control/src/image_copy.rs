//! CopyImage within this region: a new image whose snapshots are copies of the source's, each
//! naming the same frozen layer, so nothing is copied on the host.

use crate::image::check_image_name;
use crate::{tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::ImageRecord;
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};

impl Control {
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
                description: {
                    crate::limits::description("Description", req.description.as_deref())?;
                    req.description.clone().unwrap_or_else(|| src.description.clone())
                },
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
}
