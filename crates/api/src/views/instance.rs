//! Instance responses: reservations, state changes, statuses, console output, attributes.

use super::instance_cache::Held;
use corral_control::{Instance, Reservation, StateChange};
use corral_ec2_query::write::{self, Fragment, Obj};
use corral_ec2_query::EncodeError;
use corral_types::InstanceState;
use serde_json::{json, Value};

fn state(s: InstanceState) -> Value {
    json!({"Code": s.code(), "Name": s.name()})
}

fn write_state(o: &mut Obj<'_>, s: InstanceState) {
    o.int("Code", s.code().into()).str("Name", s.name());
}

fn write_metadata_options(o: &mut Obj<'_>, m: &corral_store::MetadataOptions, state: &str) {
    o.str("State", state)
        .str("HttpTokens", &m.http_tokens)
        .int("HttpPutResponseHopLimit", m.hop_limit.into())
        .str("HttpEndpoint", &m.http_endpoint)
        .str("HttpProtocolIpv6", "disabled")
        .str("InstanceMetadataTags", &m.instance_metadata_tags);
}

pub fn metadata_options(m: &corral_store::MetadataOptions, state: &str) -> Result<Value, EncodeError> {
    write::value("InstanceMetadataOptionsResponse", |o| write_metadata_options(o, m, state))
}

/// One instance, as DescribeInstances and RunInstances show it.
pub fn instance(o: &mut Obj<'_>, i: &Instance, owner: &str, region: &str) {
    let r = &i.rec;
    let threads = if r.vcpus > 1 { 2 } else { 1 };
    let primary = i.enis.first();
    let public_ip = primary.and_then(|e| e.public_ip.as_deref());
    let public_dns = public_ip.map(|ip| super::network::public_dns_name(ip, region));
    let zone_id = corral_types::region::zone_id(&r.availability_zone);
    o.str("InstanceId", &r.instance_id)
        .str("ImageId", &r.image_id)
        .obj("State", |s| write_state(s, r.state))
        .str("PrivateDnsName", primary.map_or("", |e| &e.private_dns_name))
        .str("PublicDnsName", public_dns.as_deref().unwrap_or(""))
        .str("StateTransitionReason", &r.state_transition_reason)
        .int("AmiLaunchIndex", r.ami_launch_index.into())
        .empty("ProductCodes")
        .str("InstanceType", &r.instance_type)
        .str("LaunchTime", &r.launch_time)
        .obj("Placement", |p| {
            p.str("AvailabilityZone", &r.availability_zone)
                .opt_str("AvailabilityZoneId", zone_id.as_deref())
                .str("GroupName", "")
                .str("Tenancy", "default");
        })
        .obj("Monitoring", |m| {
            m.str("State", &r.options.monitoring);
        })
        .str("Architecture", "x86_64")
        .str("RootDeviceType", "ebs")
        .str("RootDeviceName", &i.root_device_name)
        .str("VirtualizationType", "hvm")
        .str("ClientToken", r.client_token.as_deref().unwrap_or(""))
        .bool("SourceDestCheck", i.enis.iter().find(|e| e.device_index == 0).is_none_or(|e| e.source_dest_check))
        .str("Hypervisor", "xen")
        .bool("EbsOptimized", r.options.ebs_optimized)
        .bool("EnaSupport", true)
        .obj("CpuOptions", |c| {
            c.int("CoreCount", (r.vcpus / threads).max(1).into()).int("ThreadsPerCore", threads.into());
        })
        .obj("CapacityReservationSpecification", |c| {
            c.str("CapacityReservationPreference", "open");
        })
        .obj("HibernationOptions", |h| {
            h.bool("Configured", false);
        })
        .obj("EnclaveOptions", |e| {
            e.bool("Enabled", false);
        })
        .str("PlatformDetails", "Linux/UNIX")
        .str("UsageOperation", "RunInstances")
        .str("UsageOperationUpdateTime", &r.launch_time)
        .obj("MaintenanceOptions", |m| {
            m.str("AutoRecovery", "default");
        })
        .str("CurrentInstanceBootMode", "legacy-bios")
        .list("SecurityGroups", &i.groups, |g, (id, name)| {
            g.str("GroupId", id).str("GroupName", name);
        })
        .list("NetworkInterfaces", &i.enis, |n, e| super::network::instance_interface(n, e, &i.groups, owner, region))
        .obj("MetadataOptions", |m| write_metadata_options(m, &r.metadata, "applied"))
        .opt_str("KeyName", r.key_name.as_deref());
    super::storage::instance_mappings(o, &i.volumes);
    super::write_tags(o, "Tags", &i.tags);
    if let Some(e) = primary {
        o.str("VpcId", &e.vpc_id)
            .str("SubnetId", &e.subnet_id)
            .str("PrivateIpAddress", &e.private_ip)
            .opt_str("PublicIpAddress", public_ip);
    }
    if let (Some(code), Some(message)) = (&r.state_reason_code, &r.state_reason_message) {
        o.obj("StateReason", |s| {
            s.str("Code", code).str("Message", message);
        });
    }
}

/// An instance as the filters answered from its rendering see it.
pub fn instance_value(i: &Instance, owner: &str, region: &str) -> Value {
    // An error here is one in `instance`, which every DescribeInstances response reports.
    write::value("Instance", |o| instance(o, i, owner, region)).unwrap_or(Value::Null)
}

/// A reservation's own members, before its instances.
fn reservation_head<'o, 'a>(o: &'o mut Obj<'a>, r: &Reservation) -> &'o mut Obj<'a> {
    o.str("ReservationId", &r.reservation_id).str("OwnerId", &r.owner_id).empty("Groups")
}

fn write_reservation(o: &mut Obj<'_>, r: &Reservation, region: &str) {
    reservation_head(o, r).list("Instances", &r.instances, |o, i| instance(o, i, &r.owner_id, region));
}

/// RunInstances answers with the reservation itself.
pub fn reservation(r: &Reservation, region: &str) -> Result<Value, EncodeError> {
    write::value("Reservation", |o| write_reservation(o, r, region))
}

/// DescribeInstances, written straight into its XML response, each instance from its
/// rendering (`held`'s, or written now and kept).
pub fn describe(request_id: &str, rs: &[Reservation], held: &Held<'_>, next: Option<String>) -> Result<String, EncodeError> {
    let renderings: Vec<Vec<Fragment>> =
        rs.iter().map(|r| r.instances.iter().map(|i| held.rendering(i)).collect()).collect::<Result<_, _>>()?;
    write::response("DescribeInstances", request_id, |o| {
        o.list("Reservations", rs.iter().zip(&renderings), |o, (r, fragments)| {
            reservation_head(o, r).list("Instances", fragments, |o, f| {
                o.fragment(f);
            });
        })
        .opt_str("NextToken", next.as_deref());
    })
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
        "blockDeviceMapping" => {
            return write::value("InstanceAttribute", |o| {
                o.str("InstanceId", &r.instance_id);
                super::storage::instance_mappings(o, &i.volumes);
            })
            .unwrap_or(Value::Null)
        }
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
