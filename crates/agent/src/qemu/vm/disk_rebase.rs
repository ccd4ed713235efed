//! Live rebase: the running-VM side of [`corral_agent_api::Storage::layer_rebase`]. A layer in
//! an attached volume's chain gets a backing further down, QEMU copying into it what the layers
//! skipped hold, while the guest runs; [`Runner::finish_job`] sees the `block-stream` job to
//! its end (flush every disk, finalize; or cancel past [`REBASE_TIMEOUT`]). The block nodes
//! involved are found by file in `query-named-block-nodes`, since intermediate layers opened
//! from headers have QEMU-chosen names.

use std::path::Path;
use std::time::Duration;

use corral_agent_api::{AgentError, LayerId};
use serde_json::{json, Value};
use tokio::time::{timeout, Instant};

use super::block::{job_outcome, parse_named_nodes, BlockNode};
use super::error_chain;
use super::runner::Runner;
use crate::qemu::qmp::QmpEvent;

/// A live rebase's `block-stream` job copies what the dropped layers hold into the layer; the
/// copy is QEMU's own I/O, not emulated (measured here under TCG: 1 GiB in 2 s), but a loaded
/// host with many GBs to copy takes minutes. Past this the job is cancelled, which is
/// harmless: the layer keeps its backing and the copied clusters read what it read before.
const REBASE_TIMEOUT: Duration = Duration::from_secs(600);
/// After cancelling a job, how long to wait for it to end.
const JOB_CANCEL_WAIT: Duration = Duration::from_secs(30);

