//! Quotas: AWS's default limits per region, each with the error code AWS answers when a call
//! would pass it. An operator changes them with `corral serve --limit NAME=N`; this table is
//! the one list of names (README.md shows it).

use corral_types::{Error, ErrorCode, Result};
use std::collections::BTreeMap;

/// One quota: its operator-facing name, AWS's default, AWS's error code, and what it counts.
#[derive(Debug, Clone, Copy)]
pub struct QuotaInfo {
    pub name: &'static str,
    pub default: u64,
    pub code: &'static str,
    pub counts: &'static str,
}

/// Every quota, with AWS's defaults (Amazon VPC and EC2 service quotas).
pub const QUOTAS: &[QuotaInfo] = &[
    QuotaInfo { name: "elastic-ips", default: 5, code: "AddressLimitExceeded", counts: "Elastic IP addresses per region" },
    QuotaInfo { name: "vpcs", default: 5, code: "VpcLimitExceeded", counts: "VPCs per region, the default VPC included" },
    QuotaInfo { name: "subnets-per-vpc", default: 200, code: "SubnetLimitExceeded", counts: "subnets per VPC" },
    QuotaInfo { name: "internet-gateways", default: 5, code: "InternetGatewayLimitExceeded", counts: "internet gateways per region" },
    QuotaInfo { name: "route-tables-per-vpc", default: 200, code: "RouteTableLimitExceeded", counts: "route tables per VPC" },
    QuotaInfo { name: "routes-per-table", default: 50, code: "RouteLimitExceeded", counts: "routes per route table (local route aside)" },
    QuotaInfo { name: "security-groups", default: 2500, code: "SecurityGroupLimitExceeded", counts: "security groups per region" },
    QuotaInfo {
        name: "rules-per-group",
        default: 60,
        code: "RulesPerSecurityGroupLimitExceeded",
        counts: "inbound rules per security group, and outbound rules per security group",
    },
    QuotaInfo { name: "tags-per-resource", default: 50, code: "TagLimitExceeded", counts: "tags per resource" },
];

/// The quotas in force: AWS's defaults, changed by the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotas {
    set: BTreeMap<&'static str, u64>,
}

impl Quotas {
    /// Parses `NAME=N` settings (`--limit`), refusing unknown names.
    pub fn parse(settings: &[String]) -> std::result::Result<Quotas, String> {
        let mut q = Quotas::default();
        for s in settings.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = s.split_once('=').ok_or_else(|| format!("--limit {s}: expected NAME=N"))?;
            let info = QUOTAS.iter().find(|i| i.name == name.trim()).ok_or_else(|| {
                format!(
                    "--limit {s}: no limit named {name}; the names are {}",
                    QUOTAS.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")
                )
            })?;
            let n = value.trim().parse::<u64>().map_err(|_| format!("--limit {s}: {value} is not a number"))?;
            q.set.insert(info.name, n);
        }
        Ok(q)
    }

    pub fn get(&self, name: &str) -> u64 {
        let info = info(name);
        self.set.get(info.name).copied().unwrap_or(info.default)
    }

    /// Refuses a call that would make `count` pass the quota `name`.
    pub fn check(&self, name: &str, count: usize) -> Result<()> {
        let limit = self.get(name);
        if count as u64 > limit {
            let info = info(name);
            return Err(Error::new(
                ErrorCode::LimitExceeded(info.code),
                format!("The maximum number of {} ({limit}) has been reached.", info.counts),
            ));
        }
        Ok(())
    }
}

fn info(name: &str) -> &'static QuotaInfo {
    QUOTAS.iter().find(|i| i.name == name).unwrap_or_else(|| panic!("quota {name} is in QUOTAS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md's quota table is this table.
    #[test]
    fn readme_lists_every_quota() {
        let readme = include_str!("../../../README.md");
        let rows: Vec<(String, String, String)> = readme
            .lines()
            .skip_while(|l| !l.starts_with("**Quotas**"))
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_string(), cells[2].to_string(), cells[3].to_string())
            })
            .collect();
        let want: Vec<(String, String, String)> =
            QUOTAS.iter().map(|q| (q.name.to_string(), q.default.to_string(), q.code.to_string())).collect();
        assert_eq!(rows[..want.len().min(rows.len())], want[..], "README.md's quota table drifted from QUOTAS");
    }

    #[test]
    fn defaults_settings_and_errors() {
        let q = Quotas::parse(&["vpcs=2, elastic-ips=1".into(), "rules-per-group=3".into()]).unwrap();
        assert_eq!((q.get("vpcs"), q.get("elastic-ips"), q.get("rules-per-group"), q.get("subnets-per-vpc")), (2, 1, 3, 200));
        assert!(q.check("vpcs", 2).is_ok());
        let e = q.check("vpcs", 3).unwrap_err();
        assert_eq!(e.code, ErrorCode::LimitExceeded("VpcLimitExceeded"));
        assert!(Quotas::parse(&["cats=3".into()]).unwrap_err().contains("vpcs"));
        assert!(Quotas::parse(&["vpcs=many".into()]).is_err());
        assert!(Quotas::parse(&["vpcs".into()]).is_err());
    }
}
