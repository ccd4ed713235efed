//! Recovery at start: the storage steps a crash interrupted between their two transactions
//! (a snapshot `pending`, a volume `creating`, an attachment `attaching` or `detaching`) are
//! finished or undone before the first reconcile pass, from what the host really has.

use crate::layer::{collect_all_layers, collect_layers, Collected};
use crate::Control;
use corral_agent_api::LayerId;
use corral_store::{LayerRecord, SnapshotRecord, VolumeRecord};
use corral_types::{Error, InstanceState, Result};

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
                    let Some(mut cur) = tx.doc_get::<VolumeRecord>(&v.volume_id)? else { return Ok::<_, Error>(Collected::default()) };
                    if exists {
                        cur.state = "available".into();
                        tx.doc_put(&cur)?;
                        Ok(Collected::default())
                    } else {
                        tx.doc_delete::<VolumeRecord>(&v.volume_id)?;
                        tx.tag_delete_all(&v.volume_id)?;
                        collect_layers(tx, [cur.layer])
                    }
                })?;
                self.layers_delete(doomed).await;
            }
        }
        // Layers nothing refers to (a crash between a commit and the files' deletion).
        let doomed = self.store.transaction(collect_all_layers)?;
        self.layers_delete(doomed).await;
        Ok(())
    }
}
