//! Block storage: the pool of qcow2 layers that volumes, snapshots and images are made of.
//!
//! A **layer** is one qcow2 file in the host's storage pool, named by a [`LayerId`] the control
//! plane chooses. A layer may have a backing layer (its parent); a chain of layers is a disk.
//! Layers are copy-on-write and, once something else builds on them, immutable:
//!
//! - a **volume** is its top layer, the only one written;
//! - a **snapshot** freezes a volume's top layer and gives the volume a new, empty top layer
//!   on it (live, through QMP, when a VM is writing to the volume), so snapshotting copies
//!   nothing;
//! - a volume made from a snapshot is a new top layer on the snapshot's layer;
//! - an **image** names snapshots, so launching copies nothing either.
//!
//! The control plane keeps the graph (which layer backs which, who refers to each) and asks
//! for a layer's deletion when nothing refers to it any more; the agent only does what it is
//! told to files it is told about. [`Storage`] is the file side of that, used both by a host
//! agent and by commands that work on the pool without one (`corral images build|import`).

use std::path::Path;
use std::time::Duration;

use crate::AgentError;

/// A layer's name: `l` and 17 lowercase hex digits. Safe in a path and as a QEMU node name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerId(String);

impl LayerId {
    pub fn parse(s: &str) -> Option<LayerId> {
        let body = s.strip_prefix('l')?;
        (body.len() == 17 && body.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then(|| LayerId(s.to_string()))
    }
    /// A fresh random layer id.
    pub fn random() -> LayerId {
        let n: u128 = rand::random();
        LayerId(format!("l{:017x}", n & ((1u128 << 68) - 1)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LayerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a disk is presented to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskBus {
    /// The boot disk: virtio-blk (`/dev/vda` in the guest).
    Root,
    /// A data volume on the VM's virtio-scsi controller at SCSI target `target` (0..=255), so
    /// it can be hot-plugged on every machine type. The guest sees `/dev/sdX`; its SCSI serial
    /// is the volume id without the dash (`vol0123...`), as an EC2 Nitro guest sees its NVMe
    /// serial, so `/dev/disk/by-id/` names it.
    Scsi { target: u8 },
}

/// One volume as a VM sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub volume_id: String,
    /// The volume's current top layer: the file QEMU opens read-write.
    pub layer: LayerId,
    /// What `layer` is created on if it does not exist yet (`None`: an empty disk).
    pub backing: Option<LayerId>,
    /// The volume's size; a layer created here gets this virtual size, and a layer found
    /// smaller than this is grown to it before the VM opens it.
    pub size_bytes: u64,
    pub bus: DiskBus,
}

/// What the pool holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Where the pool lives (empty for a simulated one).
    pub path: String,
    pub layers: u64,
    /// Bytes the layer files really occupy on disk (allocated blocks).
    pub used_bytes: u64,
    /// Free bytes on the file system holding the pool.
    pub free_bytes: u64,
}

/// The file side of block storage. Every call is idempotent where its doc says so, and on
/// error leaves no partial file behind.
#[async_trait::async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Creates layer `id`: an empty disk of `size_bytes`, or, with `backing`, an overlay on
    /// that layer (`size_bytes` at least the backing layer's size). Succeeds without change if
    /// the layer exists already.
    async fn layer_create(&self, id: &LayerId, backing: Option<&LayerId>, size_bytes: u64) -> Result<(), AgentError>;

    /// Makes layer `id` from a disk image file outside the pool (raw or qcow2, detected;
    /// `qcow2` with a backing file is refused). The result is self-contained; the source is
    /// left as it was. Returns the disk's virtual size in bytes.
    async fn layer_import(&self, id: &LayerId, source: &Path) -> Result<u64, AgentError>;

    /// Makes layer `id` a full, independent copy of the disk that `source` is the top of
    /// (its whole backing chain flattened into one file). Used where a copy must not share
    /// layers with its source.
    async fn layer_flatten(&self, id: &LayerId, source: &LayerId) -> Result<(), AgentError>;

    /// Makes `backing` (a layer further down `id`'s current chain, or `None` for no backing at
    /// all) the new backing of layer `id`, copying into `id` whatever the layers it skips held,
    /// so what `id`'s chain reads does not change (`qemu-img rebase` in its safe mode). No VM
    /// may have the chain open. A crash halfway leaves `id` on its old backing, reading the same.
    /// Used to drop layers nothing needs any more from the middle of chains.
    async fn layer_rebase(&self, id: &LayerId, backing: Option<&LayerId>) -> Result<(), AgentError>;

    /// Grows a layer that no VM has open to `size_bytes` (never shrinks).
    async fn layer_resize(&self, id: &LayerId, size_bytes: u64) -> Result<(), AgentError>;

    /// Deletes layer `id`'s file. Idempotent. The caller guarantees nothing builds on it and
    /// no VM has it open.
    async fn layer_delete(&self, id: &LayerId) -> Result<(), AgentError>;

    /// Whether the layer's file exists, and its virtual size.
    async fn layer_size(&self, id: &LayerId) -> Result<Option<u64>, AgentError>;

    async fn usage(&self) -> Result<PoolUsage, AgentError>;

    /// Every layer file the pool holds, with how long ago it was last written (what a sweep
    /// compares with the store's records: a file nothing names, older than a grace period, is
    /// what a crash left between a file and its record).
    async fn layer_files(&self) -> Result<Vec<LayerFile>, AgentError>;

    /// Removes the temporary files of writes that never finished (a `qemu-img` killed with its
    /// process) last written more than `older_than` ago, whose writing process is gone;
    /// returns their names. A write in progress is never touched.
    async fn temp_sweep(&self, older_than: Duration) -> Result<Vec<String>, AgentError>;
}

/// A layer file in the pool and its age (since it was last written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFile {
    pub layer: LayerId,
    pub age: Duration,
}
