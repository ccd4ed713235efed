//! Regions, availability zones, account attributes and the instance type catalogue: the
//! static facts of this cloud.

use crate::filter;
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_types::instance_type::INSTANCE_TYPES;
use corral_types::{region, Error, ErrorCode, InstanceTypeInfo, Result};

pub use corral_types::region::Zone;

/// A region as DescribeRegions shows it.
pub struct RegionView {
    pub name: String,
    pub opt_in_status: &'static str,
}

impl Control {
    /// The regions this cloud serves (its enabled regions); with `AllRegions`, every region
    /// of the `aws` partition too, those not served as `not-opted-in`.
    pub fn regions_describe(&self, req: &rq::DescribeRegions) -> Result<Vec<RegionView>> {
        filter::check(&req.filters, &["region-name", "endpoint", "opt-in-status"], false)?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let served = &self.config.regions;
        let status = |name: &str| match (served.iter().any(|r| r == name), region::aws_region(name)) {
            (true, Some(r)) if r.opt_in => "opted-in",
            (true, _) => "opt-in-not-required",
            (false, _) => "not-opted-in",
        };
        let mut names: Vec<String> = served.clone();
        if req.all_regions {
            names.extend(region::AWS_REGIONS.iter().map(|r| r.name.to_string()).filter(|n| !served.contains(n)));
        }
        names.sort();
        for name in &req.region_names {
            if !names.contains(name) {
                return Err(Error::new(ErrorCode::InvalidParameterValue, format!("Invalid region: {name}")));
            }
        }
        Ok(names
            .into_iter()
            .filter(|n| req.region_names.is_empty() || req.region_names.contains(n))
            .map(|name| RegionView { opt_in_status: status(&name), name })
            .filter(|r| {
                filter::matches(&req.filters, &[], |n| match n {
                    "region-name" => vec![r.name.clone()],
                    "opt-in-status" => vec![r.opt_in_status.to_string()],
                    "endpoint" => vec![endpoint(&r.name)],
                    _ => vec![],
                })
            })
            .collect())
    }

    pub fn zones_describe(&self, req: &rq::DescribeAvailabilityZones) -> Result<Vec<Zone>> {
        filter::check(
            &req.filters,
            &[
                "zone-name",
                "zone-id",
                "region-name",
                "state",
                "zone-type",
                "group-name",
                "group-long-name",
                "opt-in-status",
                "message",
                "parent-zone-name",
                "parent-zone-id",
            ],
            false,
        )?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let zones = region::zones(&self.config.region);
        for n in &req.zone_names {
            if !zones.iter().any(|z| &z.name == n) {
                return Err(Error::new(ErrorCode::InvalidParameterValue, format!("The zone '{n}' does not exist.")));
            }
        }
        for n in &req.zone_ids {
            if !zones.iter().any(|z| &z.zone_id == n) {
                return Err(Error::new(ErrorCode::InvalidParameterValue, format!("The zone ID '{n}' does not exist.")));
            }
        }
        Ok(zones
            .into_iter()
            .filter(|z| req.zone_names.is_empty() || req.zone_names.contains(&z.name))
            .filter(|z| req.zone_ids.is_empty() || req.zone_ids.contains(&z.zone_id))
            .filter(|z| {
                filter::matches(&req.filters, &[], |n| match n {
                    "zone-name" => vec![z.name.clone()],
                    "zone-id" => vec![z.zone_id.clone()],
                    "region-name" | "group-name" => vec![z.region.clone()],
                    "state" => vec!["available".into()],
                    "zone-type" => vec!["availability-zone".into()],
                    "opt-in-status" => vec!["opt-in-not-required".into()],
                    _ => vec![],
                })
            })
            .collect())
    }

    /// (name, values) pairs.
    pub fn account_attributes(&self, req: &rq::DescribeAccountAttributes) -> Result<Vec<(String, Vec<String>)>> {
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let all = vec![
            ("supported-platforms".to_string(), vec!["VPC".to_string()]),
            ("default-vpc".to_string(), vec!["none".to_string()]),
            ("max-instances".to_string(), vec![self.config.max_instances.to_string()]),
            ("max-elastic-ips".to_string(), vec!["5".to_string()]),
            ("vpc-max-elastic-ips".to_string(), vec!["5".to_string()]),
            ("vpc-max-security-groups-per-interface".to_string(), vec!["5".to_string()]),
        ];
        if req.attribute_names.is_empty() {
            return Ok(all);
        }
        for n in &req.attribute_names {
            if !all.iter().any(|(a, _)| a == n) {
                return Err(Error::invalid_value("AttributeName", n, "Unknown account attribute."));
            }
        }
        Ok(all.into_iter().filter(|(a, _)| req.attribute_names.contains(a)).collect())
    }

