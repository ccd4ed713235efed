//! Snapshot attributes: DescribeSnapshotAttribute, ModifySnapshotAttribute
//! (createVolumePermission, through `permission.rs`: `group all` makes the snapshot public,
//! user ids share it) and ResetSnapshotAttribute.

use crate::permission::{apply_permissions, permission_changes};
use crate::snapshot::check_snapshot_id;
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::SnapshotRecord;
use corral_types::{Error, ErrorCode, IdKind, Result};

impl Control {
    pub fn snapshot_attribute(&self, req: &rq::DescribeSnapshotAttribute) -> Result<(SnapshotRecord, String)> {
        let id = check_snapshot_id(req.snapshot_id.as_deref())?;
        let attribute = snapshot_attribute_name(req.attribute.as_deref())?;
        let s = self.store.read(|tx| tx.doc_get::<SnapshotRecord>(id))?.ok_or_else(|| Error::not_found(IdKind::Snapshot, id))?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        Ok((s, attribute))
    }

    /// createVolumePermission: `group all` makes the snapshot public; user ids share it.
    pub fn snapshot_attribute_modify(&self, req: &rq::ModifySnapshotAttribute) -> Result<()> {
        let id = check_snapshot_id(req.snapshot_id.as_deref())?;
        if let Some(a) = req.attribute.as_deref() {
            if a != "createVolumePermission" {
                return Err(Error::invalid_value("Attribute", a, "Only createVolumePermission can be modified."));
            }
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
        self.store.transaction(|tx| {
            let mut s = tx.doc_get::<SnapshotRecord>(id)?.ok_or_else(|| Error::not_found(IdKind::Snapshot, id))?;
            if s.owner_id != self.account_id {
                return Err(Error::new(ErrorCode::UnauthorizedOperation, format!("You do not own {id}.")));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            apply_permissions(&mut s.public, &mut s.volume_users, &adds, &removes);
            Ok(tx.doc_put(&s)?)
        })
    }

    pub fn snapshot_attribute_reset(&self, req: &rq::ResetSnapshotAttribute) -> Result<()> {
        let id = check_snapshot_id(req.snapshot_id.as_deref())?;
        snapshot_attribute_name(req.attribute.as_deref())?;
        self.store.transaction(|tx| {
            let mut s = tx.doc_get::<SnapshotRecord>(id)?.ok_or_else(|| Error::not_found(IdKind::Snapshot, id))?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            s.public = false;
            s.volume_users.clear();
            Ok(tx.doc_put(&s)?)
        })
    }
}

fn snapshot_attribute_name(a: Option<&str>) -> Result<String> {
    let a = a.ok_or_else(|| Error::missing("Attribute"))?;
    if a != "createVolumePermission" && a != "productCodes" {
        return Err(Error::invalid_value("Attribute", a, "Valid attributes are createVolumePermission and productCodes."));
    }
    Ok(a.to_string())
}