impl Runner {
    /// The live side of [`corral_agent_api::Storage::layer_rebase`]: `layer` (in the chain of
    /// `volume_id`) gets `backing` as its backing, QEMU copying into it what the layers in
    /// between hold, while the guest runs. QEMU's `block-stream` does both: it copies (through
    /// a copy-on-read filter, only ranges the layers above the base hold) and, once finalized,
    /// rewrites the layer's qcow2 header to name the new backing (by the absolute pool path we
    /// give it as `backing-file`) and drops the skipped nodes from the graph. Until that
    /// switch the layer reads the same on its old backing (the copied ranges hold what those
    /// backing layers read), so a crash, a cancelled job or a timeout before it is harmless;
    /// the switch itself waits until what was copied is on disk ([`Runner::finish_job`]).
    ///
    /// Nodes are found by file, since intermediate layers opened from headers have
    /// QEMU-chosen names. The node named after the volume belongs to the monitor and stays
    /// when dropped from the chain, so it is deleted here; afterwards no node may have a
    /// dropped layer's file open, so the caller can delete those files while the VM runs.
    pub(super) async fn disk_rebase(&mut self, volume_id: &str, layer: &LayerId, backing: Option<&LayerId>) -> Result<(), AgentError> {
        self.require_running()?;
        let t = Instant::now();
        let job_id = format!("rebase-{layer}");
        // A job of an earlier attempt (this agent's, or one before a restart) may still run.
        if self.job_status(&job_id).await?.is_some() {
            tracing::info!(instance_id = %self.id, volume = volume_id, %layer, "finishing an earlier rebase job");
            if let Err(e) = self.finish_job(&job_id, REBASE_TIMEOUT).await {
                tracing::warn!(instance_id = %self.id, volume = volume_id, error = %error_chain(&e), "earlier rebase job failed");
            }
        }
        let chain = self.volume_chain(volume_id).await?;
        let pos = chain.iter().position(|l| l == layer).ok_or_else(|| {
            AgentError::Other(format!("layer {layer} is not in the chain of {volume_id} on {} ({})", self.id, show_chain(&chain)))
        })?;
        let below = &chain[pos + 1..];
        let skipped: Vec<LayerId> = match backing {
            None => below.to_vec(),
            Some(b) => match below.iter().position(|l| l == b) {
                Some(i) => below[..i].to_vec(),
                None => {
                    return Err(AgentError::Other(format!(
                        "layer {b} is not below layer {layer} in the chain of {volume_id} on {} ({})",
                        self.id,
                        show_chain(&chain)
                    )))
                }
            },
        };
        let pool = self.ctx.pool.clone();
        let path_of = |l: &LayerId| pool.path(l).to_string_lossy().into_owned();
        let format_nodes_of = |nodes: &[BlockNode], l: &LayerId| nodes.iter().filter(|n| n.is_format_node_of(&path_of(l))).count();
        // How many times QEMU has each dropped layer open: once in this chain, maybe more in
        // other disks' chains (a snapshot layer two volumes are made from).
        let mut open_before = Vec::new();
        if !skipped.is_empty() {
            let nodes = self.named_nodes().await?;
            open_before = skipped.iter().map(|l| format_nodes_of(&nodes, l)).collect();
            let target = self.node_of(&nodes, layer, volume_id)?;
            let mut args = json!({ "job-id": job_id, "device": target, "on-error": "report", "auto-finalize": false });
            if let Some(b) = backing {
                let path = path_of(b);
                let base_nodes: Vec<&BlockNode> = nodes.iter().filter(|n| n.is_format_node_of(&path)).collect();
                match base_nodes.as_slice() {
                    [n] => args["base-node"] = json!(n.name),
                    // Open more than once (another disk's chain shares it): QEMU finds the
                    // one in this chain by its file name.
                    _ => args["base"] = json!(path),
                }
                args["backing-file"] = json!(path);
            }
            tracing::info!(instance_id = %self.id, volume = volume_id, %layer, ?backing, ?skipped, %args, "live rebase starting");
            self.qmp_call("block-stream", Some(args)).await?;
            self.finish_job(&job_id, REBASE_TIMEOUT).await?;
        }
        // QEMU writes the new header but leaves it in the page cache: make the switch (this
        // one or an earlier attempt's) durable before the caller deletes the layers skipped.
        let path = pool.path(layer);
        if let Err(e) = std::fs::File::open(&path).and_then(|f| f.sync_all()) {
            tracing::warn!(instance_id = %self.id, path = %path.display(), error = %e, "could not fsync a rebased layer");
        }
        // The volume's own node, if dropped from the chain (now or by an earlier attempt that
        // failed after its job), is the monitor's: delete it, which closes its file and lets
        // go of the layers below it that the chain no longer shares.
        let chain_now = self.volume_chain(volume_id).await?;
        let nodes = self.named_nodes().await?;
        if let Some(own) = nodes.iter().find(|n| n.name == volume_id) {
            if !pool.layer_of(Path::new(&own.file)).is_some_and(|l| chain_now.contains(&l)) {
                self.qmp_call("blockdev-del", Some(json!({ "node-name": volume_id }))).await?;
            }
        }
        let now = pool.backing_of(layer)?;
        if now.as_ref() != backing {
            return Err(AgentError::Other(format!(
                "rebase of layer {layer} on {}: the job ended but the layer's backing is {now:?}",
                self.id
            )));
        }
        // This chain's node of every dropped layer is gone (other disks' stay).
        let nodes = self.named_nodes().await?;
        for (l, before) in skipped.iter().zip(open_before) {
            let now = format_nodes_of(&nodes, l);
            if now >= before {
                let names: Vec<&str> = nodes.iter().filter(|n| n.file == path_of(l)).map(|n| n.name.as_str()).collect();
                return Err(AgentError::Other(format!(
                    "layer {layer} of {volume_id} on {} is rebased, but QEMU still has dropped layer {l} open as often as before ({now}: {names:?})",
                    self.id
                )));
            }
        }
        tracing::info!(instance_id = %self.id, volume = volume_id, %layer, ?backing, dropped = skipped.len(), took = ?t.elapsed(), "live rebase done");
        self.update_stored_disks(|disks| {
            if let Some(d) = disks.iter_mut().find(|d| d.volume_id == volume_id && d.layer == *layer) {
                d.backing = backing.cloned();
            }
        });
        Ok(())
    }

