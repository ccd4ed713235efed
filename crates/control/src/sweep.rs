//! The pool sweep: what a crash leaves in the storage pool that no record names.
//!
//! Each host step on a layer sits between transactions, so a crash can leave a file without a
//! record: a layer whose record was deleted before its file (collection deletes files after
//! the commit), a layer made before its record (images built or imported), or the temporary
//! file of a `qemu-img` killed halfway. After the reconciler's first pass and then every grace
//! period (at most every 10 minutes, [`sweep_interval`]), the sweep removes layer files that
//! no record names and temporary files, once they are older than a grace period
//! (`ControlConfig::sweep_grace`), so a write in progress, whose record is about to be
//! committed, is never taken for a leftover; a temporary file whose writer still runs is
//! never removed. Each removal is logged.
//!
//! VM directories, taps and namespaces need no sweep of their own: the reconciler destroys
//! every VM that no instance names (`reconcile.rs`), and the agent removes namespaces and taps
//! that the desired host state does not hold.

use crate::layer::agent_error;
use crate::Control;
use corral_agent_api::LayerId;
use corral_store::LayerRecord;
use corral_types::Result;
use std::time::Duration;

/// How long a file without a record is left alone by default.
pub const SWEEP_GRACE: Duration = Duration::from_secs(600);
/// How often the reconciler sweeps after the sweep at start: every grace period, within these
/// bounds (so a leftover goes within about two grace periods of its making).
pub const SWEEP_INTERVAL_MIN: Duration = Duration::from_secs(1);
pub const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(600);

/// How often to sweep with grace period `grace`.
pub fn sweep_interval(grace: Duration) -> Duration {
    grace.clamp(SWEEP_INTERVAL_MIN, SWEEP_INTERVAL_MAX)
}

/// What a sweep removed, and the leftovers it could not remove (logged; tried again next time).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub layers: Vec<LayerId>,
    pub temp_files: Vec<String>,
    pub failed: Vec<LayerId>,
}

impl Control {
    /// Sweeps the pool with the configured grace period.
    pub async fn sweep(&self) -> Result<Swept> {
        self.sweep_older_than(self.config.sweep_grace).await
    }

    /// Removes layer files that no record names and temporary files, each last written more
    /// than `grace` ago. The files are listed before the records are read, so a record
    /// committed meanwhile keeps its file.
    pub async fn sweep_older_than(&self, grace: Duration) -> Result<Swept> {
        let files = self.storage.layer_files().await.map_err(|e| agent_error("listing the storage pool", e))?;
        let old: Vec<LayerId> = files.into_iter().filter(|f| f.age >= grace).map(|f| f.layer).collect();
        let mut unnamed: Vec<LayerId> = self.store.read(|tx| {
            let mut out = Vec::new();
            for l in old {
                // A pending snapshot's new top is named before it has a record.
                if tx.doc_get::<LayerRecord>(l.as_str())?.is_none() && !tx.layer_named(l.as_str())? {
                    out.push(l);
                }
            }
            Ok::<_, corral_types::Error>(out)
        })?;
        let mut swept = Swept::default();
        // Leftovers may build on each other: each round deletes those nothing builds on, until
        // a round deletes nothing.
        loop {
            let round = unnamed.len();
            let mut kept = Vec::new();
            for l in std::mem::take(&mut unnamed) {
                match self.storage.layer_delete(&l).await {
                    Ok(()) => {
                        tracing::info!(layer = %l, "swept a layer file that no record names");
                        swept.layers.push(l);
                    }
                    Err(e) => kept.push((l, e)),
                }
            }
            if kept.len() == round {
                for (l, e) in kept {
                    tracing::warn!(layer = %l, error = %e, "a layer file that no record names could not be swept");
                    swept.failed.push(l);
                }
                break;
            }
            unnamed = kept.into_iter().map(|(l, _)| l).collect();
        }
        swept.temp_files = self.storage.temp_sweep(grace).await.map_err(|e| agent_error("sweeping the storage pool", e))?;
        for name in &swept.temp_files {
            tracing::info!(file = %name, "swept a temporary file of an unfinished write");
        }
        Ok(swept)
    }
}
