//! The layers of the storage pool as the control plane keeps them: qcow2 files, each
//! optionally an overlay on another, that volumes write to and snapshots freeze (the graph is in
//! the store, the files are the agent's). This module owns what volumes, snapshots, images and
//! chain shortening all do with layers: creating the missing ones under a new overlay (a root
//! volume's top layer only exists once its instance has started), collecting the records
//! nothing refers to any more and deleting their files, and turning a failed host step into
//! the error a client sees.

use crate::Control;
use corral_agent_api::{AgentError, LayerId};
use corral_store::{LayerRecord, Tx, VolumeRecord};
use corral_types::{Error, ErrorCode, Result};

/// A layer id the store holds, parsed.
pub(crate) fn layer_id(s: &str) -> Result<LayerId> {
    LayerId::parse(s).ok_or_else(|| Error::internal(format!("store holds a malformed layer id {s:?}")))
}

/// Bytes to whole GiB, rounding up.
pub(crate) fn gib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 30).max(1)
}

/// A failed step on the host as the client sees it: a full storage pool is
/// InsufficientVolumeCapacity, anything else an internal error whose detail stays in the log.
pub(crate) fn agent_error(context: &str, e: AgentError) -> Error {
    let text = format!("{e}: {:?}", std::error::Error::source(&e));
    if text.contains("No space left") || text.contains("ENOSPC") {
        return Error::new(ErrorCode::InsufficientVolumeCapacity, "There is not enough free storage on the host for this request.")
            .with_internal(format!("{context}: {text}"));
    }
    Error::internal(format!("{context}: {text}"))
}

/// What collecting layers removed: the layers whose files go once the transaction commits
/// (overlays before their backing), and the layers left below them, which may now be
/// droppable from the middle of a chain (see `chain.rs`).
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub layers: Vec<LayerId>,
    pub below: Vec<String>,
}

/// Removes the records of the layers among `released` (layers that just lost a volume, a
/// snapshot or an overlay) that nothing refers to any more (no volume writes to it, no
/// snapshot names it, no layer builds on it), then of the layers below that this leaves
/// unused in turn. Looks at those layers only, whatever the pool holds.
pub(crate) fn collect_layers(tx: &Tx<'_>, released: impl IntoIterator<Item = String>) -> Result<Collected> {
    let mut todo: Vec<String> = released.into_iter().collect();
    let mut out = Collected::default();
    let mut gone = std::collections::HashSet::new();
    while let Some(id) = todo.pop() {
        if gone.contains(&id) || !tx.layer_unused(&id)? {
            continue;
        }
        let Some(rec) = tx.doc_get::<LayerRecord>(&id)? else { continue };
        tx.doc_delete::<LayerRecord>(&id)?;
        out.layers.push(layer_id(&id)?);
        gone.insert(id);
        todo.extend(rec.backing.clone());
        out.below.extend(rec.backing);
    }
    out.below.retain(|b| !gone.contains(b));
    out.below.dedup();
    Ok(out)
}

/// [`collect_layers`] over every layer the pool holds (at start, for what a crash left).
pub(crate) fn collect_all_layers(tx: &Tx<'_>) -> Result<Collected> {
    collect_layers(tx, tx.layers_unused()?)
}

impl Control {
    /// Deletes layer files after the records are gone. A failure leaves a file nobody refers
    /// to; it is logged, and the pool's use shows it.
    pub(crate) async fn layers_delete(&self, collected: Collected) {
        if !collected.below.is_empty() {
            self.chains_dirty_at(collected.below);
        }
        for l in collected.layers {
            if let Err(e) = self.storage.layer_delete(&l).await {
                tracing::warn!(layer = %l, error = %e, "deleting a layer file failed");
            }
        }
    }

    /// Makes sure a layer that is about to be built on exists as a file: a root volume's top
    /// layer, for one, is only created when its instance first starts.
    pub(crate) async fn layer_ensure_backing(&self, layer: Option<&LayerId>) -> Result<()> {
        let Some(layer) = layer else { return Ok(()) };
        if self.storage.layer_size(layer).await.map_err(|e| agent_error("reading a layer", e))?.is_some() {
            return Ok(());
        }
        // Walk down to the first layer that exists, then create upwards.
        let mut chain = vec![layer.clone()];
        loop {
            let rec = self
                .store
                .read(|tx| tx.doc_get::<LayerRecord>(chain.last().map(|l| l.as_str()).unwrap_or_default()))?
                .ok_or_else(|| Error::internal(format!("layer {} has no record", chain.last().map(|l| l.as_str()).unwrap_or_default())))?;
            match rec.backing.as_deref().map(layer_id).transpose()? {
                Some(b) if self.storage.layer_size(&b).await.map_err(|e| agent_error("reading a layer", e))?.is_none() => chain.push(b),
                _ => break,
            }
        }
        while let Some(l) = chain.pop() {
            let rec = self
                .store
                .read(|tx| tx.doc_get::<LayerRecord>(l.as_str()))?
                .ok_or_else(|| Error::internal(format!("layer {l} vanished")))?;
            let backing = rec.backing.as_deref().map(layer_id).transpose()?;
            let size = match &backing {
                Some(b) => self.storage.layer_size(b).await.map_err(|e| agent_error("reading a layer", e))?.unwrap_or(1 << 30),
                None => 1 << 30,
            };
            // The volume that writes to it (if any) says how big it is.
            let size = self
                .store
                .read(|tx| {
                    Ok::<_, Error>(tx.doc_list::<VolumeRecord>()?.into_iter().find(|v| v.layer == l.as_str()).map(|v| v.size_bytes()))
                })?
                .unwrap_or(size)
                .max(size);
            self.storage.layer_create(&l, backing.as_ref(), size).await.map_err(|e| agent_error("creating a layer", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_gib() {
        assert_eq!(gib_ceil(1), 1);
        assert_eq!(gib_ceil(1 << 30), 1);
        assert_eq!(gib_ceil((1 << 30) + 1), 2);
    }
}
