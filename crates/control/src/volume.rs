//! Volumes: CreateVolume, DescribeVolumes and DeleteVolume, and the types the API shows a
//! volume and its status with. Attaching and detaching are in `volume_attach.rs`, ModifyVolume
//! in `volume_modify.rs`, DescribeVolumeStatus and the volume attributes in
//! `volume_status.rs`, the volumes of a launch in `volume_launch.rs`, types and sizes in
//! `volume_type.rs`.
//!
//! A volume is a chain of copy-on-write layers in the host's storage pool (see
//! `corral_agent_api::storage` and `layer.rs`); the store keeps the graph and the control plane
//! decides. Work on the host happens in two steps around the agent call: the first transaction
//! records the intent (`creating`, `attaching`, `detaching`), the agent acts, the second
//! transaction records the outcome, or puts the previous state back when the agent failed, so
//! a failure halfway leaves the store as it was and no file or QEMU device behind.

use crate::describe::{Describe, FilterLine};
use crate::layer::{agent_error, collect_layers, layer_id};
use crate::volume_type::{check_size, volume_performance};
use crate::{tag, Control};
use corral_agent_api::LayerId;
use corral_ec2_query::requests as rq;
use corral_store::{LayerRecord, TagRecord, Tx, VolumeRecord};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};

/// The reconciler reads a VM's disks through this path (they are worked out in `device.rs`).
pub(crate) use crate::device::disks_of;

/// A volume as the API shows it.
#[derive(Debug, Clone)]
pub struct Volume {
    pub rec: VolumeRecord,
    pub tags: Vec<TagRecord>,
}

// Text fields only: the store compares JSON text, and a number or boolean would not match.
crate::described_as_tagged!(
    Volume,
    VolumeRecord,
    IdKind::Volume,
    volume_id,
    [("volume-id", "volume_id"), ("status", "state"), ("volume-type", "volume_type"), ("availability-zone", "availability_zone")]
);

fn attachment(v: &Volume, f: impl Fn(&corral_store::VolumeAttachment) -> String) -> Vec<String> {
    v.rec.attachment.as_ref().map(f).into_iter().collect()
}

pub(crate) const VOLUME_FILTERS: &[FilterLine<Volume>] = &[
    ("volume-id", |v, _| vec![v.rec.volume_id.clone()]),
    ("status", |v, _| vec![v.rec.state.clone()]),
    ("size", |v, _| vec![v.rec.size_gib.to_string()]),
    ("availability-zone", |v, _| vec![v.rec.availability_zone.clone()]),
    ("availability-zone-id", |v, _| corral_types::region::zone_id(&v.rec.availability_zone).into_iter().collect()),
    ("fast-restored", |_, _| vec!["false".into()]),
    // No volume is managed by a service operator.
    ("operator.managed", |_, _| vec!["false".into()]),
    ("operator.principal", |_, _| vec![]),
    ("volume-type", |v, _| vec![v.rec.volume_type.clone()]),
    ("snapshot-id", |v, _| v.rec.snapshot_id.iter().cloned().collect()),
    ("create-time", |v, _| vec![v.rec.created_at.clone()]),
    ("encrypted", |_, _| vec!["false".into()]),
    ("multi-attach-enabled", |_, _| vec!["false".into()]),
    ("attachment.instance-id", |v, _| attachment(v, |a| a.instance_id.clone())),
    ("attachment.status", |v, _| attachment(v, |a| a.state.clone())),
    ("attachment.device", |v, _| attachment(v, |a| a.device.clone())),
    ("attachment.attach-time", |v, _| attachment(v, |a| a.attach_time.clone())),
    ("attachment.delete-on-termination", |v, _| attachment(v, |a| a.delete_on_termination.to_string())),
];

/// One volume's health as DescribeVolumeStatus shows it: `ok` unless the volume is in error.
#[derive(Debug, Clone)]
pub struct VolumeStatus {
    pub volume_id: String,
    pub availability_zone: String,
    /// "ok", "impaired" or "insufficient-data".
    pub status: &'static str,
    /// io-enabled: "passed" or "failed".
    pub io_enabled: &'static str,
}

pub(crate) fn check_volume_id(id: Option<&str>) -> Result<&str> {
    let id = id.ok_or_else(|| Error::missing("VolumeId"))?;
    if ResourceId::parse(IdKind::Volume, id).is_none() {
        return Err(Error::malformed(IdKind::Volume, id));
    }
    Ok(id)
}

impl Control {
    pub(crate) fn volume_load(tx: &Tx<'_>, id: &str) -> Result<VolumeRecord> {
        tx.doc_get::<VolumeRecord>(id)?.ok_or_else(|| Error::not_found(IdKind::Volume, id))
    }

