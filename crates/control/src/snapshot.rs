//! Snapshots: CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot. Their
//! attributes are in `snapshot_attribute.rs`; settling snapshots a restart interrupted is in
//! `storage_recover.rs`.
//!
//! Taking a snapshot copies nothing: the volume's top layer is frozen and becomes the
//! snapshot's, and the volume gets a new empty top layer on it (through QMP when a running
//! VM writes to the volume, so the snapshot is crash-consistent, as on EC2). A copy of a
//! snapshot names the same frozen layer.

use crate::describe::{Describe, FilterLine};
use crate::layer::collect_layers;
use crate::{tag, Control};
use corral_agent_api::LayerId;
use corral_ec2_query::requests as rq;
use corral_store::{LayerRecord, SnapshotRecord, TagRecord, Tx, VolumeRecord};
use corral_types::{Error, ErrorCode, IdKind, InstanceState, ResourceId, Result};

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub rec: SnapshotRecord,
    pub tags: Vec<TagRecord>,
}

crate::described_as_tagged!(Snapshot, SnapshotRecord, IdKind::Snapshot, snapshot_id);

const SNAPSHOT_FILTERS: &[FilterLine<Snapshot>] = &[
    ("snapshot-id", |s, _| vec![s.rec.snapshot_id.clone()]),
    ("volume-id", |s, _| vec![s.rec.volume_id.clone()]),
    ("status", |s, _| vec![s.rec.state.clone()]),
    ("owner-id", |s, _| vec![s.rec.owner_id.clone()]),
    ("owner-alias", |_, _| vec![]),
    ("description", |s, _| vec![s.rec.description.clone()]),
    ("volume-size", |s, _| vec![s.rec.volume_size_gib.to_string()]),
    ("start-time", |s, _| vec![s.rec.started_at.clone()]),
    ("progress", |s, _| vec![progress(&s.rec)]),
    ("encrypted", |_, _| vec!["false".into()]),
    ("storage-tier", |_, _| vec!["standard".into()]),
    // Copies here are immediate: no standard or time-based transfer.
    ("transfer-type", |_, _| vec![]),
];

pub(crate) fn check_snapshot_id(id: Option<&str>) -> Result<&str> {
    let id = id.ok_or_else(|| Error::missing("SnapshotId"))?;
    if ResourceId::parse(IdKind::Snapshot, id).is_none() {
        return Err(Error::malformed(IdKind::Snapshot, id));
    }
    Ok(id)
}

impl Control {
    pub async fn snapshot_create(&self, req: &rq::CreateSnapshot) -> Result<Snapshot> {
        let volume_id = req.volume_id.as_deref().ok_or_else(|| Error::missing("VolumeId"))?;
        if ResourceId::parse(IdKind::Volume, volume_id).is_none() {
            return Err(Error::malformed(IdKind::Volume, volume_id));
        }
        let tags = tag::from_specifications(&req.tag_specifications, "snapshot", &["snapshot"])?;
        self.store.read(|tx| tx.doc_get::<VolumeRecord>(volume_id))?.ok_or_else(|| Error::not_found(IdKind::Volume, volume_id))?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let _disks = self.disk_lock.lock().await;
        crate::limits::description("Description", req.description.as_deref())?;
        let rec = self.snapshot_take(volume_id, req.description.clone().unwrap_or_default(), &tags).await?;
        let tags = self.store.read(|tx| tx.tag_list_for(&rec.snapshot_id))?;
        Ok(Snapshot { rec, tags })
    }

