//! Image deprecation: EnableImageDeprecation sets the time from which an image counts as
//! deprecated (DescribeImages shows it as `DeprecationTime`); DisableImageDeprecation clears it.

use crate::Control;
use chrono::{DateTime, Utc};
use corral_ec2_query::requests as rq;
use corral_types::{Error, ErrorCode, Result};

/// AWS takes deprecation times up to ten years ahead.
const MAX_YEARS_AHEAD: i64 = 10;

impl Control {
    pub fn image_deprecation_enable(&self, req: &rq::EnableImageDeprecation) -> Result<()> {
        let at = req.deprecate_at.as_deref().ok_or_else(|| Error::missing("DeprecateAt"))?;
        let when: DateTime<Utc> = DateTime::parse_from_rfc3339(at)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| at.parse::<f64>().map(|s| DateTime::from_timestamp(s as i64, 0).unwrap_or_default()))
            .map_err(|_| Error::invalid_value("DeprecateAt", at, "Not a time."))?;
        let now = Utc::now();
        if when < now - chrono::Duration::minutes(1) {
            return Err(Error::invalid_value("DeprecateAt", at, "The deprecation time cannot be in the past."));
        }
        if when > now + chrono::Duration::days(365 * MAX_YEARS_AHEAD) {
            return Err(Error::invalid_value("DeprecateAt", at, "The deprecation time can be at most 10 years from now."));
        }
        self.image_deprecation_set(req.image_id.as_deref(), Some(when.format("%Y-%m-%dT%H:%M:%S.000Z").to_string()), req.dry_run)
    }

    pub fn image_deprecation_disable(&self, req: &rq::DisableImageDeprecation) -> Result<()> {
        self.image_deprecation_set(req.image_id.as_deref(), None, req.dry_run)
    }

    fn image_deprecation_set(&self, id: Option<&str>, when: Option<String>, dry_run: bool) -> Result<()> {
        let id = id.ok_or_else(|| Error::missing("ImageId"))?;
        self.store.transaction(|tx| {
            let mut img = Self::image_load(tx, id)?;
            if img.owner_id != self.account_id {
                return Err(Error::new(ErrorCode::UnauthorizedOperation, format!("You do not own {id}.")));
            }
            if dry_run {
                return Err(Error::dry_run());
            }
            img.deprecation_time = when;
            tx.image_update(&img)?;
            Ok(())
        })
    }
}
