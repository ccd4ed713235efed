//! Volume types: the ones EC2 has, the sizes each allows, and the IOPS and throughput each
//! takes, with EC2's defaults filled in. CreateVolume, ModifyVolume and the volumes of a launch
//! are checked here.

use corral_types::{Error, ErrorCode, Result};

/// The sizes EC2 allows per volume type, in GiB.
fn size_bounds(volume_type: &str) -> (u64, u64) {
    match volume_type {
        "io1" | "io2" => (4, 16384),
        "st1" | "sc1" => (125, 16384),
        "standard" => (1, 1024),
        _ => (1, 16384),
    }
}

const VOLUME_TYPES: &[&str] = &["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];

/// Checks a volume type with its IOPS and throughput and fills in EC2's defaults.
pub(crate) fn volume_performance(
    volume_type: &str,
    size_gib: u64,
    iops: Option<i64>,
    throughput: Option<i64>,
) -> Result<(Option<i64>, Option<i64>)> {
    if !VOLUME_TYPES.contains(&volume_type) {
        return Err(Error::new(
            ErrorCode::UnknownVolumeType,
            format!("The volume type '{volume_type}' is unsupported. The supported volume types are gp2, gp3, io1, io2, st1, sc1, and standard."),
        ));
    }
    if throughput.is_some() && volume_type != "gp3" {
        return Err(Error::combination(format!("The parameter throughput is not supported for {volume_type} volumes.")));
    }
    let iops = match (volume_type, iops) {
        ("gp3", None) => Some(3000),
        ("gp3", Some(i)) if (3000..=16000).contains(&i) => Some(i),
        ("io1" | "io2", Some(i)) if (100..=64000).contains(&i) => {
            // EC2's ceiling on IOPS per GiB: 50 for io1, 500 for io2.
            let per_gib = if volume_type == "io1" { 50 } else { 500 };
            if i > per_gib * size_gib as i64 {
                return Err(Error::invalid_value(
                    "Iops",
                    &i.to_string(),
                    &format!(
                        "Iops to volume size ratio of {:.6} is too high; maximum is {per_gib}.000000",
                        i as f64 / size_gib.max(1) as f64
                    ),
                ));
            }
            Some(i)
        }
        ("gp3" | "io1" | "io2", Some(i)) => {
            return Err(Error::invalid_value(
                "Iops",
                &i.to_string(),
                &format!("The iops value is out of range for {volume_type} volumes."),
            ));
        }
        ("io1" | "io2", None) => {
            return Err(Error::combination(format!("The parameter iops must be specified for {volume_type} volumes.")))
        }
        ("gp2", None) => Some((3 * size_gib as i64).clamp(100, 16000)),
        (_, None) => None,
        (_, Some(_)) => return Err(Error::combination(format!("The parameter iops is not supported for {volume_type} volumes."))),
    };
    let throughput = match (volume_type, throughput) {
        ("gp3", None) => Some(125),
        ("gp3", Some(t)) if (125..=1000).contains(&t) => Some(t),
        ("gp3", Some(t)) => return Err(Error::invalid_value("Throughput", &t.to_string(), "Throughput must be between 125 and 1000.")),
        _ => None,
    };
    Ok((iops, throughput))
}

pub(crate) fn check_size(volume_type: &str, size: i64) -> Result<u64> {
    let (lo, hi) = size_bounds(volume_type);
    if size < lo as i64 || size > hi as i64 {
        return Err(Error::invalid_value(
            "size",
            &size.to_string(),
            &format!("Volume size must be between {lo} and {hi} GiB for {volume_type}."),
        ));
    }
    Ok(size as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn performance_defaults_and_limits() {
        assert_eq!(volume_performance("gp3", 10, None, None).unwrap(), (Some(3000), Some(125)));
        assert_eq!(volume_performance("gp2", 10, None, None).unwrap(), (Some(100), None));
        assert_eq!(volume_performance("gp2", 1000, None, None).unwrap(), (Some(3000), None));
        assert_eq!(volume_performance("io1", 10, Some(500), None).unwrap(), (Some(500), None));
        assert_eq!(volume_performance("io1", 10, None, None).unwrap_err().code, ErrorCode::InvalidParameterCombination);
        assert_eq!(volume_performance("io1", 10, Some(1000), None).unwrap_err().code, ErrorCode::InvalidParameterValue);
        assert_eq!(volume_performance("io2", 10, Some(1000), None).unwrap(), (Some(1000), None));
        assert_eq!(volume_performance("gp2", 10, None, Some(200)).unwrap_err().code, ErrorCode::InvalidParameterCombination);
        assert_eq!(volume_performance("gp3", 10, Some(100), None).unwrap_err().code, ErrorCode::InvalidParameterValue);
        assert_eq!(volume_performance("magnetic", 10, None, None).unwrap_err().code, ErrorCode::UnknownVolumeType);
    }
}