    /// The layers of an attached volume's chain, top first, from the qcow2 headers (which
    /// QEMU keeps current, a finished stream job's switch included).
    async fn volume_chain(&mut self, volume_id: &str) -> Result<Vec<LayerId>, AgentError> {
        let dev = self.block_device(volume_id).await?.ok_or_else(|| self.no_such_volume(volume_id))?;
        let pool = &self.ctx.pool;
        let top = pool.layer_of(Path::new(&dev.file)).ok_or_else(|| {
            AgentError::Other(format!(
                "{volume_id} on {} writes to {}, which is not a layer of pool {}",
                self.id,
                dev.file,
                pool.dir().display()
            ))
        })?;
        let mut chain = vec![top.clone()];
        chain.extend(pool.chain_below(&top)?);
        Ok(chain)
    }

    async fn named_nodes(&mut self) -> Result<Vec<BlockNode>, AgentError> {
        let v = self.qmp_call("query-named-block-nodes", Some(json!({ "flat": true }))).await?;
        Ok(parse_named_nodes(&v))
    }

    /// The name of the one format node over `layer`'s file.
    fn node_of(&self, nodes: &[BlockNode], layer: &LayerId, volume_id: &str) -> Result<String, AgentError> {
        let path = self.ctx.pool.path(layer).to_string_lossy().into_owned();
        let found: Vec<&BlockNode> = nodes.iter().filter(|n| n.is_format_node_of(&path)).collect();
        match found.as_slice() {
            [n] => Ok(n.name.clone()),
            [] => Err(AgentError::Other(format!("{} has no block node over layer {layer} of {volume_id}", self.id))),
            more => Err(AgentError::Other(format!(
                "layer {layer} is open {} times in {} (other disks share it), so it cannot be rebased live",
                more.len(),
                self.id
            ))),
        }
    }

