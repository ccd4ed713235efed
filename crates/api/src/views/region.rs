//! Regions, zones, account attributes, instance types.

use corral_control::region::{RegionView, Zone};
use corral_types::InstanceTypeInfo;
use serde_json::{json, Value};

pub fn regions(regions: &[RegionView]) -> Value {
    let items: Vec<Value> = regions
        .iter()
        .map(|r| json!({"RegionName": r.name, "Endpoint": corral_control::region::endpoint(&r.name), "OptInStatus": r.opt_in_status}))
        .collect();
    json!({ "Regions": items })
}

pub fn zones(zones: &[Zone]) -> Value {
    let items: Vec<Value> = zones
        .iter()
        .map(|z| {
            json!({
                "State": "available",
                "OptInStatus": "opt-in-not-required",
                "Messages": [],
                "RegionName": z.region,
                "ZoneName": z.name,
                "ZoneId": z.zone_id,
                "GroupName": z.region,
                "NetworkBorderGroup": z.region,
                "ZoneType": "availability-zone",
            })
        })
        .collect();
    json!({ "AvailabilityZones": items })
}

pub fn account_attributes(attrs: &[(String, Vec<String>)]) -> Value {
    let items: Vec<Value> = attrs
        .iter()
        .map(|(n, vals)| {
            json!({
                "AttributeName": n,
                "AttributeValues": vals.iter().map(|v| json!({"AttributeValue": v})).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "AccountAttributes": items })
}

pub fn instance_types(types: &[&InstanceTypeInfo], next: Option<String>) -> Value {
    let items: Vec<Value> = types.iter().map(|t| instance_type(t)).collect();
    super::with_next(json!({ "InstanceTypes": items }), next)
}

/// One entry of DescribeInstanceTypes.
pub fn instance_type(t: &InstanceTypeInfo) -> Value {
    let threads = if t.vcpus > 1 { 2 } else { 1 };
    json!({
        "InstanceType": t.name,
        "CurrentGeneration": t.current_generation,
        "FreeTierEligible": t.free_tier,
        "SupportedUsageClasses": ["on-demand"],
        "SupportedRootDeviceTypes": ["ebs"],
        "SupportedVirtualizationTypes": ["hvm"],
        "BareMetal": t.name.ends_with(".metal") || t.name.contains(".metal-"),
        "Hypervisor": "nitro",
        "ProcessorInfo": {"SupportedArchitectures": ["x86_64"], "SustainedClockSpeedInGhz": 2.5},
        "VCpuInfo": {
            "DefaultVCpus": t.vcpus,
            "DefaultCores": t.vcpus / threads,
            "DefaultThreadsPerCore": threads,
            // Any core count up to the default, with or without hyperthreading.
            "ValidCores": (1..=t.vcpus / threads).collect::<Vec<_>>(),
            "ValidThreadsPerCore": (1..=threads).collect::<Vec<_>>(),
        },
        "MemoryInfo": {"SizeInMiB": t.memory_mib},
        "InstanceStorageSupported": false,
        "EbsInfo": {"EbsOptimizedSupport": "default", "EncryptionSupport": "supported", "NvmeSupport": "required"},
        "NetworkInfo": {
            "NetworkPerformance": "Up to 5 Gigabit",
            "MaximumNetworkInterfaces": 2,
            "Ipv4AddressesPerInterface": 2,
            "Ipv6AddressesPerInterface": 0,
            "Ipv6Supported": false,
            "EnaSupport": "required",
        },
        "PlacementGroupInfo": {"SupportedStrategies": ["partition", "spread"]},
        "HibernationSupported": false,
        "BurstablePerformanceSupported": t.burstable,
        "DedicatedHostsSupported": false,
        "AutoRecoverySupported": true,
        "SupportedBootModes": ["legacy-bios"],
    })
}

pub fn instance_type_offerings(items: &[corral_control::region::Offering], next: Option<String>) -> Value {
    let v: Vec<Value> = items.iter().map(|(t, lt, l)| json!({"InstanceType": t, "LocationType": lt, "Location": l})).collect();
    super::with_next(json!({ "InstanceTypeOfferings": v }), next)
}
