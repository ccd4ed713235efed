//! Keeping layer chains short. Every snapshot gives its volume a new top layer, so a volume
//! snapshotted often sits on a long chain; when the snapshots go, their layers stay behind as
//! the chain's middle. A layer that no volume writes to and no snapshot names, with exactly
//! one layer on it, is needed by nothing but that layer: its data is copied up into that
//! layer (`rebase` onto the layer below, which keeps what the chain reads) and it is deleted.
//!
//! A layer may only change while at most one VM has it open, and then through that VM (QEMU
//! streams the data and rewrites the header itself); with none, offline. A layer that two
//! running VMs read is left until one stops. The work runs in the background, one pass at a
//! time, after deletes and whenever a VM stops.

use crate::layer::{collect_layers, layer_id};
use crate::Control;
use corral_store::{LayerRecord, SnapshotRecord, VolumeRecord};
use corral_types::{Error, InstanceState, Result};
use std::collections::{HashMap, HashSet};

/// One step: `child` moves onto `below` (the dropped layer's backing), then `dropped` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    dropped: String,
    child: String,
    below: Option<String>,
    /// The running VM (and the volume through which it has `child` open), if one does.
    live: Option<(String, String)>,
}

/// The layers the next pass looks at: those whose neighbourhood changed since (a snapshot
/// that named it went, an overlay above it went, a VM that had it open stopped), or all of
/// them (at start, and when asked).
#[derive(Debug, Default)]
pub(crate) struct ChainWork {
    all: bool,
    layers: HashSet<String>,
}

impl ChainWork {
    /// Every layer, for the first pass.
    pub(crate) fn everything() -> ChainWork {
        ChainWork { all: true, layers: HashSet::new() }
    }

    fn is_empty(&self) -> bool {
        !self.all && self.layers.is_empty()
    }
}

fn lock(m: &std::sync::Mutex<ChainWork>) -> std::sync::MutexGuard<'_, ChainWork> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Control {
    /// Asks for a pass over these layers (see [`ChainWork`]); the reconciler starts it.
    pub(crate) fn chains_dirty_at(&self, layers: impl IntoIterator<Item = String>) {
        lock(&self.chain_work).layers.extend(layers);
        self.kick();
    }

    /// Starts a pass in the background if one was asked for and none runs.
    pub(crate) fn chains_collapse_if_dirty(&self) {
        let work = std::mem::take(&mut *lock(&self.chain_work));
        if work.is_empty() {
            return;
        }
        let Some(this) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let _one = this.chain_pass.lock().await;
            match this.chains_collapse_on(work).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(dropped = n, "dropped layers nothing needed from the middle of chains"),
                Err(e) => tracing::warn!(error = %e, internal = ?e.internal, "shortening layer chains failed"),
            }
        });
    }

    /// Drops every layer that can go now; returns how many went.
    pub async fn chains_collapse(&self) -> Result<usize> {
        self.chains_collapse_on(ChainWork::everything()).await
    }

    async fn chains_collapse_on(&self, mut work: ChainWork) -> Result<usize> {
        let mut dropped = 0;
        // Each step changes the graph; plan again after it.
        loop {
            let _disks = self.disk_lock.lock().await;
            let Some(step) = self.store.read(|tx| next_step(tx, &work))? else { return Ok(dropped) };
            let child = layer_id(&step.child)?;
            let below = step.below.as_deref().map(layer_id).transpose()?;
            let done = match &step.live {
                Some((instance, volume)) => self.agent.vm_disk_rebase(instance, volume, &child, below.as_ref()).await,
                None => self.storage.layer_rebase(&child, below.as_ref()).await,
            };
            if let Err(e) = done {
                // Left as it was (the rebase keeps what the chain reads either way); the next
                // pass tries again.
                return Err(Error::internal(format!("moving layer {} onto {:?} to drop {}: {e}", step.child, step.below, step.dropped)));
            }
            let doomed = self.store.transaction(|tx| {
                if let Some(mut c) = tx.doc_get::<LayerRecord>(&step.child)? {
                    c.backing = step.below.clone();
                    tx.doc_put(&c)?;
                }
                collect_layers(tx, [step.dropped.clone()])
            })?;
            work.layers.remove(&step.dropped);
            work.layers.extend(doomed.below.iter().cloned());
            dropped += doomed.layers.len();
            self.layers_delete(doomed).await;
        }
    }
}