    /// The state of job `job_id` (`running`, `pending`, ...), `None` when QEMU has none.
    async fn job_status(&mut self, job_id: &str) -> Result<Option<String>, AgentError> {
        let v = self.qmp_call("query-jobs", None).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .find(|j| j.get("id").and_then(Value::as_str) == Some(job_id))
            .map(|j| j.get("status").and_then(Value::as_str).unwrap_or("").to_string()))
    }

    /// Sees a rebase's `block-stream` job (started with `auto-finalize: false`) to its end:
    /// when it has copied everything and waits (`BLOCK_JOB_PENDING`), every disk is flushed,
    /// then `job-finalize` lets it switch the layer's backing (`BLOCK_JOB_COMPLETED`). `Ok`
    /// only for a completion without error. Past `limit` the job is cancelled.
    ///
    /// The flush is what makes the switch crash-safe. QEMU keeps the L2 table entries of the
    /// clusters the job copied in its metadata cache, and its header rewrite does not flush
    /// them first: measured (strace, QEMU 10.0.2), a job auto-finalized into the volume's top
    /// writes the new header while the copied clusters' L2 entries stay unwritten until the
    /// guest next flushes, so a QEMU killed meanwhile leaves a layer on its new backing that
    /// has lost what it copied. QMP has no per-node flush; `stop` drains and flushes every
    /// disk (even on a paused VM), so the guest pauses for that long (~10 ms measured) and
    /// `cont` resumes it.
    async fn finish_job(&mut self, job_id: &str, limit: Duration) -> Result<(), AgentError> {
        let deadline = Instant::now() + limit;
        let mut finalized = false;
        if self.job_status(job_id).await?.as_deref() == Some("pending") {
            self.flush_and_finalize(job_id).await?;
            finalized = true;
        }
        let mut last_error: Option<Value> = None;
        loop {
            let Some(qmp) = self.proc.as_mut().and_then(|p| p.qmp.as_mut()) else {
                return Err(AgentError::Other(format!("no QMP connection to {}'s QEMU", self.id)));
            };
            let ours = |e: &QmpEvent| {
                matches!(e.event.as_str(), "BLOCK_JOB_PENDING" | "BLOCK_JOB_COMPLETED" | "BLOCK_JOB_CANCELLED" | "BLOCK_JOB_ERROR")
                    && [e.data.get("id"), e.data.get("device")].into_iter().flatten().any(|v| v.as_str() == Some(job_id))
            };
            match tokio::time::timeout_at(deadline, qmp.wait_event(ours)).await {
                Ok(Ok(ev)) if ev.event == "BLOCK_JOB_PENDING" => {
                    if !finalized {
                        self.flush_and_finalize(job_id).await?;
                        finalized = true;
                    }
                }
                Ok(Ok(ev)) if ev.event == "BLOCK_JOB_ERROR" => {
                    // With on-error=report the job ends next, with the error.
                    tracing::warn!(instance_id = %self.id, job = job_id, data = %ev.data, "block job I/O error");
                    last_error = Some(ev.data);
                }
                Ok(Ok(ev)) => return job_outcome(&self.id, job_id, &ev, last_error.as_ref()),
                Ok(Err(e)) => {
                    let msg = format!("{}: waiting for block job {job_id}: {}", self.id, error_chain(&e));
                    self.drop_qmp_if_broken(&e);
                    return Err(AgentError::Other(msg));
                }
                Err(_) => break,
            }
        }
        tracing::warn!(instance_id = %self.id, job = job_id, ?limit, "block job ran out of time; cancelling it");
        if let Err(e) = self.qmp_call("block-job-cancel", Some(json!({ "device": job_id }))).await {
            tracing::warn!(instance_id = %self.id, job = job_id, error = %error_chain(&e), "block-job-cancel failed");
        }
        let Some(qmp) = self.proc.as_mut().and_then(|p| p.qmp.as_mut()) else {
            return Err(AgentError::Other(format!("no QMP connection to {}'s QEMU", self.id)));
        };
        let ends = |e: &QmpEvent| {
            matches!(e.event.as_str(), "BLOCK_JOB_COMPLETED" | "BLOCK_JOB_CANCELLED")
                && e.data.get("device").and_then(Value::as_str) == Some(job_id)
        };
        match timeout(JOB_CANCEL_WAIT, qmp.wait_event(ends)).await {
            // It finished just as it was cancelled.
            Ok(Ok(ev)) if ev.event == "BLOCK_JOB_COMPLETED" && ev.data.get("error").is_none() => Ok(()),
            _ => Err(AgentError::Other(format!("block job {job_id} on {} did not finish within {limit:?}; cancelled", self.id))),
        }
    }

    /// Flushes every disk of the VM to its files (QMP `stop`, then `cont` if it was running),
    /// then lets job `job_id` finalize.
    async fn flush_and_finalize(&mut self, job_id: &str) -> Result<(), AgentError> {
        let was = self.qmp_call("query-status", None).await?.get("status").and_then(Value::as_str).unwrap_or("").to_string();
        let t = Instant::now();
        self.qmp_call("stop", None).await?;
        if was == "running" {
            let mut resumed = self.qmp_call("cont", None).await;
            if resumed.is_err() {
                resumed = self.qmp_call("cont", None).await;
            }
            if let Err(e) = resumed {
                tracing::error!(instance_id = %self.id, error = %error_chain(&e), "could not resume the guest after flushing its disks");
                return Err(e);
            }
        }
        tracing::debug!(instance_id = %self.id, job = job_id, paused = ?t.elapsed(), "disks flushed");
        self.qmp_call("job-finalize", Some(json!({ "id": job_id }))).await?;
        Ok(())
    }
}

/// A chain for messages, from the top down.
fn show_chain(chain: &[LayerId]) -> String {
    format!("its chain, top first: {}", chain.iter().map(LayerId::as_str).collect::<Vec<_>>().join(", "))
}
