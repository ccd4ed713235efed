//! The simulated storage pool: layers are entries in memory, so the simulated hypervisor
//! serves the storage API at scale without disk files. Each layer's count of the layers it
//! backs is kept beside it, so deleting one does not walk the pool.

use super::{SimAgent, SimOp, State};
use corral_agent_api::{AgentError, DiskSpec, LayerFile, LayerId, PoolUsage, Storage};
use std::path::Path;
use std::time::{Duration, Instant};

/// One layer of the simulated pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimLayer {
    pub backing: Option<LayerId>,
    pub size_bytes: u64,
}

/// Adds or replaces a layer, keeping the count of what each layer backs.
pub(super) fn layer_put(st: &mut State, id: LayerId, layer: SimLayer) {
    if let Some(b) = &layer.backing {
        *st.children.entry(b.clone()).or_default() += 1;
    }
    st.born.entry(id.clone()).or_insert_with(Instant::now);
    if let Some(old) = st.layers.insert(id, layer) {
        unback(st, old.backing.as_ref());
    }
}

pub(super) fn layer_remove(st: &mut State, id: &LayerId) {
    if let Some(old) = st.layers.remove(id) {
        unback(st, old.backing.as_ref());
    }
    st.born.remove(id);
}

fn unback(st: &mut State, backing: Option<&LayerId>) {
    if let Some(n) = backing.and_then(|b| st.children.get_mut(b)) {
        *n = n.saturating_sub(1);
    }
}

/// Moves `id` onto `backing`, which must be further down its chain (as a rebase that keeps
/// what the chain reads must).
pub(super) fn rebase(st: &mut State, id: &LayerId, backing: Option<&LayerId>) -> Result<(), AgentError> {
    let mut below = st.layers.get(id).ok_or_else(|| AgentError::Other(format!("layer {id} does not exist")))?.backing.clone();
    if let Some(b) = backing {
        loop {
            match below {
                Some(ref l) if l == b => break,
                Some(ref l) => below = st.layers.get(l).and_then(|x| x.backing.clone()),
                None => return Err(AgentError::Other(format!("layer {b} is not below {id}"))),
            }
        }
    }
    if let Some(mut l) = st.layers.get(id).cloned() {
        l.backing = backing.cloned();
        layer_put(st, id.clone(), l);
    }
    Ok(())
}

/// Creates the top layers a VM's disks need, as the real agent does at start and attach.
pub(super) fn ensure_layers(st: &mut State, disks: &[DiskSpec]) -> Result<(), AgentError> {
    for d in disks {
        if st.layers.contains_key(&d.layer) {
            continue;
        }
        if let Some(b) = &d.backing {
            // A simulated pool starts empty at every start of the process while the store
            // keeps its layers; the simulated hypervisor never reads disks, so a missing
            // backing layer stands for one that exists.
            if !st.layers.contains_key(b) {
                layer_put(st, b.clone(), SimLayer { backing: None, size_bytes: d.size_bytes });
            }
        }
        layer_put(st, d.layer.clone(), SimLayer { backing: d.backing.clone(), size_bytes: d.size_bytes });
    }
    Ok(())
}

/// The simulated pool: layers are entries in memory, so the simulated hypervisor serves the
/// storage API at scale without disk files.
#[async_trait::async_trait]
impl Storage for SimAgent {
    async fn layer_create(&self, id: &LayerId, backing: Option<&LayerId>, size_bytes: u64) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::LayerCreate)?;
        if st.layers.contains_key(id) {
            return Ok(());
        }
        if let Some(b) = backing {
            let base = st.layers.get(b).ok_or_else(|| AgentError::Other(format!("layer {b} does not exist")))?;
            if base.size_bytes > size_bytes {
                return Err(AgentError::Other(format!("layer {id} would be smaller than its backing {b}")));
            }
        }
        layer_put(&mut st, id.clone(), SimLayer { backing: backing.cloned(), size_bytes });
        Ok(())
    }

    async fn layer_import(&self, id: &LayerId, source: &Path) -> Result<u64, AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::LayerImport)?;
        // The simulated hypervisor never reads disks; a file's length stands for its size.
        let size = std::fs::metadata(source).map(|m| m.len()).unwrap_or(8 << 30).max(1 << 30);
        if !st.layers.contains_key(id) {
            layer_put(&mut st, id.clone(), SimLayer { backing: None, size_bytes: size });
        }
        Ok(st.layers[id].size_bytes)
    }

    async fn layer_flatten(&self, id: &LayerId, source: &LayerId) -> Result<(), AgentError> {
        let mut st = self.lock();
        let size =
            st.layers.get(source).map(|l| l.size_bytes).ok_or_else(|| AgentError::Other(format!("layer {source} does not exist")))?;
        if !st.layers.contains_key(id) {
            layer_put(&mut st, id.clone(), SimLayer { backing: None, size_bytes: size });
        }
        Ok(())
    }

    async fn layer_rebase(&self, id: &LayerId, backing: Option<&LayerId>) -> Result<(), AgentError> {
        let mut st = self.lock();
        rebase(&mut st, id, backing)
    }

    async fn layer_resize(&self, id: &LayerId, size_bytes: u64) -> Result<(), AgentError> {
        let mut st = self.lock();
        let l = st.layers.get_mut(id).ok_or_else(|| AgentError::Other(format!("layer {id} does not exist")))?;
        l.size_bytes = l.size_bytes.max(size_bytes);
        Ok(())
    }

    async fn layer_delete(&self, id: &LayerId) -> Result<(), AgentError> {
        let mut st = self.lock();
        if st.children.get(id).is_some_and(|n| *n > 0) {
            return Err(AgentError::Other(format!("layer {id} still backs another layer")));
        }
        layer_remove(&mut st, id);
        Ok(())
    }

    async fn layer_size(&self, id: &LayerId) -> Result<Option<u64>, AgentError> {
        Ok(self.lock().layers.get(id).map(|l| l.size_bytes))
    }

    async fn usage(&self) -> Result<PoolUsage, AgentError> {
        let st = self.lock();
        Ok(PoolUsage { path: String::new(), layers: st.layers.len() as u64, used_bytes: 0, free_bytes: u64::MAX })
    }

    async fn layer_files(&self) -> Result<Vec<LayerFile>, AgentError> {
        let st = self.lock();
        let mut files: Vec<LayerFile> = st
            .layers
            .keys()
            .map(|l| LayerFile { layer: l.clone(), age: st.born.get(l).map(Instant::elapsed).unwrap_or_default() })
            .collect();
        files.sort_by(|a, b| a.layer.cmp(&b.layer));
        Ok(files)
    }

    /// A simulated write never leaves a temporary file.
    async fn temp_sweep(&self, _older_than: Duration) -> Result<Vec<String>, AgentError> {
        Ok(Vec::new())
    }
}

impl SimAgent {
    /// Makes every layer of the pool `by` older (tests of the sweep's grace period).
    pub fn age_layers(&self, by: Duration) {
        for born in self.lock().born.values_mut() {
            *born = born.checked_sub(by).unwrap_or(*born);
        }
    }
}
