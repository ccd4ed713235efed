//! Block storage as documents: volumes, snapshots, and the pool layers they are made of.
//!
//! A layer is one copy-on-write disk file on a host; `backing` is the layer it is an overlay
//! on. A volume writes to its top layer; a snapshot names a frozen layer. A layer is kept
//! while a volume or snapshot names it or another layer builds on it (the control plane
//! collects the rest).

use crate::doc::Doc;
use serde::{Deserialize, Serialize};

/// How to boot a disk without a bootloader of its own: carried from the image a root volume
/// was launched from to its snapshots, so images made from them boot the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelBoot {
    pub kernel: String,
    pub initrd: Option<String>,
    pub cmdline: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub layer_id: String,
    pub backing: Option<String>,
    pub created_at: String,
}

impl Doc for LayerRecord {
    const KIND: &'static str = "layer";
    fn id(&self) -> &str {
        &self.layer_id
    }
    fn parent(&self) -> Option<&str> {
        self.backing.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttachment {
    pub instance_id: String,
    pub device: String,
    /// "attaching", "attached", "detaching".
    pub state: String,
    pub attach_time: String,
    pub delete_on_termination: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeModification {
    /// "modifying", "optimizing", "completed", "failed".
    pub state: String,
    pub status_message: Option<String>,
    pub original_size_gib: u64,
    pub target_size_gib: u64,
    pub original_volume_type: String,
    pub target_volume_type: String,
    pub original_iops: Option<i64>,
    pub target_iops: Option<i64>,
    pub original_throughput: Option<i64>,
    pub target_throughput: Option<i64>,
    pub start_time: String,
    pub end_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub volume_id: String,
    pub size_gib: u64,
    pub availability_zone: String,
    pub volume_type: String,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
    /// "creating", "available", "in-use", "deleting", "error".
    pub state: String,
    pub created_at: String,
    pub snapshot_id: Option<String>,
    /// The layer QEMU writes to.
    pub layer: String,
    pub attachment: Option<VolumeAttachment>,
    pub modification: Option<VolumeModification>,
    pub boot: Option<KernelBoot>,
    #[serde(default)]
    pub auto_enable_io: bool,
}

impl VolumeRecord {
    pub fn size_bytes(&self) -> u64 {
        self.size_gib << 30
    }
}

impl Doc for VolumeRecord {
    const KIND: &'static str = "volume";
    fn id(&self) -> &str {
        &self.volume_id
    }
    /// Attached volumes are found by instance.
    fn parent(&self) -> Option<&str> {
        self.attachment.as_ref().map(|a| a.instance_id.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub snapshot_id: String,
    /// The volume it was taken from (`vol-ffffffff` for snapshots of imported disks, as EC2
    /// shows for copied snapshots).
    pub volume_id: String,
    pub volume_size_gib: u64,
    pub owner_id: String,
    pub description: String,
    /// "pending", "completed", "error".
    pub state: String,
    pub state_message: Option<String>,
    pub started_at: String,
    pub completed_at: Option<String>,
    /// The frozen layer; `None` when the snapshot failed.
    pub layer: Option<String>,
    /// While pending: the volume's new top layer being made, so a restart after a crash can
    /// tell whether the host step happened.
    #[serde(default)]
    pub pending_top: Option<String>,
    pub boot: Option<KernelBoot>,
    /// createVolumePermission: everyone (`group all`) and these accounts besides the owner.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub volume_users: Vec<String>,
}

impl Doc for SnapshotRecord {
    const KIND: &'static str = "snapshot";
    fn id(&self) -> &str {
        &self.snapshot_id
    }
}

impl crate::Tx<'_> {
    /// Layers nothing builds on: no volume writes to them, no snapshot names them, no layer
    /// is an overlay on them. Answered in SQL from the indexes on a document's layer and
    /// parent, without reading the fleet's records (`+l.id`: without the column's text
    /// affinity the comparison can use the index on the layer expression).
    pub fn layers_unused(&self) -> crate::Result<Vec<String>> {
        let mut st = self.tx.prepare_cached(
            "SELECT l.id FROM docs l WHERE l.kind = 'layer'
               AND NOT EXISTS (SELECT 1 FROM docs v WHERE v.kind = 'volume' AND json_extract(v.body, '$.layer') = +l.id)
               AND NOT EXISTS (SELECT 1 FROM docs s WHERE s.kind = 'snapshot' AND json_extract(s.body, '$.layer') = +l.id)
               AND NOT EXISTS (SELECT 1 FROM docs c WHERE c.kind = 'layer' AND c.parent = l.id)
             ORDER BY l.id",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Whether nothing builds on this layer: no volume writes to it, no snapshot names it, no
    /// layer is an overlay on it (the test [`Tx::layers_unused`] makes for every layer).
    pub fn layer_unused(&self, id: &str) -> crate::Result<bool> {
        let mut st = self.tx.prepare_cached(
            "SELECT NOT EXISTS (SELECT 1 FROM docs v WHERE v.kind = 'volume' AND json_extract(v.body, '$.layer') = ?1)
                AND NOT EXISTS (SELECT 1 FROM docs s WHERE s.kind = 'snapshot' AND json_extract(s.body, '$.layer') = ?1)
                AND NOT EXISTS (SELECT 1 FROM docs c WHERE c.kind = 'layer' AND c.parent = ?1)",
        )?;
        Ok(st.query_row([id], |r| r.get::<_, bool>(0))?)
    }

    /// Whether a volume writes to this layer or a snapshot names it (or is about to build on
    /// it).
    pub fn layer_named(&self, id: &str) -> crate::Result<bool> {
        let mut st = self.tx.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM docs v WHERE v.kind IN ('volume', 'snapshot') AND json_extract(v.body, '$.layer') = ?1)
                 OR EXISTS (SELECT 1 FROM docs s WHERE s.kind = 'snapshot' AND json_extract(s.body, '$.pending_top') = ?1)",
        )?;
        Ok(st.query_row([id], |r| r.get::<_, bool>(0))?)
    }

    /// The volumes writing to any of these layers.
    pub fn volumes_on_layers(&self, layers: &[String]) -> crate::Result<Vec<VolumeRecord>> {
        self.docs_in::<VolumeRecord, _>("json_extract(d.body, '$.layer')", layers, true)
    }

    /// Up to `limit` layers that are overlays on this one.
    pub fn layer_children(&self, id: &str, limit: usize) -> crate::Result<Vec<String>> {
        let mut st = self.tx.prepare_cached("SELECT id FROM docs WHERE kind = 'layer' AND parent = ?1 ORDER BY id LIMIT ?2")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st.query_map(rusqlite::params![id, limit], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
