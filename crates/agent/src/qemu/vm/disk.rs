//! A running VM's volumes, changed live over QMP: attach (hot-plug), detach (hot-unplug), live
//! snapshot and growth, and what they share with [`disk_rebase`](super::disk_rebase): the
//! `query-block` lookups, the running-state check and the `vm.json` bookkeeping. They run on
//! the VM's runner, so they are serialized with start and stop; each asks QEMU (`query-block`)
//! what the VM has rather than trusting memory, which also holds after a re-adoption:
//!
//! ```text
//!  attach    blockdev-add (qcow2 node named <volume id> over <pool>/<layer>.qcow2)
//!            device_add scsi-hd            ── fails: blockdev-del, nothing left
//!  detach    device_del, wait DEVICE_DELETED, blockdev-del <volume id>
//!            (frees the node and every snapshot overlay stacked on it since)
//!  snapshot  qemu-img create <new>.qcow2 -b <top>.qcow2, blockdev-snapshot-sync
//!            (mode existing, node named <new layer id>; <top> becomes read-only backing)
//!  resize    block_resize on the top node
//!  rebase    block-stream (job rebase-<layer>, auto-finalize off) into the node over
//!            <layer>.qcow2, base-node the new backing's node; at BLOCK_JOB_PENDING stop + cont
//!            (flushes every disk), job-finalize, wait BLOCK_JOB_COMPLETED; blockdev-del
//!            <volume id> if that node was among the layers dropped (the others go by themselves)
//! ```
//!
//! Each success is also written to `vm.json`'s disks, so the stored spec stays what the VM
//! has.

use std::path::Path;
use std::time::Duration;

use corral_agent_api::{AgentError, DiskBus, DiskSpec, LayerId, Storage, VmState};
use serde_json::{json, Value};
use tokio::time::{timeout, Instant};

use super::block::{device_is, parse_query_block, BlockDevice};
use super::error_chain;
use super::runner::Runner;
use crate::pool::Pool;
use crate::qemu::cmdline::{blockdev, is_volume_id, scsi_disk_device};
use crate::qemu::qmp::QmpEvent;

/// How long a detach waits for QEMU's `DEVICE_DELETED` after `device_del`. A `scsi-hd` goes
/// at once (virtio-scsi unplugs without asking the guest, measured ~50 ms under TCG); a
/// device whose bus needs the guest's consent (PCI) may take seconds.
const DETACH_TIMEOUT: Duration = Duration::from_secs(10);
/// A live snapshot drains and flushes the volume's pending writes first; with a lot of dirty
/// data on a slow disk that takes longer than an ordinary QMP command.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

impl Runner {
    pub(super) fn require_running(&self) -> Result<(), AgentError> {
        match self.state {
            Some(VmState::Running) => Ok(()),
            None => Err(AgentError::NoSuchVm(self.id.clone())),
            Some(state) => Err(AgentError::WrongState { id: self.id.clone(), state }),
        }
    }

    async fn block_devices(&mut self) -> Result<Vec<BlockDevice>, AgentError> {
        let v = self.qmp_call("query-block", None).await?;
        Ok(parse_query_block(&v))
    }

    /// The block device of volume `volume_id`, if the VM has it.
    pub(super) async fn block_device(&mut self, volume_id: &str) -> Result<Option<BlockDevice>, AgentError> {
        Ok(self.block_devices().await?.into_iter().find(|b| device_is(&b.qdev, volume_id)))
    }

    async fn node_exists(&mut self, node_name: &str) -> Result<bool, AgentError> {
        let v = self.qmp_call("query-named-block-nodes", Some(json!({ "flat": true }))).await?;
        Ok(v.as_array().is_some_and(|nodes| nodes.iter().any(|n| n.get("node-name").and_then(Value::as_str) == Some(node_name))))
    }

    pub(super) fn no_such_volume(&self, volume_id: &str) -> AgentError {
        AgentError::Other(format!("{} has no volume {volume_id} attached", self.id))
    }

