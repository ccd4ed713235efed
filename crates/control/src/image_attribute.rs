//! Image attributes: DescribeImageAttribute, ModifyImageAttribute (the description and
//! launchPermission, through `permission.rs`) and ResetImageAttribute (launchPermission back
//! to private).

use crate::permission::{apply_permissions, permission_changes};
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::ImageRecord;
use corral_types::{Error, ErrorCode, Result};

impl Control {
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
}
