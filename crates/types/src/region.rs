//! The regions of AWS's `aws` partition (as botocore's endpoint data names them) and their
//! availability zones, with AWS's zone ids (`use1-az1`). A cloud serves some of them (all of
//! them with the simulated hypervisor) and may serve regions of its own (`local-1`).
//!
//! Zone ids follow AWS's scheme: the region's short code (`us-east-1` → `use1`,
//! `ap-northeast-1` → `apne1`) and `-azN`. Which letter maps to which id differs per AWS
//! account; here it is fixed: the Nth zone letter is `azN`.

/// A region of the `aws` partition: its name, its zone letters, and whether an account must
/// opt in to it (regions launched after March 2019).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsRegion {
    pub name: &'static str,
    pub zones: &'static str,
    pub opt_in: bool,
}

macro_rules! regions {
    ($($name:literal $zones:literal $opt:literal;)*) => {
        /// Every region of the `aws` partition (botocore's `endpoints.json`; a conformance
        /// test compares this list with the installed botocore).
        pub const AWS_REGIONS: &[AwsRegion] = &[$(AwsRegion { name: $name, zones: $zones, opt_in: $opt },)*];
    };
}

regions! {
    "af-south-1" "abc" true;
    "ap-east-1" "abc" true;
    "ap-east-2" "abc" true;
    "ap-northeast-1" "acd" false;
    "ap-northeast-2" "abcd" false;
    "ap-northeast-3" "abc" false;
    "ap-south-1" "abc" false;
    "ap-south-2" "abc" true;
    "ap-southeast-1" "abc" false;
    "ap-southeast-2" "abc" false;
    "ap-southeast-3" "abc" true;
    "ap-southeast-4" "abc" true;
    "ap-southeast-5" "abc" true;
    "ap-southeast-6" "abc" true;
    "ap-southeast-7" "abc" true;
    "ca-central-1" "abd" false;
    "ca-west-1" "abc" true;
    "eu-central-1" "abc" false;
    "eu-central-2" "abc" true;
    "eu-north-1" "abc" false;
    "eu-south-1" "abc" true;
    "eu-south-2" "abc" true;
    "eu-west-1" "abc" false;
    "eu-west-2" "abc" false;
    "eu-west-3" "abc" false;
    "il-central-1" "abc" true;
    "me-central-1" "abc" true;
    "me-south-1" "abc" true;
    "mx-central-1" "abc" true;
    "sa-east-1" "abc" false;
    "us-east-1" "abcdef" false;
    "us-east-2" "abc" false;
    "us-west-1" "ac" false;
    "us-west-2" "abcd" false;
}

/// The catalogue entry of an AWS region.
pub fn aws_region(name: &str) -> Option<&'static AwsRegion> {
    AWS_REGIONS.iter().find(|r| r.name == name)
}

/// An availability zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub zone_id: String,
    pub region: String,
}

/// AWS's short code of a region name (`us-east-1` → `use1`, `ap-southeast-2` → `apse2`);
/// `None` for names not of the form `geo-direction-N`.
pub fn short_code(region: &str) -> Option<String> {
    let mut parts = region.split('-');
    let (geo, direction, number) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || number.parse::<u32>().is_err() {
        return None;
    }
    let dir = match direction {
        "east" => "e",
        "west" => "w",
        "north" => "n",
        "south" => "s",
        "central" => "c",
        "northeast" => "ne",
        "northwest" => "nw",
        "southeast" => "se",
        "southwest" => "sw",
        _ => return None,
    };
    Some(format!("{geo}{dir}{number}"))
}

/// The zones of a region: AWS's for a region of the catalogue, `a`, `b`, `c` otherwise.
pub fn zones(region: &str) -> Vec<Zone> {
    let letters = aws_region(region).map(|r| r.zones).unwrap_or("abc");
    let stem = short_code(region).filter(|_| aws_region(region).is_some()).unwrap_or_else(|| region.to_string());
    letters
        .chars()
        .enumerate()
        .map(|(i, l)| Zone { name: format!("{region}{l}"), zone_id: format!("{stem}-az{}", i + 1), region: region.to_string() })
        .collect()
}

/// The zone id of a zone name (`us-east-1a` → `use1-az1`), without building the region's list
/// (views ask this for every instance and subnet they render).
pub fn zone_id(zone: &str) -> Option<String> {
    let letter = zone.chars().last()?;
    let region = zone.get(..zone.len().checked_sub(1)?)?;
    match aws_region(region) {
        Some(r) => {
            let n = r.zones.chars().position(|l| l == letter)? + 1;
            Some(format!("{}-az{n}", short_code(region)?))
        }
        None => {
            let n = "abc".chars().position(|l| l == letter)? + 1;
            Some(format!("{region}-az{n}"))
        }
    }
}

/// The zone name of a zone id in `region`.
pub fn zone_by_id(region: &str, zone_id: &str) -> Option<String> {
    zones(region).into_iter().find(|z| z.zone_id == zone_id).map(|z| z.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_as_aws_writes_them() {
        let z = zones("us-east-1");
        assert_eq!(z.len(), 6);
        assert_eq!((z[0].name.as_str(), z[0].zone_id.as_str()), ("us-east-1a", "use1-az1"));
        assert_eq!(zones("ap-northeast-1")[1].zone_id, "apne1-az2");
        assert_eq!(zone_id("ap-northeast-1c").as_deref(), Some("apne1-az2"));
        assert_eq!(zone_by_id("us-west-2", "usw2-az4").as_deref(), Some("us-west-2d"));
        assert_eq!(zone_id("us-east-1z"), None);
        assert_eq!(zones("eu-central-2")[0].zone_id, "euc2-az1");
        assert_eq!(zones("local-1")[2], Zone { name: "local-1c".into(), zone_id: "local-1-az3".into(), region: "local-1".into() });
        for r in AWS_REGIONS {
            assert!(short_code(r.name).is_some(), "{}", r.name);
        }
    }
}
