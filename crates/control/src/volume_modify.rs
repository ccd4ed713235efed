//! ModifyVolume and DescribeVolumesModifications. A volume grows on the host at once (through
//! its VM when one runs it, else on its layer file, or not at all while the layer is still to
//! be created); a new type, IOPS or throughput only changes the record. Each modification
//! completes immediately and stays on the volume for DescribeVolumesModifications.

use crate::describe::{Describe, FilterLine};
use crate::layer::{agent_error, layer_id};
use crate::volume::check_volume_id;
use crate::volume::Volume;
use crate::volume_type::{check_size, volume_performance};
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::{VolumeModification, VolumeRecord};
use corral_types::{Error, InstanceState, Result};

impl Control {
    pub async fn volume_modify(&self, req: &rq::ModifyVolume) -> Result<VolumeRecord> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let _disks = self.disk_lock.lock().await;
        let now = crate::now_iso();
        let (v, live) = self.store.read(|tx| {
            let v = Self::volume_load(tx, id)?;
            let live = match &v.attachment {
                Some(a) => tx.instance_get(&a.instance_id)?.is_some_and(|i| i.state == InstanceState::Running),
                None => false,
            };
            Ok::<_, Error>((v, live))
        })?;
        let target_type = req.volume_type.clone().unwrap_or_else(|| v.volume_type.clone());
        let target_size = match req.size {
            Some(s) if s >= 0 && (s as u64) < v.size_gib => {
                return Err(Error::invalid_value("size", &s.to_string(), "New size cannot be smaller than existing size"));
            }
            Some(s) => check_size(&target_type, s)?,
            None => v.size_gib,
        };
        let iops = req.iops.or(if target_type == v.volume_type { v.iops } else { None });
        let throughput = req.throughput.or(if target_type == v.volume_type { v.throughput } else { None });
        let iops = if target_type == "gp2" { None } else { iops };
        let (iops, throughput) = volume_performance(&target_type, target_size, iops, throughput)?;
        if req.size.is_none() && req.volume_type.is_none() && req.iops.is_none() && req.throughput.is_none() {
            return Err(Error::missing("size, volumeType, iops or throughput"));
        }
        if req.dry_run {
            return Err(Error::dry_run());
        }
        if target_size > v.size_gib {
            let bytes = target_size << 30;
            let grown = if live {
                let a = v.attachment.as_ref().map(|a| a.instance_id.clone()).unwrap_or_default();
                self.agent.vm_disk_resize(&a, id, bytes).await
            } else {
                let layer = layer_id(&v.layer)?;
                match self.storage.layer_size(&layer).await {
                    // Not created yet: it is created at the new size.
                    Ok(None) => Ok(()),
                    Ok(Some(_)) => self.storage.layer_resize(&layer, bytes).await,
                    Err(e) => Err(e),
                }
            };
            grown.map_err(|e| agent_error("growing the volume", e))?;
        }
        self.store.transaction(|tx| {
            let mut cur = Self::volume_load(tx, id)?;
            cur.modification = Some(VolumeModification {
                state: "completed".into(),
                status_message: None,
                original_size_gib: cur.size_gib,
                target_size_gib: target_size,
                original_volume_type: cur.volume_type.clone(),
                target_volume_type: target_type.clone(),
                original_iops: cur.iops,
                target_iops: iops,
                original_throughput: cur.throughput,
                target_throughput: throughput,
                start_time: now.clone(),
                end_time: Some(crate::now_iso()),
            });
            cur.size_gib = target_size;
            cur.volume_type = target_type.clone();
            cur.iops = iops;
            cur.throughput = throughput;
            tx.doc_put(&cur)?;
            Ok(cur)
        })
    }

    /// DescribeVolumesModifications: the volumes that were ever modified, with their last
    /// modification.
    pub fn volume_modifications(&self, req: &rq::DescribeVolumesModifications) -> Result<(Vec<VolumeRecord>, Option<String>)> {
        let d = Describe::new(&req.volume_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref()).bounds(5, 500);
        let (items, next) = self.describe(&d.table(MODIFICATION_FILTERS).without_tag_filters(), |v| v.rec.modification.is_some())?;
        Ok((items.into_iter().map(|v| v.rec).collect(), next))
    }
}

fn modification(v: &Volume, f: impl Fn(&VolumeModification) -> Option<String>) -> Vec<String> {
    v.rec.modification.as_ref().and_then(f).into_iter().collect()
}

/// DescribeVolumesModifications' filters. No volume is multi-attach.
const MODIFICATION_FILTERS: &[FilterLine<Volume>] = &[
    ("volume-id", |v, _| vec![v.rec.volume_id.clone()]),
    ("modification-state", |v, _| modification(v, |m| Some(m.state.clone()))),
    ("target-size", |v, _| modification(v, |m| Some(m.target_size_gib.to_string()))),
    ("target-volume-type", |v, _| modification(v, |m| Some(m.target_volume_type.clone()))),
    ("target-iops", |v, _| modification(v, |m| m.target_iops.map(|i| i.to_string()))),
    ("targetMultiAttachEnabled", |v, _| modification(v, |_| Some("false".into()))),
    ("original-size", |v, _| modification(v, |m| Some(m.original_size_gib.to_string()))),
    ("original-volume-type", |v, _| modification(v, |m| Some(m.original_volume_type.clone()))),
    ("original-iops", |v, _| modification(v, |m| m.original_iops.map(|i| i.to_string()))),
    ("originalMultiAttachEnabled", |v, _| modification(v, |_| Some("false".into()))),
    ("start-time", |v, _| modification(v, |m| Some(m.start_time.clone()))),
];
