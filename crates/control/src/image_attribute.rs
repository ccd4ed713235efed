//! Image attributes: DescribeImageAttribute, ModifyImageAttribute (the description and
//! launchPermission, through `permission.rs`) and ResetImageAttribute (launchPermission back
//! to private).

use crate::attribute::{attribute_name, Target};
use crate::permission::{apply_permissions, check_owner, permission_changes};
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::ImageRecord;
use corral_types::{Error, IdKind, Result};

impl Control {
    pub fn image_attribute(&self, req: &rq::DescribeImageAttribute) -> Result<(ImageRecord, String)> {
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
        self.attribute_read(target(req.image_id.as_deref(), req.dry_run), req.attribute.as_deref(), ATTRIBUTES)
    }

    /// ResetImageAttribute: launchPermission back to private (the only resettable one).
    pub fn image_attribute_reset(&self, req: &rq::ResetImageAttribute) -> Result<()> {
        attribute_name(req.attribute.as_deref(), &["launchPermission"])?;
        self.attribute_write(target(req.image_id.as_deref(), req.dry_run), |_, img: &mut ImageRecord| {
            check_owner(&img.owner_id, &self.account_id, &img.image_id)?;
            img.is_public = false;
            img.launch_users.clear();
            Ok(())
        })?;
        Ok(())
    }

    pub fn image_attribute_modify(&self, req: &rq::ModifyImageAttribute) -> Result<()> {
        self.attribute_write(target(req.image_id.as_deref(), req.dry_run), |_, img: &mut ImageRecord| {
            check_owner(&img.owner_id, &self.account_id, &img.image_id)?;
            let attribute = req.attribute.as_deref();
            let description = req.description.as_ref().and_then(|d| d.value.clone()).or_else(|| match attribute {
                Some("description") => req.value.clone(),
                _ => None,
            });
            crate::limits::description("Description", description.as_deref())?;
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
            if let Some(d) = description {
                img.description = d;
            }
            apply_permissions(&mut img.is_public, &mut img.launch_users, &adds, &removes);
            Ok(())
        })?;
        Ok(())
    }
}

fn target(id: Option<&str>, dry_run: bool) -> Target<'_> {
    Target::new(IdKind::Image, id, "ImageId", dry_run)
}