/// Every layer under the volumes attached to this instance (for when its VM stops or goes: a
/// layer it had open with another VM may be droppable now).
pub(crate) fn chains_under(tx: &corral_store::Tx<'_>, instance_id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for v in tx.doc_list_by_parent::<VolumeRecord>(instance_id)? {
        let mut at = Some(v.layer);
        while let Some(l) = at {
            if out.contains(&l) {
                break;
            }
            at = tx.doc_get::<LayerRecord>(&l)?.and_then(|r| r.backing);
            out.push(l);
        }
    }
    Ok(out)
}

/// The next layer that can be dropped among those `work` names, and how.
fn next_step(tx: &corral_store::Tx<'_>, work: &ChainWork) -> Result<Option<Step>> {
    if work.all {
        return next_step_anywhere(tx);
    }
    let mut ids: Vec<&String> = work.layers.iter().collect();
    ids.sort();
    for id in ids {
        let Some(layer) = tx.doc_get::<LayerRecord>(id)? else { continue };
        if tx.layer_named(id)? {
            continue;
        }
        let kids = tx.layer_children(id, 2)?;
        let [child] = kids.as_slice() else { continue };
        let users = open_through(tx, child)?;
        let live = match users.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            _ => continue,
        };
        return Ok(Some(Step { dropped: id.clone(), child: child.clone(), below: layer.backing, live }));
    }
    Ok(None)
}

/// The running VMs that have this layer open, each with the volume through which: those
/// writing to it or to a layer above it.
fn open_through(tx: &corral_store::Tx<'_>, layer: &str) -> Result<Vec<(String, String)>> {
    let mut above = vec![layer.to_string()];
    let mut i = 0;
    while i < above.len() {
        let kids = tx.layer_children(&above[i], usize::MAX)?;
        above.extend(kids);
        i += 1;
    }
    let mut users = Vec::new();
    for v in tx.volumes_on_layers(&above)? {
        let Some(a) = &v.attachment else { continue };
        let has_vm =
            tx.instance_get(&a.instance_id)?.is_some_and(|i| !matches!(i.state, InstanceState::Stopped | InstanceState::Terminated));
        if has_vm {
            users.push((a.instance_id.clone(), v.volume_id.clone()));
        }
    }
    Ok(users)
}

/// The next layer that can be dropped anywhere in the pool, and how.
fn next_step_anywhere(tx: &corral_store::Tx<'_>) -> Result<Option<Step>> {
    let layers: HashMap<String, LayerRecord> = tx.doc_list::<LayerRecord>()?.into_iter().map(|l| (l.layer_id.clone(), l)).collect();
    let volumes = tx.doc_list::<VolumeRecord>()?;
    let mut named: HashSet<String> = volumes.iter().map(|v| v.layer.clone()).collect();
    for s in tx.doc_list::<SnapshotRecord>()? {
        named.extend(s.layer);
        // A snapshot being taken is about to build on its volume's current top.
        named.extend(s.pending_top);
    }
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for l in layers.values() {
        if let Some(b) = &l.backing {
            children.entry(b.as_str()).or_default().push(l.layer_id.as_str());
        }
    }
    // Which running VMs have each layer open (through which volume).
    let live_instances: HashSet<String> = tx.instance_ids_with_vms()?.into_iter().collect();
    let mut open: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for v in &volumes {
        let Some(a) = &v.attachment else { continue };
        if !live_instances.contains(&a.instance_id) {
            continue;
        }
        let mut at = Some(v.layer.clone());
        let mut seen = HashSet::new();
        while let Some(l) = at {
            if !seen.insert(l.clone()) {
                break;
            }
            open.entry(l.clone()).or_default().push((a.instance_id.clone(), v.volume_id.clone()));
            at = layers.get(&l).and_then(|r| r.backing.clone());
        }
    }
    let mut ids: Vec<&String> = layers.keys().collect();
    ids.sort();
    for id in ids {
        if named.contains(id.as_str()) {
            continue;
        }
        let Some(kids) = children.get(id.as_str()) else { continue };
        let [child] = kids.as_slice() else { continue };
        let users = open.get(*child).cloned().unwrap_or_default();
        let live = match users.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            _ => continue,
        };
        return Ok(Some(Step { dropped: id.clone(), child: child.to_string(), below: layers[id].backing.clone(), live }));
    }
    Ok(None)
}
