//! Snapshots: CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot.
//!
//! Taking a snapshot copies nothing: the volume's top layer is frozen and becomes the
//! snapshot's, and the volume gets a new empty top layer on it (through QMP when a running
//! VM writes to the volume, so the snapshot is crash-consistent, as on EC2). A copy of a
//! snapshot names the same frozen layer.

use crate::volume::collect_layers;
use crate::{filter, tag, Control};
use corral_agent_api::LayerId;
use corral_ec2_query::requests as rq;
use corral_store::{LayerRecord, SnapshotRecord, TagRecord, VolumeRecord};
use corral_types::{Error, ErrorCode, IdKind, InstanceState, ResourceId, Result};

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub rec: SnapshotRecord,
    pub tags: Vec<TagRecord>,
}

fn check_snapshot_id(id: Option<&str>) -> Result<&str> {
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

    pub fn snapshot_describe(&self, req: &rq::DescribeSnapshots) -> Result<(Vec<Snapshot>, Option<String>)> {
        const NAMES: &[&str] = &[
            "snapshot-id",
            "volume-id",
            "status",
            "owner-id",
            "owner-alias",
            "description",
            "volume-size",
            "start-time",
            "progress",
            "encrypted",
            "storage-tier",
        ];
        let q = filter::Query {
            kind: IdKind::Snapshot,
            ids: &req.snapshot_ids,
            filters: &req.filters,
            names: NAMES,
            dry_run: req.dry_run,
            max_results: req.max_results,
            next_token: req.next_token.as_deref(),
            bounds: (5, 1000),
        };
        q.check()?;
        if req.max_results.is_some() && !req.snapshot_ids.is_empty() {
            return Err(Error::combination("The parameter snapshotSet cannot be used with the parameter maxResults"));
        }
        let (all, tags) = self.store.read(|tx| Ok::<_, Error>((tx.doc_list::<SnapshotRecord>()?, tx.tag_map()?)))?;
        let account = self.account_id.clone();
        let keep = |s: &SnapshotRecord| {
            let owner_ok =
                req.owner_ids.is_empty() || req.owner_ids.iter().any(|o| (o == "self" && s.owner_id == account) || *o == s.owner_id);
            owner_ok && req.restorable_by_user_ids.iter().all(|u| u == "self" || *u == s.owner_id)
        };
        let (items, next) = q.select(
            all,
            &tags,
            |s| &s.snapshot_id,
            keep,
            |s, n| match n {
                "snapshot-id" => vec![s.snapshot_id.clone()],
                "volume-id" => vec![s.volume_id.clone()],
                "status" => vec![s.state.clone()],
                "owner-id" => vec![s.owner_id.clone()],
                "description" => vec![s.description.clone()],
                "volume-size" => vec![s.volume_size_gib.to_string()],
                "start-time" => vec![s.started_at.clone()],
                "progress" => vec![progress(s)],
                "encrypted" => vec!["false".into()],
                "storage-tier" => vec!["standard".into()],
                _ => vec![],
            },
        )?;
        Ok((items.into_iter().map(|(rec, tags)| Snapshot { rec, tags }).collect(), next))
    }

    pub async fn snapshot_delete(&self, req: &rq::DeleteSnapshot) -> Result<()> {
        let id = check_snapshot_id(req.snapshot_id.as_deref())?;
        let doomed = self.store.transaction(|tx| {
            tx.doc_get::<SnapshotRecord>(id)?.ok_or_else(|| Error::not_found(IdKind::Snapshot, id))?;
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
            collect_layers(tx)
        })?;
        // Its layer may now be droppable from the middle of a chain.
        self.chains_dirty();
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

impl Control {
    async fn layer_exists(&self, layer: &LayerId) -> Result<bool> {
        self.storage.layer_size(layer).await.map(|s| s.is_some()).map_err(|e| Error::internal(format!("reading layer {layer}: {e}")))
    }

    /// Whether the host step of a pending snapshot happened: the volume's new top layer exists
    /// and, when a running VM has the volume, that VM writes to it. Asking the VM to take the
    /// same snapshot again answers that (it is a no-op once taken, and takes it now if its
    /// layer was never made); a new top layer the VM does not write to is deleted.
    async fn snapshot_step_happened(&self, volume_id: &str, top: &LayerId) -> Result<bool> {
        let running_on = self.store.read(|tx| {
            let Some(v) = tx.doc_get::<VolumeRecord>(volume_id)? else { return Ok::<_, Error>(None) };
            let Some(a) = v.attachment else { return Ok(None) };
            Ok(tx.instance_get(&a.instance_id)?.filter(|i| i.state == InstanceState::Running).map(|i| i.instance_id))
        })?;
        let Some(instance_id) = running_on else { return self.layer_exists(top).await };
        match self.agent.vm_disk_snapshot(&instance_id, volume_id, top).await {
            Ok(()) => Ok(true),
            Err(corral_agent_api::AgentError::WrongState { .. } | corral_agent_api::AgentError::NoSuchVm(_)) => {
                self.layer_exists(top).await
            }
            Err(e) => {
                tracing::warn!(volume = volume_id, layer = %top, error = %e, "a snapshot's new layer is not in use; deleting it");
                self.storage.layer_delete(top).await.map_err(|e| Error::internal(format!("deleting layer {top}: {e}")))?;
                Ok(false)
            }
        }
    }

    /// At start, before the first reconcile pass: finishes or undoes the storage steps a crash
    /// interrupted between their two transactions.
    /// - A pending snapshot whose new top layer exists happened on the host (a running VM may
    ///   already write to that layer): it completes. Otherwise it ends in `error`.
    /// - A volume still `creating` whose layer exists becomes available; else it goes.
    /// - An attachment still `attaching` or `detaching` is settled by asking the agent to
    ///   detach (idempotent): the volume ends available, as if the call had failed.
    pub async fn storage_recover(&self) -> Result<()> {
        let (snapshots, volumes) =
            self.store.read(|tx| Ok::<_, Error>((tx.doc_list::<SnapshotRecord>()?, tx.doc_list::<VolumeRecord>()?)))?;
        for s in snapshots.into_iter().filter(|s| s.state == "pending") {
            let top = s.pending_top.as_deref().and_then(LayerId::parse);
            let happened = match &top {
                Some(t) => self.snapshot_step_happened(&s.volume_id, t).await?,
                None => false,
            };
            self.store.transaction(|tx| {
                let Some(mut snap) = tx.doc_get::<SnapshotRecord>(&s.snapshot_id)? else { return Ok::<_, Error>(()) };
                let vol = tx.doc_get::<VolumeRecord>(&snap.volume_id)?;
                match (happened, top.as_ref(), vol) {
                    (true, Some(t), Some(mut v)) => {
                        tx.doc_put(&LayerRecord {
                            layer_id: t.to_string(),
                            backing: Some(v.layer.clone()),
                            created_at: snap.started_at.clone(),
                        })?;
                        snap.layer = Some(v.layer.clone());
                        snap.state = "completed".into();
                        snap.completed_at = Some(crate::now_iso());
                        v.layer = t.to_string();
                        tx.doc_put(&v)?;
                    }
                    _ => {
                        snap.state = "error".into();
                        snap.state_message = Some("Corral stopped while the snapshot was being taken.".into());
                    }
                }
                snap.pending_top = None;
                tx.doc_put(&snap)?;
                tracing::warn!(snapshot = %snap.snapshot_id, state = %snap.state, "settled a snapshot interrupted by a restart");
                Ok(())
            })?;
        }
        for v in volumes {
            let transient = v.attachment.as_ref().filter(|a| a.state == "attaching" || a.state == "detaching").cloned();
            if let Some(a) = transient {
                if let Err(e) = self.agent.vm_disk_detach(&a.instance_id, &v.volume_id, true).await {
                    tracing::debug!(volume = %v.volume_id, error = %e, "detach while recovering (the VM may not run)");
                }
                self.store.transaction(|tx| {
                    let Some(mut cur) = tx.doc_get::<VolumeRecord>(&v.volume_id)? else { return Ok::<_, Error>(()) };
                    cur.attachment = None;
                    cur.state = "available".into();
                    tx.doc_put(&cur)?;
                    Ok(())
                })?;
                tracing::warn!(volume = %v.volume_id, "settled an attachment interrupted by a restart");
            }
            if v.state == "creating" {
                let layer = LayerId::parse(&v.layer);
                let exists = match &layer {
                    Some(l) => self.layer_exists(l).await?,
                    None => false,
                };
                let doomed = self.store.transaction(|tx| {
                    let Some(mut cur) = tx.doc_get::<VolumeRecord>(&v.volume_id)? else { return Ok::<_, Error>(vec![]) };
                    if exists {
                        cur.state = "available".into();
                        tx.doc_put(&cur)?;
                        Ok(vec![])
                    } else {
                        tx.doc_delete::<VolumeRecord>(&v.volume_id)?;
                        tx.tag_delete_all(&v.volume_id)?;
                        collect_layers(tx)
                    }
                })?;
                self.layers_delete(doomed).await;
            }
        }
        Ok(())
    }
}

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
        let (adds, removes) = crate::image::permission_changes(
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
            crate::image::apply_permissions(&mut s.public, &mut s.volume_users, &adds, &removes);
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