    pub(super) async fn disk_attach(&mut self, disk: DiskSpec) -> Result<(), AgentError> {
        self.require_running()?;
        let vol = disk.volume_id.clone();
        if !is_volume_id(&vol) {
            return Err(AgentError::Other(format!("{vol:?} is not a volume id")));
        }
        let DiskBus::Scsi { target } = disk.bus else {
            return Err(AgentError::Other(format!("{vol}: a root disk cannot be hot-plugged into {}", self.id)));
        };
        if self.block_device(&vol).await?.is_some() {
            return Ok(()); // attached already
        }
        // A node without its device: an attempt that died between its two steps.
        if self.node_exists(&vol).await? {
            tracing::warn!(instance_id = %self.id, volume = %vol, "removing a block node left without its device");
            self.qmp_call("blockdev-del", Some(json!({ "node-name": vol }))).await?;
        }
        ensure_layer(&self.ctx.pool, &disk).await?;
        let t = Instant::now();
        let path = self.ctx.pool.path(&disk.layer);
        self.qmp_call("blockdev-add", Some(blockdev(&vol, &path))).await?;
        if let Err(e) = self.qmp_call("device_add", Some(scsi_disk_device(&vol, target))).await {
            if let Err(undo) = self.qmp_call("blockdev-del", Some(json!({ "node-name": vol }))).await {
                tracing::error!(instance_id = %self.id, volume = %vol, error = %error_chain(&undo), "could not remove the block node of a failed attach");
            }
            return Err(e);
        }
        tracing::info!(instance_id = %self.id, volume = %vol, layer = %disk.layer, target, took = ?t.elapsed(), "volume attached");
        self.update_stored_disks(|disks| {
            disks.retain(|d| d.volume_id != disk.volume_id);
            disks.push(disk);
        });
        Ok(())
    }

    pub(super) async fn disk_detach(&mut self, volume_id: &str, force: bool) -> Result<(), AgentError> {
        self.require_running()?;
        let stored_root = self.dir.read_spec().ok().flatten().and_then(|s| s.disks.into_iter().find(|d| d.bus == DiskBus::Root));
        if stored_root.is_some_and(|d| d.volume_id == volume_id) {
            return Err(AgentError::Other(format!(
                "{volume_id} is the root volume of {}: it cannot be detached while the VM runs",
                self.id
            )));
        }
        let t = Instant::now();
        if self.block_device(volume_id).await?.is_some() {
            match self.qmp_call("device_del", Some(json!({ "id": volume_id }))).await {
                Ok(_) => {}
                // Gone between our look and the command.
                Err(e) if e.to_string().contains("DeviceNotFound") => {}
                Err(e) => return Err(e),
            }
            self.wait_device_deleted(volume_id).await?;
            if self.block_device(volume_id).await?.is_some() {
                let what = if force { "even a forced detach needs QEMU to let go" } else { "the guest has not released it" };
                return Err(AgentError::Other(format!(
                    "{volume_id} is still attached to {} {DETACH_TIMEOUT:?} after device_del ({what}); the unplug stays requested",
                    self.id
                )));
            }
        }
        // The device held the snapshot overlays stacked on the volume's node (they went with
        // it); the node itself belongs to the monitor.
        if self.node_exists(volume_id).await? {
            self.qmp_call("blockdev-del", Some(json!({ "node-name": volume_id }))).await?;
        }
        tracing::info!(instance_id = %self.id, volume = volume_id, force, took = ?t.elapsed(), "volume detached");
        self.update_stored_disks(|disks| disks.retain(|d| d.volume_id != volume_id));
        Ok(())
    }

    /// Waits (bounded by [`DETACH_TIMEOUT`]) for QEMU's `DEVICE_DELETED` for `volume_id`.
    /// Times out quietly: the caller looks at what QEMU has.
    async fn wait_device_deleted(&mut self, volume_id: &str) -> Result<(), AgentError> {
        let Some(qmp) = self.proc.as_mut().and_then(|p| p.qmp.as_mut()) else {
            return Err(AgentError::Other(format!("no QMP connection to {}'s QEMU", self.id)));
        };
        let wanted = |e: &QmpEvent| e.event == "DEVICE_DELETED" && e.data.get("device").and_then(Value::as_str) == Some(volume_id);
        match timeout(DETACH_TIMEOUT, qmp.wait_event(wanted)).await {
            Ok(Ok(_)) | Err(_) => Ok(()),
            Ok(Err(e)) => {
                let msg = format!("{}: waiting for DEVICE_DELETED of {volume_id}: {}", self.id, error_chain(&e));
                self.drop_qmp_if_broken(&e);
                Err(AgentError::Other(msg))
            }
        }
    }