    /// Takes a snapshot of a volume; the caller holds `disk_lock`. A failure on the host ends
    /// the snapshot in state `error` (as EC2 shows a snapshot that could not complete) with
    /// the volume as it was.
    pub(crate) async fn snapshot_take(&self, volume_id: &str, description: String, tags: &[(String, String)]) -> Result<SnapshotRecord> {
        let now = crate::now_iso();
        let new_top = LayerId::random();
        let (snap, vol, live_on) = self.store.transaction(|tx| {
            let v = tx.doc_get::<VolumeRecord>(volume_id)?.ok_or_else(|| Error::not_found(IdKind::Volume, volume_id))?;
            if v.state == "creating" || v.state == "error" {
                return Err(Error::new(ErrorCode::IncorrectState, format!("The volume '{volume_id}' is '{}'.", v.state)));
            }
            let live_on = match &v.attachment {
                Some(a) if a.state == "attached" => tx
                    .instance_get(&a.instance_id)?
                    .filter(|i| i.state != InstanceState::Stopped && i.state != InstanceState::Terminated)
                    .map(|i| (i.instance_id, i.state)),
                Some(a) => return Err(Error::new(ErrorCode::IncorrectState, format!("The volume '{volume_id}' is {}.", a.state))),
                None => None,
            };
            if let Some((id, state)) = &live_on {
                if *state != InstanceState::Running {
                    return Err(Error::new(
                        ErrorCode::IncorrectInstanceState,
                        format!("Instance '{id}' is {}; snapshot its volumes while it runs or once it has stopped.", state.name()),
                    ));
                }
            }
            let snap = SnapshotRecord {
                snapshot_id: ResourceId::generate(IdKind::Snapshot).into_string(),
                volume_id: volume_id.to_string(),
                volume_size_gib: v.size_gib,
                owner_id: self.account_id.clone(),
                description: description.clone(),
                state: "pending".into(),
                state_message: None,
                started_at: now.clone(),
                completed_at: None,
                layer: None,
                pending_top: Some(new_top.to_string()),
                boot: v.boot.clone(),
                public: false,
                volume_users: vec![],
            };
            tx.doc_put(&snap)?;
            tag::insert(tx, &snap.snapshot_id, "snapshot", tags)?;
            Ok((snap, v, live_on.map(|(id, _)| id)))
        })?;
        let old_top = LayerId::parse(&vol.layer).ok_or_else(|| Error::internal("malformed layer id"))?;
        let done = match &live_on {
            Some(instance_id) => self
                .agent
                .vm_disk_snapshot(instance_id, volume_id, &new_top)
                .await
                .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e))),
            None => match self.layer_ensure_backing(Some(&old_top)).await {
                Ok(()) => self
                    .storage
                    .layer_create(&new_top, Some(&old_top), vol.size_bytes())
                    .await
                    .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e))),
                Err(e) => Err(e.to_string()),
            },
        };
        self.store.transaction(|tx| {
            let mut s = tx.doc_get::<SnapshotRecord>(&snap.snapshot_id)?.ok_or_else(|| Error::internal("snapshot vanished"))?;
            match &done {
                Ok(()) => {
                    tx.doc_put(&LayerRecord {
                        layer_id: new_top.to_string(),
                        backing: Some(old_top.to_string()),
                        created_at: now.clone(),
                    })?;
                    let mut v = tx.doc_get::<VolumeRecord>(volume_id)?.ok_or_else(|| Error::internal("volume vanished"))?;
                    v.layer = new_top.to_string();
                    tx.doc_put(&v)?;
                    s.layer = Some(old_top.to_string());
                    s.pending_top = None;
                    s.state = "completed".into();
                    s.completed_at = Some(crate::now_iso());
                }
                Err(detail) => {
                    tracing::warn!(volume = volume_id, snapshot = %s.snapshot_id, %detail, "snapshot failed");
                    s.state = "error".into();
                    s.pending_top = None;
                    s.state_message = Some(if detail.contains("No space left") {
                        "The host's storage pool is full.".into()
                    } else {
                        "The snapshot could not be taken.".into()
                    });
                }
            }
            tx.doc_put(&s)?;
            Ok(s)
        })
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

    pub fn snapshot_describe(&self, req: &rq::DescribeSnapshots) -> Result<(Vec<Snapshot>, Option<String>)> {
        let d = Describe::new(&req.snapshot_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        d.ids_without_max_results("snapshotSet")?;
        let account = self.account_id.as_str();
        self.describe(&d.table(SNAPSHOT_FILTERS), |s| {
            let s = &s.rec;
            let owner_ok =
                req.owner_ids.is_empty() || req.owner_ids.iter().any(|o| (o == "self" && s.owner_id == account) || *o == s.owner_id);
            owner_ok && req.restorable_by_user_ids.iter().all(|u| u == "self" || *u == s.owner_id)
        })
    }

    pub async fn snapshot_delete(&self, req: &rq::DeleteSnapshot) -> Result<()> {
        let id = check_snapshot_id(req.snapshot_id.as_deref())?;
        let (layer, doomed) = self.store.transaction(|tx| {
            let snap = tx.doc_get::<SnapshotRecord>(id)?.ok_or_else(|| Error::not_found(IdKind::Snapshot, id))?;
            if let Some(image) = tx.image_list()?.into_iter().find(|i| i.block_devices.iter().any(|b| b.snapshot_id.as_deref() == Some(id)))
            {
                return Err(Error::new(
                    ErrorCode::InvalidSnapshotInUse,
                    format!("The snapshot {id} is currently in use by {}", image.image_id),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_delete::<SnapshotRecord>(id)?;
            tx.tag_delete_all(id)?;
            Ok((snap.layer.clone(), collect_layers(tx, snap.layer)?))
        })?;
        // Its layer may now be droppable from the middle of a chain.
        self.chains_dirty_at(layer);
        self.layers_delete(doomed).await;
        Ok(())
    }

    pub fn snapshot_copy(&self, req: &rq::CopySnapshot) -> Result<Snapshot> {
        let source = check_snapshot_id(req.source_snapshot_id.as_deref())?;
        let region = req.source_region.as_deref().ok_or_else(|| Error::missing("SourceRegion"))?;
        crate::region::same_region("SourceRegion", region, self.region())?;
        if let Some(d) = req.destination_region.as_deref() {
            crate::region::same_region("DestinationRegion", d, self.region())?;
        }
        if req.encrypted == Some(true) {
            return Err(Error::new(ErrorCode::Unsupported, "Encrypted snapshots are not supported here."));
        }
        let tags = tag::from_specifications(&req.tag_specifications, "snapshot", &["snapshot"])?;
        crate::limits::description("Description", req.description.as_deref())?;
        self.store.transaction(|tx| {
            let src = self.snapshot_usable(tx, source)?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let rec =
                self.snapshot_copy_in(tx, &src, req.description.clone().unwrap_or_else(|| format!("[Copied {source} from {region}]")))?;
            let t = tag::insert(tx, &rec.snapshot_id, "snapshot", &tags)?;
            Ok(Snapshot { rec, tags: t })
        })
    }

    /// A new snapshot naming the same frozen layer as `src`.
    pub(crate) fn snapshot_copy_in(&self, tx: &corral_store::Tx<'_>, src: &SnapshotRecord, description: String) -> Result<SnapshotRecord> {
        let now = crate::now_iso();
        let rec = SnapshotRecord {
            snapshot_id: ResourceId::generate(IdKind::Snapshot).into_string(),
            // EC2 shows copies as taken from this placeholder volume.
            volume_id: "vol-ffffffff".into(),
            volume_size_gib: src.volume_size_gib,
            owner_id: self.account_id.clone(),
            description,
            state: "completed".into(),
            state_message: None,
            started_at: now.clone(),
            completed_at: Some(now),
            layer: src.layer.clone(),
            pending_top: None,
            boot: src.boot.clone(),
            public: false,
            volume_users: vec![],
        };
        tx.doc_put(&rec)?;
        Ok(rec)
    }
}

/// EC2's progress string.
pub fn progress(s: &SnapshotRecord) -> String {
    match s.state.as_str() {
        "completed" => "100%".into(),
        _ => "0%".into(),
    }
}