    /// `rendered` answers the filters the catalogue has no line for, from each type's view.
    pub fn instance_types_describe(
        &self,
        req: &rq::DescribeInstanceTypes,
        rendered: &filter::Rendered<'_, &'static InstanceTypeInfo>,
    ) -> Result<(Vec<&'static InstanceTypeInfo>, Option<String>)> {
        const NAMES: &[&str] = &[
            "instance-type",
            "vcpu-info.default-vcpus",
            "memory-info.size-in-mib",
            "current-generation",
            "free-tier-eligible",
            "burstable-performance-supported",
            "processor-info.supported-architecture",
            "supported-virtualization-type",
        ];
        filter::check_rendered(&req.filters, NAMES, false, Some(rendered.shape))?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        for t in &req.instance_types {
            if !INSTANCE_TYPES.iter().any(|i| i.name == t) {
                return Err(Error::new(
                    corral_types::ErrorCode::InvalidInstanceType,
                    format!("The following supplied instance types do not exist: [{t}]"),
                ));
            }
        }
        let items: Vec<&'static InstanceTypeInfo> = INSTANCE_TYPES
            .iter()
            .filter(|t| req.instance_types.is_empty() || req.instance_types.iter().any(|n| n == t.name))
            .filter(|t| {
                filter::matches(&req.filters, &[], |n| match n {
                    "instance-type" => vec![t.name.to_string()],
                    "vcpu-info.default-vcpus" => vec![t.vcpus.to_string()],
                    "memory-info.size-in-mib" => vec![t.memory_mib.to_string()],
                    "current-generation" => vec![t.current_generation.to_string()],
                    "free-tier-eligible" => vec![t.free_tier.to_string()],
                    "burstable-performance-supported" => vec![t.burstable.to_string()],
                    "processor-info.supported-architecture" => vec!["x86_64".into()],
                    "supported-virtualization-type" => vec!["hvm".into()],
                    other => rendered.values(t, other),
                })
            })
            .collect();
        // AWS pages the catalogue by 100 even when MaxResults is not given.
        filter::page(items, req.max_results.or(Some(100)), req.next_token.as_deref(), (5, 100))
    }
}

/// The endpoint DescribeRegions names for a region.
pub fn endpoint(region: &str) -> String {
    format!("ec2.{region}.amazonaws.com")
}

/// One row of DescribeInstanceTypeOfferings: (instance type, location type, location).
pub type Offering = (&'static str, &'static str, String);

impl Control {
    /// Every type of the catalogue is offered in the region and each of its zones.
    pub fn instance_type_offerings(&self, req: &rq::DescribeInstanceTypeOfferings) -> Result<(Vec<Offering>, Option<String>)> {
        filter::check(&req.filters, &["instance-type", "location"], false)?;
        let location_type: &'static str = match req.location_type.as_deref().unwrap_or("region") {
            "region" => "region",
            "availability-zone" => "availability-zone",
            "availability-zone-id" => "availability-zone-id",
            other => {
                return Err(Error::invalid_value(
                    "LocationType",
                    other,
                    "Valid values are region, availability-zone and availability-zone-id.",
                ))
            }
        };
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let locations: Vec<String> = match location_type {
            "region" => vec![self.config.region.clone()],
            "availability-zone" => region::zones(&self.config.region).into_iter().map(|z| z.name).collect(),
            _ => region::zones(&self.config.region).into_iter().map(|z| z.zone_id).collect(),
        };
        let items: Vec<Offering> = locations
            .iter()
            .flat_map(|l| INSTANCE_TYPES.iter().map(move |t| (t.name, location_type, l.clone())))
            .filter(|(t, _, l)| {
                filter::matches(&req.filters, &[], |n| match n {
                    "instance-type" => vec![t.to_string()],
                    "location" => vec![l.clone()],
                    _ => vec![],
                })
            })
            .collect();
        filter::page(items, req.max_results.or(Some(1000)), req.next_token.as_deref(), (5, 1000))
    }
}

/// Copies between regions are not built yet: a region other than this one is refused, with
/// `UnsupportedOperation` when it is a region at all.
pub(crate) fn same_region(param: &str, given: &str, this: &str) -> Result<()> {
    if given == this {
        Ok(())
    } else if region::aws_region(given).is_some() {
        Err(Error::new(ErrorCode::Unsupported, format!("Copying between regions ({given} to {this}) is not supported yet.")))
    } else {
        Err(Error::invalid_value(param, given, "Not a region."))
    }
}
