//! Instance responses: reservations, state changes, statuses, console output, attributes.

use corral_control::{Instance, Reservation, StateChange};
use corral_types::InstanceState;
use serde_json::{json, Value};

fn state(s: InstanceState) -> Value {
    json!({"Code": s.code(), "Name": s.name()})
}

pub fn metadata_options(m: &corral_store::MetadataOptions, state: &str) -> Value {
    json!({
        "State": state,
        "HttpTokens": m.http_tokens,
        "HttpPutResponseHopLimit": m.hop_limit,
        "HttpEndpoint": m.http_endpoint,
        "HttpProtocolIpv6": "disabled",
        "InstanceMetadataTags": m.instance_metadata_tags,
    })
}

pub fn instance(i: &Instance, owner: &str, region: &str) -> Value {
    let r = &i.rec;
    let threads = if r.vcpus > 1 { 2 } else { 1 };
    let mut v = json!({
        "InstanceId": r.instance_id,
        "ImageId": r.image_id,
        "PrivateDnsName": "",
        "PublicDnsName": "",
        "StateTransitionReason": r.state_transition_reason,
        "AmiLaunchIndex": r.ami_launch_index,
        "ProductCodes": [],
        "InstanceType": r.instance_type,
        "LaunchTime": r.launch_time,
        "Placement": {
            "AvailabilityZone": r.availability_zone,
            "AvailabilityZoneId": corral_types::region::zone_id(&r.availability_zone),
            "GroupName": "",
            "Tenancy": "default",
        },
        "Monitoring": {"State": r.options.monitoring},
        "Architecture": "x86_64",
        "RootDeviceType": "ebs",
        "RootDeviceName": i.root_device_name,
        "VirtualizationType": "hvm",
        "ClientToken": r.client_token.clone().unwrap_or_default(),
        "SourceDestCheck": i.enis.iter().find(|e| e.device_index == 0).is_none_or(|e| e.source_dest_check),
        "Hypervisor": "xen",
        "EbsOptimized": r.options.ebs_optimized,
        "EnaSupport": true,
        "CpuOptions": {"CoreCount": (r.vcpus / threads).max(1), "ThreadsPerCore": threads},
        "CapacityReservationSpecification": {"CapacityReservationPreference": "open"},
        "HibernationOptions": {"Configured": false},
        "EnclaveOptions": {"Enabled": false},
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "UsageOperationUpdateTime": r.launch_time,
        "MaintenanceOptions": {"AutoRecovery": "default"},
        "CurrentInstanceBootMode": "legacy-bios",
    });
    // Values built elsewhere are moved in: json! would copy each through serde, and copy the
    // copies again at every level of a listing.
    v["State"] = state(r.state);
    v["BlockDeviceMappings"] = super::storage::instance_mappings(&i.volumes);
    v["Tags"] = super::tags(&i.tags);
    v["SecurityGroups"] = Value::Array(i.groups.iter().map(|(id, name)| json!({"GroupId": id, "GroupName": name})).collect());
    v["NetworkInterfaces"] = Value::Array(i.enis.iter().map(|e| super::network::instance_interface(e, &i.groups, owner, region)).collect());
    v["MetadataOptions"] = metadata_options(&r.metadata, "applied");
    if let Some(e) = i.enis.first() {
        v["VpcId"] = json!(e.vpc_id);
        v["SubnetId"] = json!(e.subnet_id);
        v["PrivateIpAddress"] = json!(e.private_ip);
        v["PrivateDnsName"] = json!(e.private_dns_name);
        if let Some(ip) = &e.public_ip {
            v["PublicIpAddress"] = json!(ip);
            v["PublicDnsName"] = json!(super::network::public_dns_name(ip, region));
        }
    }
    if let Some(k) = &r.key_name {
        v["KeyName"] = json!(k);
    }
    if let (Some(code), Some(message)) = (&r.state_reason_code, &r.state_reason_message) {
        v["StateReason"] = json!({"Code": code, "Message": message});
    }
    v
}

fn reservation_value(r: &Reservation, region: &str) -> Value {
    let mut v = json!({ "ReservationId": r.reservation_id, "OwnerId": r.owner_id, "Groups": [] });
    v["Instances"] = Value::Array(r.instances.iter().map(|i| instance(i, &r.owner_id, region)).collect());
    v
}

/// RunInstances answers with the reservation itself.
pub fn reservation(r: &Reservation, region: &str) -> Value {
    reservation_value(r, region)
}

pub fn describe(rs: &[Reservation], region: &str, next: Option<String>) -> Value {
    let mut v = json!({});
    v["Reservations"] = Value::Array(rs.iter().map(|r| reservation_value(r, region)).collect());
    super::with_next(v, next)
}

pub fn state_changes(member: &str, changes: &[StateChange]) -> Value {
    let items: Vec<Value> = changes
        .iter()
        .map(|c| json!({"InstanceId": c.instance_id, "PreviousState": state(c.previous), "CurrentState": state(c.current)}))
        .collect();
    json!({ member: items })
}

