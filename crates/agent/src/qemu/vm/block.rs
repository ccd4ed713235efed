//! What QEMU's block layer reports, read into plain values: the devices of a `query-block`
//! answer ([`BlockDevice`], matched to a volume by [`device_is`]), the nodes of
//! `query-named-block-nodes` ([`BlockNode`]) and the end of a block job ([`job_outcome`]).
//! Pure functions of QMP's JSON, tested without QEMU.

use corral_agent_api::AgentError;
use serde_json::Value;

use crate::qemu::qmp::QmpEvent;

/// A block device as `query-block` reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockDevice {
    /// The device's QOM path or id (`vol-...`, `/machine/peripheral/vol-.../virtio-backend`).
    pub qdev: String,
    /// The top node: the volume's node, or the newest live snapshot's overlay.
    pub node: String,
    /// The top node's file.
    pub file: String,
    pub virtual_size: u64,
}

/// The devices with a medium in a `query-block` answer.
pub(crate) fn parse_query_block(v: &Value) -> Vec<BlockDevice> {
    let mut out = Vec::new();
    for b in v.as_array().into_iter().flatten() {
        let Some(inserted) = b.get("inserted") else { continue };
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
        out.push(BlockDevice {
            qdev: s(b.get("qdev")),
            node: s(inserted.get("node-name")),
            file: s(inserted.get("file")),
            virtual_size: inserted.pointer("/image/virtual-size").and_then(Value::as_u64).unwrap_or(0),
        });
    }
    out
}

/// A node as `query-named-block-nodes` reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockNode {
    pub name: String,
    /// The driver: `qcow2` for a layer's format node, `file` for the protocol node under it,
    /// a filter's name for a filter (a running stream job's `copy-on-read`).
    pub drv: String,
    /// The file the node reads (a filter reports its child's).
    pub file: String,
}

impl BlockNode {
    pub(super) fn is_format_node_of(&self, path: &str) -> bool {
        self.drv == "qcow2" && self.file == path
    }
}

pub(crate) fn parse_named_nodes(v: &Value) -> Vec<BlockNode> {
    let s = |n: &Value, k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    v.as_array().into_iter().flatten().map(|n| BlockNode { name: s(n, "node-name"), drv: s(n, "drv"), file: s(n, "file") }).collect()
}

/// A block job's end, from its `BLOCK_JOB_COMPLETED` / `BLOCK_JOB_CANCELLED` event.
pub(super) fn job_outcome(vm: &str, job_id: &str, ev: &QmpEvent, io_error: Option<&Value>) -> Result<(), AgentError> {
    match (ev.event.as_str(), ev.data.get("error").and_then(Value::as_str)) {
        ("BLOCK_JOB_COMPLETED", None) => Ok(()),
        ("BLOCK_JOB_COMPLETED", Some(error)) => {
            let detail = io_error.map(|d| format!(" (I/O error: {d})")).unwrap_or_default();
            Err(AgentError::Other(format!("block job {job_id} on {vm} failed: {error}{detail}")))
        }
        _ => Err(AgentError::Other(format!("block job {job_id} on {vm} was cancelled"))),
    }
}

/// Whether a `query-block` `qdev` is the device with id `id`: QEMU gives the id itself for
/// some devices and a QOM path (`/machine/peripheral/<id>[/virtio-backend]`) for others.
pub(crate) fn device_is(qdev: &str, id: &str) -> bool {
    let path = qdev.strip_prefix("/machine/peripheral/").unwrap_or(qdev);
    path == id || path.strip_prefix(id).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn query_block_answers_are_read_and_matched_to_volumes() {
        let v = json!([
            {"device": "", "qdev": "vol-1", "inserted": {"node-name": "l00000000000000004", "file": "/p/l00000000000000004.qcow2",
                "image": {"virtual-size": 1073741824}}},
            {"device": "", "qdev": "/machine/peripheral/vol-2/virtio-backend", "inserted": {"node-name": "vol-2", "file": "/p/x.qcow2",
                "image": {"virtual-size": 5}}},
            {"device": "cd0", "qdev": "/machine/peripheral/cd0"}
        ]);
        let devs = parse_query_block(&v);
        assert_eq!(devs.len(), 2, "a device without a medium is skipped");
        assert_eq!(devs[0].node, "l00000000000000004");
        assert_eq!(devs[0].virtual_size, 1 << 30);
        assert!(device_is(&devs[0].qdev, "vol-1"));
        assert!(device_is(&devs[1].qdev, "vol-2"));
        assert!(device_is("/machine/peripheral/vol-2", "vol-2"));
        assert!(!device_is(&devs[1].qdev, "vol-"), "no prefix matches");
        assert!(!device_is("/machine/peripheral/vol-22/virtio-backend", "vol-2"));
    }

    #[test]
    fn named_nodes_and_block_job_ends_are_read() {
        let v = json!([
            {"node-name": "l00000000000000004", "drv": "qcow2", "file": "/p/l00000000000000004.qcow2", "ro": false},
            {"node-name": "#block123", "drv": "file", "file": "/p/l00000000000000004.qcow2"},
            {"node-name": "#block456", "drv": "copy-on-read", "file": "/p/l00000000000000004.qcow2"},
            {"node-name": "vol-1", "drv": "qcow2", "file": "/p/l00000000000000003.qcow2"}
        ]);
        let nodes = parse_named_nodes(&v);
        assert_eq!(nodes.len(), 4);
        let over = |p: &str| nodes.iter().filter(|n| n.is_format_node_of(p)).map(|n| n.name.as_str()).collect::<Vec<_>>();
        assert_eq!(over("/p/l00000000000000004.qcow2"), ["l00000000000000004"], "protocol and filter nodes are not the layer's");
        assert_eq!(over("/p/l00000000000000003.qcow2"), ["vol-1"]);

        let ev = |event: &str, data: Value| QmpEvent { event: event.into(), data };
        let done = ev("BLOCK_JOB_COMPLETED", json!({"device": "rebase-l1", "type": "stream", "len": 1, "offset": 1}));
        assert!(job_outcome("i-1", "rebase-l1", &done, None).is_ok());
        let failed = ev("BLOCK_JOB_COMPLETED", json!({"device": "rebase-l1", "error": "Input/output error"}));
        let err = job_outcome("i-1", "rebase-l1", &failed, Some(&json!({"operation": "write"}))).unwrap_err().to_string();
        assert!(err.contains("Input/output error") && err.contains("write"), "{err}");
        let cancelled = ev("BLOCK_JOB_CANCELLED", json!({"device": "rebase-l1"}));
        assert!(job_outcome("i-1", "rebase-l1", &cancelled, None).unwrap_err().to_string().contains("cancelled"));
    }
}