    pub async fn volume_create(&self, req: &rq::CreateVolume) -> Result<Volume> {
        let zones = self.config.zones();
        let zone = match (req.availability_zone.as_deref(), req.availability_zone_id.as_deref()) {
            (Some(_), Some(_)) => return Err(Error::combination("Only one of AvailabilityZone and AvailabilityZoneId may be given.")),
            (Some(z), None) => z.to_string(),
            (None, Some(zid)) => match corral_types::region::zone_by_id(&self.config.region, zid) {
                Some(z) => z,
                None => return Err(Error::new(ErrorCode::InvalidZoneNotFound, format!("The zone ID '{zid}' does not exist."))),
            },
            (None, None) => return Err(Error::missing("AvailabilityZone")),
        };
        let zone = zone.as_str();
        if !zones.iter().any(|z| z == zone) {
            return Err(Error::new(ErrorCode::InvalidZoneNotFound, format!("The zone '{zone}' does not exist.")));
        }
        if req.size.is_none() && req.snapshot_id.is_none() {
            return Err(Error::missing("size or snapshot"));
        }
        if req.encrypted == Some(true) {
            return Err(Error::new(ErrorCode::Unsupported, "Encrypted volumes are not supported here."));
        }
        if req.multi_attach_enabled == Some(true) {
            return Err(Error::new(ErrorCode::Unsupported, "Multi-attach is not supported here."));
        }
        let volume_type = req.volume_type.clone().unwrap_or_else(|| "gp2".into());
        let tags = tag::from_specifications(&req.tag_specifications, "volume", &["volume"])?;
        let now = crate::now_iso();
        let (rec, tags, backing) = self.store.transaction(|tx| {
            let snapshot = req.snapshot_id.as_deref().map(|s| self.snapshot_usable(tx, s)).transpose()?;
            let size_gib = match (req.size, &snapshot) {
                (Some(size), Some(s)) if size >= 0 && (size as u64) < s.volume_size_gib => {
                    return Err(Error::invalid_value(
                        "size",
                        &size.to_string(),
                        &format!(
                            "Volume of size {size}GB is smaller than snapshot '{}', expect size >= {}GB",
                            s.snapshot_id, s.volume_size_gib
                        ),
                    ));
                }
                (Some(size), _) => check_size(&volume_type, size)?,
                (None, Some(s)) => s.volume_size_gib,
                (None, None) => unreachable!("checked above"),
            };
            let (iops, throughput) = volume_performance(&volume_type, size_gib, req.iops, req.throughput)?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let layer = LayerRecord {
                layer_id: LayerId::random().to_string(),
                backing: snapshot.as_ref().and_then(|s| s.layer.clone()),
                created_at: now.clone(),
            };
            tx.doc_put(&layer)?;
            let rec = VolumeRecord {
                volume_id: ResourceId::generate(IdKind::Volume).into_string(),
                size_gib,
                availability_zone: zone.to_string(),
                volume_type: volume_type.clone(),
                iops,
                throughput,
                state: "creating".into(),
                created_at: now.clone(),
                snapshot_id: snapshot.as_ref().map(|s| s.snapshot_id.clone()),
                layer: layer.layer_id,
                attachment: None,
                modification: None,
                boot: snapshot.as_ref().and_then(|s| s.boot.clone()),
                auto_enable_io: false,
            };
            tx.doc_put(&rec)?;
            let t = tag::insert(tx, &rec.volume_id, "volume", &tags)?;
            Ok((rec, t, layer.backing))
        })?;
        let layer = layer_id(&rec.layer)?;
        let backing = backing.as_deref().map(layer_id).transpose()?;
        if let Err(e) = self.layer_ensure_backing(backing.as_ref()).await {
            self.volume_create_undo(&rec.volume_id).await;
            return Err(e);
        }
        if let Err(e) = self.storage.layer_create(&layer, backing.as_ref(), rec.size_bytes()).await {
            self.volume_create_undo(&rec.volume_id).await;
            return Err(agent_error("creating the volume's disk", e));
        }
        let rec = self.store.transaction(|tx| {
            let mut v = Self::volume_load(tx, &rec.volume_id)?;
            v.state = "available".into();
            tx.doc_put(&v)?;
            Ok::<_, Error>(v)
        })?;
        Ok(Volume { rec, tags })
    }

    async fn volume_create_undo(&self, volume_id: &str) {
        let doomed = self.store.transaction(|tx| {
            let layer = tx.doc_get::<VolumeRecord>(volume_id)?.map(|v| v.layer);
            tx.doc_delete::<VolumeRecord>(volume_id)?;
            tx.tag_delete_all(volume_id)?;
            collect_layers(tx, layer)
        });
        match doomed {
            Ok(layers) => self.layers_delete(layers).await,
            Err(e) => tracing::error!(volume = volume_id, error = %e, "undoing a failed CreateVolume"),
        }
    }

    pub fn volume_describe(&self, req: &rq::DescribeVolumes) -> Result<(Vec<Volume>, Option<String>)> {
        let d = Describe::new(&req.volume_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref()).bounds(5, 500);
        d.ids_without_max_results("volumeSet")?;
        self.describe(&d.table(VOLUME_FILTERS), |_| true)
    }

    pub async fn volume_delete(&self, req: &rq::DeleteVolume) -> Result<()> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let doomed = self.store.transaction(|tx| {
            let v = Self::volume_load(tx, id)?;
            if let Some(a) = &v.attachment {
                return Err(Error::new(ErrorCode::VolumeInUse, format!("Volume {id} is currently attached to {}", a.instance_id)));
            }
            if v.state != "available" && v.state != "error" {
                return Err(Error::new(ErrorCode::IncorrectState, format!("The volume '{id}' is '{}'.", v.state)));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_delete::<VolumeRecord>(id)?;
            tx.tag_delete_all(id)?;
            collect_layers(tx, [v.layer])
        })?;
        self.layers_delete(doomed).await;
        Ok(())
    }
}
