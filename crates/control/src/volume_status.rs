//! A volume's health: DescribeVolumeStatus (`ok`, or `impaired` with I/O disabled for a volume
//! in error) and the attributes that go with it, DescribeVolumeAttribute and
//! ModifyVolumeAttribute (`autoEnableIO`, whether I/O resumes by itself on an impaired volume,
//! and `productCodes`).

use crate::volume::{check_volume_id, VolumeStatus};
use crate::{filter, Control};
use corral_ec2_query::requests as rq;
use corral_store::VolumeRecord;
use corral_types::{Error, IdKind, Result};

impl Control {
    pub fn volume_status(&self, req: &rq::DescribeVolumeStatus) -> Result<(Vec<VolumeStatus>, Option<String>)> {
        const NAMES: &[&str] = &["availability-zone", "volume-status.status", "volume-status.details-name", "volume-status.details-status"];
        let q = filter::Query {
            kind: IdKind::Volume,
            ids: &req.volume_ids,
            filters: &req.filters,
            names: NAMES,
            dry_run: req.dry_run,
            max_results: req.max_results,
            next_token: req.next_token.as_deref(),
            bounds: (5, 1000),
        };
        q.check()?;
        let all = self.store.read(|tx| tx.doc_list::<VolumeRecord>())?;
        let statuses: Vec<VolumeStatus> = all
            .iter()
            .map(|v| {
                let failed = v.state == "error";
                VolumeStatus {
                    volume_id: v.volume_id.clone(),
                    availability_zone: v.availability_zone.clone(),
                    status: if failed { "impaired" } else { "ok" },
                    io_enabled: if failed { "failed" } else { "passed" },
                }
            })
            .collect();
        let (items, next) = q.select(
            statuses,
            &Default::default(),
            |s| &s.volume_id,
            |_| true,
            |s, n| match n {
                "availability-zone" => vec![s.availability_zone.clone()],
                "volume-status.status" => vec![s.status.into()],
                "volume-status.details-name" => vec!["io-enabled".into(), "io-performance".into()],
                "volume-status.details-status" => vec![s.io_enabled.into(), "not-applicable".into()],
                _ => vec![],
            },
        )?;
        Ok((items.into_iter().map(|(s, _)| s).collect(), next))
    }

    pub fn volume_attribute(&self, req: &rq::DescribeVolumeAttribute) -> Result<(VolumeRecord, String)> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let attribute = req.attribute.clone().ok_or_else(|| Error::missing("Attribute"))?;
        if attribute != "autoEnableIO" && attribute != "productCodes" {
            return Err(Error::invalid_value("Attribute", &attribute, "Valid attributes are autoEnableIO and productCodes."));
        }
        let v = self.store.read(|tx| Self::volume_load(tx, id))?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        Ok((v, attribute))
    }

    pub fn volume_attribute_modify(&self, req: &rq::ModifyVolumeAttribute) -> Result<()> {
        let id = check_volume_id(req.volume_id.as_deref())?;
        let value = req.auto_enable_io.as_ref().and_then(|v| v.value).ok_or_else(|| Error::missing("AutoEnableIO"))?;
        self.store.transaction(|tx| {
            let mut v = Self::volume_load(tx, id)?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            v.auto_enable_io = value;
            Ok(tx.doc_put(&v)?)
        })
    }
}