pub fn statuses(items: &[Instance], next: Option<String>) -> Value {
    let out: Vec<Value> = items.iter().map(status).collect();
    super::with_next(json!({ "InstanceStatuses": out }), next)
}

/// One entry of DescribeInstanceStatus.
pub fn status(i: &Instance) -> Value {
    let (status, detail) = match i.rec.state {
        InstanceState::Running => ("ok", "passed"),
        InstanceState::Pending => ("initializing", "initializing"),
        _ => ("not-applicable", "not-applicable"),
    };
    let check = json!({"Status": status, "Details": [{"Name": "reachability", "Status": detail}]});
    json!({
        "InstanceId": i.rec.instance_id,
        "AvailabilityZone": i.rec.availability_zone,
        "InstanceState": state(i.rec.state),
        "InstanceStatus": check,
        "SystemStatus": check,
        "Events": [],
    })
}

pub fn console(id: &str, bytes: &[u8], ts: &str) -> Value {
    use base64::Engine;
    json!({
        "InstanceId": id,
        "Timestamp": ts,
        "Output": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

/// DescribeInstanceAttribute's answer: the instance id and the one attribute asked for.
pub fn attribute(i: &Instance, attr: &str) -> Value {
    let r = &i.rec;
    let primary = i.enis.iter().find(|e| e.device_index == 0);
    let (member, value) = match attr {
        "instanceType" => ("InstanceType", json!({"Value": r.instance_type})),
        "userData" => ("UserData", r.user_data.as_ref().map_or(json!({}), |u| json!({"Value": u}))),
        "disableApiTermination" => ("DisableApiTermination", json!({"Value": r.disable_api_termination})),
        "instanceInitiatedShutdownBehavior" => ("InstanceInitiatedShutdownBehavior", json!({"Value": r.shutdown_behavior})),
        "disableApiStop" => ("DisableApiStop", json!({"Value": r.options.disable_api_stop})),
        "rootDeviceName" => ("RootDeviceName", json!({"Value": i.root_device_name})),
        "kernel" => ("KernelId", json!({})),
        "ramdisk" => ("RamdiskId", json!({})),
        "blockDeviceMapping" => ("BlockDeviceMappings", super::storage::instance_mappings(&i.volumes)),
        "productCodes" => ("ProductCodes", json!([])),
        // The instance's check is its primary interface's.
        "sourceDestCheck" => ("SourceDestCheck", json!({"Value": primary.is_none_or(|e| e.source_dest_check)})),
        "groupSet" => ("Groups", json!(i.groups.iter().map(|(id, name)| json!({"GroupId": id, "GroupName": name})).collect::<Vec<_>>())),
        "ebsOptimized" => ("EbsOptimized", json!({"Value": r.options.ebs_optimized})),
        "sriovNetSupport" => ("SriovNetSupport", json!({"Value": "simple"})),
        "enaSupport" => ("EnaSupport", json!({"Value": true})),
        // The control plane admits only the attributes above.
        _ => ("EnclaveOptions", json!({"Enabled": false})),
    };
    let mut v = json!({ "InstanceId": r.instance_id });
    v[member] = value;
    v
}

pub fn credit_specifications(items: &[(String, String)], next: Option<String>) -> Value {
    let v: Vec<Value> = items.iter().map(|(id, c)| json!({"InstanceId": id, "CpuCredits": c})).collect();
    super::with_next(json!({ "InstanceCreditSpecifications": v }), next)
}

pub fn credit_modified(ok: &[String], failed: &[(String, String, String)]) -> Value {
    json!({
        "SuccessfulInstanceCreditSpecifications": ok.iter().map(|id| json!({"InstanceId": id})).collect::<Vec<_>>(),
        "UnsuccessfulInstanceCreditSpecifications": failed
            .iter()
            .map(|(id, code, message)| json!({"InstanceId": id, "Error": {"Code": code, "Message": message}}))
            .collect::<Vec<_>>(),
    })
}

pub fn monitorings(items: &[(String, String)]) -> Value {
    let v: Vec<Value> = items.iter().map(|(id, state)| json!({"InstanceId": id, "Monitoring": {"State": state}})).collect();
    json!({ "InstanceMonitorings": v })
}

/// A placement group (`PlacementGroup` in the model).
pub fn placement_group(g: &corral_control::placement_group::PlacementGroup, region: &str, account: &str) -> Value {
    let mut out = json!({
        "GroupName": g.rec.group_name,
        "GroupId": g.rec.group_id,
        "GroupArn": corral_control::placement_group::arn(g, region, account),
        "State": "available",
        "Strategy": g.rec.strategy,
        "Tags": super::tags(&g.tags),
    });
    if let Some(n) = g.rec.partition_count {
        out["PartitionCount"] = json!(n);
    }
    if let Some(l) = &g.rec.spread_level {
        out["SpreadLevel"] = json!(l);
    }
    out
}