    pub(super) async fn disk_snapshot(&mut self, volume_id: &str, new_top: &LayerId) -> Result<(), AgentError> {
        self.require_running()?;
        let dev = self.block_device(volume_id).await?.ok_or_else(|| self.no_such_volume(volume_id))?;
        if dev.node == new_top.as_str() {
            return Ok(()); // this very snapshot was taken already
        }
        let pool = self.ctx.pool.clone();
        let old_top = pool.layer_of(Path::new(&dev.file)).ok_or_else(|| {
            AgentError::Other(format!(
                "{volume_id} on {} writes to {}, which is not a layer of pool {}",
                self.id,
                dev.file,
                pool.dir().display()
            ))
        })?;
        let path = pool.path(new_top);
        if path.exists() {
            return Err(AgentError::Other(format!("layer {new_top} exists already; a snapshot needs a new one")));
        }
        let t = Instant::now();
        pool.layer_create(new_top, Some(&old_top), dev.virtual_size).await?;
        let args = json!({
            "node-name": dev.node,
            "snapshot-file": path.to_string_lossy(),
            "snapshot-node-name": new_top.as_str(),
            "format": "qcow2",
            "mode": "existing",
        });
        if let Err(e) = self.qmp_call_within(SNAPSHOT_TIMEOUT, "blockdev-snapshot-sync", Some(args)).await {
            // Only a layer QEMU certainly did not take may go: after a timeout the command may
            // still complete (QEMU answers in order, so asking now tells).
            match self.block_device(volume_id).await {
                Ok(Some(d)) if d.node == new_top.as_str() => {
                    tracing::warn!(instance_id = %self.id, volume = volume_id, error = %e, "snapshot reported an error but took effect");
                }
                Ok(_) => {
                    crate::qemu::files::remove_file_if_exists(&path);
                    return Err(e);
                }
                Err(e2) => {
                    tracing::error!(instance_id = %self.id, volume = volume_id, error = %e2, layer = %new_top, "snapshot outcome unknown; its layer is kept");
                    return Err(e);
                }
            }
        }
        tracing::info!(instance_id = %self.id, volume = volume_id, %old_top, %new_top, took = ?t.elapsed(), "live snapshot taken");
        self.update_stored_disks(|disks| {
            if let Some(d) = disks.iter_mut().find(|d| d.volume_id == volume_id) {
                d.backing = Some(old_top.clone());
                d.layer = new_top.clone();
            }
        });
        Ok(())
    }

    pub(super) async fn disk_resize(&mut self, volume_id: &str, size_bytes: u64) -> Result<(), AgentError> {
        self.require_running()?;
        let dev = self.block_device(volume_id).await?.ok_or_else(|| self.no_such_volume(volume_id))?;
        if size_bytes > dev.virtual_size {
            self.qmp_call("block_resize", Some(json!({ "node-name": dev.node, "size": size_bytes }))).await?;
            tracing::info!(instance_id = %self.id, volume = volume_id, from = dev.virtual_size, to = size_bytes, "volume grown");
        }
        self.update_stored_disks(|disks| {
            if let Some(d) = disks.iter_mut().find(|d| d.volume_id == volume_id) {
                d.size_bytes = d.size_bytes.max(size_bytes);
            }
        });
        Ok(())
    }

    /// Applies a change that succeeded in QEMU to `vm.json`'s disks. QEMU is the truth here:
    /// a record that cannot be updated is logged, not an error.
    pub(super) fn update_stored_disks(&self, change: impl FnOnce(&mut Vec<DiskSpec>)) {
        let result = self.dir.read_spec().and_then(|spec| match spec {
            Some(mut spec) => {
                change(&mut spec.disks);
                self.dir.write_spec(&spec)
            }
            None => Ok(()),
        });
        if let Err(e) = result {
            tracing::warn!(instance_id = %self.id, error = %e, "could not record the VM's disks in vm.json");
        }
    }
}

/// Creates a disk's top layer when missing (an overlay on its backing, or an empty disk) and
/// grows one smaller than the disk's size.
pub(super) async fn ensure_layer(pool: &Pool, disk: &DiskSpec) -> Result<(), AgentError> {
    match pool.layer_size(&disk.layer).await? {
        None => pool.layer_create(&disk.layer, disk.backing.as_ref(), disk.size_bytes).await,
        Some(size) if size < disk.size_bytes => pool.layer_resize(&disk.layer, disk.size_bytes).await,
        Some(_) => Ok(()),
    }
}
