//! Snapshot attributes: DescribeSnapshotAttribute, ModifySnapshotAttribute
//! (createVolumePermission, through `permission.rs`: `group all` makes the snapshot public,
//! user ids share it) and ResetSnapshotAttribute.

use crate::attribute::{attribute_name, Target};
use crate::permission::{apply_permissions, check_owner, permission_changes};
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::SnapshotRecord;
use corral_types::{Error, IdKind, Result};

const ATTRIBUTES: &[&str] = &["createVolumePermission", "productCodes"];

fn target(id: Option<&str>, dry_run: bool) -> Target<'_> {
    Target::new(IdKind::Snapshot, id, "SnapshotId", dry_run)
}

impl Control {
    pub fn snapshot_attribute(&self, req: &rq::DescribeSnapshotAttribute) -> Result<(SnapshotRecord, String)> {
        self.attribute_read(target(req.snapshot_id.as_deref(), req.dry_run), req.attribute.as_deref(), ATTRIBUTES)
    }

    /// createVolumePermission: `group all` makes the snapshot public; user ids share it.
    pub fn snapshot_attribute_modify(&self, req: &rq::ModifySnapshotAttribute) -> Result<()> {
        if let Some(a) = req.attribute.as_deref() {
            attribute_name(Some(a), &["createVolumePermission"])?;
        }
        let (adds, removes) = permission_changes(
            req.create_volume_permission.as_ref().map(|p| (&p.add[..], &p.remove[..])),
            &req.user_ids,
            &req.group_names,
            req.operation_type.as_deref(),
        )?;
        if adds.is_empty() && removes.is_empty() {
            return Err(Error::missing("CreateVolumePermission"));
        }
        self.attribute_write(target(req.snapshot_id.as_deref(), req.dry_run), |_, s: &mut SnapshotRecord| {
            check_owner(&s.owner_id, &self.account_id, &s.snapshot_id)?;
            apply_permissions(&mut s.public, &mut s.volume_users, &adds, &removes);
            Ok(())
        })?;
        Ok(())
    }

    pub fn snapshot_attribute_reset(&self, req: &rq::ResetSnapshotAttribute) -> Result<()> {
        attribute_name(req.attribute.as_deref(), ATTRIBUTES)?;
        self.attribute_write(target(req.snapshot_id.as_deref(), req.dry_run), |_, s: &mut SnapshotRecord| {
            check_owner(&s.owner_id, &self.account_id, &s.snapshot_id)?;
            s.public = false;
            s.volume_users.clear();
            Ok(())
        })?;
        Ok(())
    }
}
