//! The instance type catalogue: familiar EC2 names with their vCPUs and memory. RunInstances
//! sizes the VM from here, DescribeInstanceTypes lists it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceTypeInfo {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub burstable: bool,
    pub free_tier: bool,
}

const fn t(name: &'static str, vcpus: u32, memory_mib: u64, burstable: bool, free_tier: bool) -> InstanceTypeInfo {
    InstanceTypeInfo { name, vcpus, memory_mib, burstable, free_tier }
}

/// Sizes are AWS's published figures for these types.
pub const INSTANCE_TYPES: &[InstanceTypeInfo] = &[
    t("t2.nano", 1, 512, true, false),
    t("t2.micro", 1, 1024, true, true),
    t("t2.small", 1, 2048, true, false),
    t("t2.medium", 2, 4096, true, false),
    t("t3.nano", 2, 512, true, false),
    t("t3.micro", 2, 1024, true, true),
    t("t3.small", 2, 2048, true, false),
    t("t3.medium", 2, 4096, true, false),
    t("t3.large", 2, 8192, true, false),
    t("t3.xlarge", 4, 16384, true, false),
    t("t3.2xlarge", 8, 32768, true, false),
    t("m5.large", 2, 8192, false, false),
    t("m5.xlarge", 4, 16384, false, false),
    t("m5.2xlarge", 8, 32768, false, false),
    t("c5.large", 2, 4096, false, false),
    t("c5.xlarge", 4, 8192, false, false),
    t("c5.2xlarge", 8, 16384, false, false),
    t("r5.large", 2, 16384, false, false),
    t("r5.xlarge", 4, 32768, false, false),
];

/// AWS's default when RunInstances names no type.
pub const DEFAULT_INSTANCE_TYPE: &str = "m1.small";
/// What we launch when no type is given: m1.small is not in our catalogue, so we pick the
/// closest current-generation type.
pub const FALLBACK_INSTANCE_TYPE: &str = "t3.micro";

pub fn instance_type(name: &str) -> Option<&'static InstanceTypeInfo> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup() {
        assert_eq!(instance_type("t3.nano").unwrap().memory_mib, 512);
        assert_eq!(instance_type("m5.2xlarge").unwrap().vcpus, 8);
        assert!(instance_type("x9.huge").is_none());
        assert!(instance_type(FALLBACK_INSTANCE_TYPE).is_some());
        let _ = DEFAULT_INSTANCE_TYPE;
    }
}
