//! A volume's health: DescribeVolumeStatus (`ok`, or `impaired` with I/O disabled for a volume
//! in error) and the attributes that go with it, DescribeVolumeAttribute and
//! ModifyVolumeAttribute (`autoEnableIO`, whether I/O resumes by itself on an impaired volume,
//! and `productCodes`).

use crate::attribute::Target;
use crate::describe::{Describe, Described, FilterLine, TagMap};
use crate::volume::VolumeStatus;
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::{TagRecord, Tx, VolumeRecord};
use corral_types::{Error, IdKind, Result};

impl Described for VolumeStatus {
    type Record = VolumeRecord;
    const KIND: IdKind = IdKind::Volume;
    fn record_id(rec: &VolumeRecord) -> &str {
        &rec.volume_id
    }
    /// A volume in error is impaired, with I/O disabled.
    fn assemble(_: &Tx<'_>, recs: Vec<VolumeRecord>, _: &mut TagMap) -> Result<Vec<VolumeStatus>> {
        Ok(recs
            .into_iter()
            .map(|v| {
                let failed = v.state == "error";
                VolumeStatus {
                    volume_id: v.volume_id,
                    availability_zone: v.availability_zone,
                    status: if failed { "impaired" } else { "ok" },
                    io_enabled: if failed { "failed" } else { "passed" },
                }
            })
            .collect())
    }
    fn id(&self) -> &str {
        &self.volume_id
    }
    fn tags(&self) -> &[TagRecord] {
        &[]
    }
}

const STATUS_FILTERS: &[FilterLine<VolumeStatus>] = &[
    ("availability-zone", |s, _| vec![s.availability_zone.clone()]),
    ("volume-status.status", |s, _| vec![s.status.into()]),
    ("volume-status.details-name", |_, _| vec!["io-enabled".into(), "io-performance".into()]),
    ("volume-status.details-status", |s, _| vec![s.io_enabled.into(), "not-applicable".into()]),
    // No volume here ever has a scheduled event or an action to take.
    ("action.code", |_, _| vec![]),
    ("action.description", |_, _| vec![]),
    ("action.event-id", |_, _| vec![]),
    ("event.description", |_, _| vec![]),
    ("event.event-id", |_, _| vec![]),
    ("event.event-type", |_, _| vec![]),
    ("event.not-after", |_, _| vec![]),
    ("event.not-before", |_, _| vec![]),
];

impl Control {
    pub fn volume_status(&self, req: &rq::DescribeVolumeStatus) -> Result<(Vec<VolumeStatus>, Option<String>)> {
        let d = Describe::new(&req.volume_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        self.describe(&d.table(STATUS_FILTERS), |_| true)
    }

    pub fn volume_attribute(&self, req: &rq::DescribeVolumeAttribute) -> Result<(VolumeRecord, String)> {
        let t = Target::new(IdKind::Volume, req.volume_id.as_deref(), "VolumeId", req.dry_run);
        self.attribute_read(t, req.attribute.as_deref(), &["autoEnableIO", "productCodes"])
    }

    pub fn volume_attribute_modify(&self, req: &rq::ModifyVolumeAttribute) -> Result<()> {
        let value = req.auto_enable_io.as_ref().and_then(|v| v.value).ok_or_else(|| Error::missing("AutoEnableIO"))?;
        let t = Target::new(IdKind::Volume, req.volume_id.as_deref(), "VolumeId", req.dry_run);
        self.attribute_write(t, |_, v: &mut VolumeRecord| {
            v.auto_enable_io = value;
            Ok(())
        })?;
        Ok(())
    }
}
