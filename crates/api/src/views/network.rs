//! VPC, subnet, security group and network interface responses.

use corral_control::eni::NetworkInterface;
use corral_control::filter::Tagged;
use corral_control::security_group::{RuleChange, SecurityGroup};
use corral_control::subnet::Subnet;
use corral_control::vpc::Vpc;
use corral_ec2_query::write::{self, Obj};
use corral_ec2_query::EncodeError;
use corral_store::{EniRecord, SgRule, VpcRecord};
use serde_json::{json, Value};

pub fn vpc(v: &Vpc, owner: &str) -> Value {
    let r = &v.rec;
    json!({
        "VpcId": r.vpc_id,
        "CidrBlock": r.cidr,
        "State": r.state,
        "DhcpOptionsId": "default",
        "InstanceTenancy": r.instance_tenancy,
        "IsDefault": r.is_default,
        "OwnerId": owner,
        "CidrBlockAssociationSet": [{
            "AssociationId": format!("vpc-cidr-assoc-{}", &r.vpc_id[4..]),
            "CidrBlock": r.cidr,
            "CidrBlockState": {"State": "associated"},
        }],
        "Ipv6CidrBlockAssociationSet": [],
        "Tags": super::tags(&v.tags),
    })
}

pub fn vpcs(vs: &[Vpc], owner: &str, next: Option<String>) -> Value {
    super::with_next(json!({"Vpcs": vs.iter().map(|v| vpc(v, owner)).collect::<Vec<_>>()}), next)
}

pub fn vpc_attribute(v: &VpcRecord, attr: &str) -> Value {
    let mut out = json!({"VpcId": v.vpc_id});
    match attr {
        "enableDnsSupport" => out["EnableDnsSupport"] = json!({"Value": v.enable_dns_support}),
        "enableDnsHostnames" => out["EnableDnsHostnames"] = json!({"Value": v.enable_dns_hostnames}),
        _ => out["EnableNetworkAddressUsageMetrics"] = json!({"Value": v.enable_network_address_usage_metrics}),
    }
    out
}

pub fn subnet(s: &Subnet, owner: &str, region: &str) -> Value {
    let r = &s.rec;
    json!({
        "SubnetId": r.subnet_id,
        "VpcId": r.vpc_id,
        "CidrBlock": r.cidr,
        "State": r.state,
        "AvailabilityZone": r.availability_zone,
        "AvailabilityZoneId": corral_types::region::zone_id(&r.availability_zone).unwrap_or_default(),
        "AvailableIpAddressCount": s.available_ips,
        "DefaultForAz": r.default_for_az,
        "MapPublicIpOnLaunch": r.map_public_ip_on_launch,
        "MapCustomerOwnedIpOnLaunch": false,
        "AssignIpv6AddressOnCreation": false,
        "Ipv6CidrBlockAssociationSet": [],
        "EnableDns64": false,
        "Ipv6Native": false,
        "OwnerId": owner,
        "SubnetArn": format!("arn:aws:ec2:{region}:{owner}:subnet/{}", r.subnet_id),
        "PrivateDnsNameOptionsOnLaunch": {
            "HostnameType": r.private_dns_hostname_type,
            "EnableResourceNameDnsARecord": r.enable_resource_name_dns_a_record,
            "EnableResourceNameDnsAAAARecord": false,
        },
        "Tags": super::tags(&s.tags),
    })
}

pub fn subnets(ss: &[Subnet], owner: &str, region: &str, next: Option<String>) -> Value {
    super::with_next(json!({"Subnets": ss.iter().map(|s| subnet(s, owner, region)).collect::<Vec<_>>()}), next)
}

/// Rules grouped into IpPermissions by protocol and ports, as DescribeSecurityGroups shows them.
fn permissions<'a>(rules: impl Iterator<Item = &'a SgRule>, owner: &str) -> Value {
    /// (protocol, from, to, ip ranges, group pairs)
    type Permission = (String, i64, i64, Vec<Value>, Vec<Value>);
    let mut perms: Vec<Permission> = Vec::new();
    for r in rules {
        let idx = match perms.iter().position(|p| p.0 == r.ip_protocol && p.1 == r.from_port && p.2 == r.to_port) {
            Some(i) => i,
            None => {
                perms.push((r.ip_protocol.clone(), r.from_port, r.to_port, vec![], vec![]));
                perms.len() - 1
            }
        };
        if let Some(c) = &r.cidr_ipv4 {
            let mut v = json!({"CidrIp": c});
            if let Some(d) = &r.description {
                v["Description"] = json!(d);
            }
            perms[idx].3.push(v);
        }
        if let Some(g) = &r.referenced_group_id {
            let mut v = json!({"GroupId": g, "UserId": owner});
            if let Some(d) = &r.description {
                v["Description"] = json!(d);
            }
            perms[idx].4.push(v);
        }
    }
    Value::Array(
        perms
            .into_iter()
            .map(|(proto, from, to, ranges, pairs)| {
                let mut v = json!({
                    "IpProtocol": proto,
                    "IpRanges": ranges,
                    "Ipv6Ranges": [],
                    "PrefixListIds": [],
                    "UserIdGroupPairs": pairs,
                });
                if proto != "-1" {
                    v["FromPort"] = json!(from);
                    v["ToPort"] = json!(to);
                }
                v
            })
            .collect(),
    )
}

pub fn security_groups(gs: &[SecurityGroup], owner: &str, region: &str, next: Option<String>) -> Value {
    let items: Vec<Value> = gs
        .iter()
        .map(|g| {
            let r = &g.rec;
            json!({
                "GroupId": r.group_id,
                "GroupName": r.group_name,
                "Description": r.description,
                "VpcId": r.vpc_id,
                "OwnerId": owner,
                "SecurityGroupArn": format!("arn:aws:ec2:{region}:{owner}:security-group/{}", r.group_id),
                "IpPermissions": permissions(r.rules.iter().filter(|x| !x.is_egress), owner),
                "IpPermissionsEgress": permissions(r.rules.iter().filter(|x| x.is_egress), owner),
                "Tags": super::tags(&g.tags),
            })
        })
        .collect();
    super::with_next(json!({"SecurityGroups": items}), next)
}

pub fn rule(group_id: &str, r: &SgRule, owner: &str, region: &str) -> Value {
    let mut v = json!({
        "SecurityGroupRuleId": r.rule_id,
        "GroupId": group_id,
        "GroupOwnerId": owner,
        "IsEgress": r.is_egress,
        "IpProtocol": r.ip_protocol,
        "FromPort": r.from_port,
        "ToPort": r.to_port,
        "SecurityGroupRuleArn": format!("arn:aws:ec2:{region}:{owner}:security-group-rule/{}", r.rule_id),
        "Tags": [],
    });
    if let Some(c) = &r.cidr_ipv4 {
        v["CidrIpv4"] = json!(c);
    }
    if let Some(g) = &r.referenced_group_id {
        v["ReferencedGroupInfo"] = json!({"GroupId": g, "UserId": owner});
    }
    if let Some(d) = &r.description {
        v["Description"] = json!(d);
    }
    v
}

pub fn rules(items: &[Tagged<(String, SgRule)>], owner: &str, region: &str, next: Option<String>) -> Value {
    let views: Vec<Value> = items
        .iter()
        .map(|((g, r), t)| {
            let mut v = rule(g, r, owner, region);
            v["Tags"] = super::tags(t);
            v
        })
        .collect();
    super::with_next(json!({ "SecurityGroupRules": views }), next)
}

pub fn authorized(c: &RuleChange, owner: &str, region: &str) -> Value {
    json!({"Return": true, "SecurityGroupRules": c.rules.iter().map(|r| rule(&c.group_id, r, owner, region)).collect::<Vec<_>>()})
}

pub fn revoked(c: &RuleChange) -> Value {
    let items: Vec<Value> = c
        .rules
        .iter()
        .map(|r| {
            let mut v = json!({
                "SecurityGroupRuleId": r.rule_id,
                "GroupId": c.group_id,
                "IsEgress": r.is_egress,
                "IpProtocol": r.ip_protocol,
                "FromPort": r.from_port,
                "ToPort": r.to_port,
            });
            if let Some(x) = &r.cidr_ipv4 {
                v["CidrIpv4"] = json!(x);
            }
            if let Some(x) = &r.referenced_group_id {
                v["ReferencedGroupId"] = json!(x);
            }
            v
        })
        .collect();
    json!({"Return": true, "RevokedSecurityGroupRules": items})
}

/// What DescribeInstances and DescribeNetworkInterfaces both say about an interface (each
/// under its own shape: `InstanceNetworkInterface` or `NetworkInterface`).
fn interface_base(o: &mut Obj<'_>, e: &EniRecord, g: &[(String, String)], owner: &str, region: &str) {
    let public_dns = e.public_ip.as_deref().map(|ip| public_dns_name(ip, region));
    let association = |a: &mut Obj<'_>| {
        a.opt_str("PublicIp", e.public_ip.as_deref())
            .opt_str("PublicDnsName", public_dns.as_deref())
            .str("IpOwnerId", if e.public_ip_allocation.is_some() { owner } else { "amazon" });
    };
    o.str("NetworkInterfaceId", &e.eni_id)
        .str("SubnetId", &e.subnet_id)
        .str("VpcId", &e.vpc_id)
        .str("Description", &e.description)
        .str("OwnerId", owner)
        .str("Status", &e.status)
        .str("MacAddress", &e.mac)
        .str("PrivateIpAddress", &e.private_ip)
        .str("PrivateDnsName", &e.private_dns_name)
        .bool("SourceDestCheck", e.source_dest_check)
        .str("InterfaceType", "interface")
        .list("Groups", g, |o, (id, name)| {
            o.str("GroupId", id).str("GroupName", name);
        })
        .list("PrivateIpAddresses", [()], |p, ()| {
            p.bool("Primary", true).str("PrivateIpAddress", &e.private_ip).str("PrivateDnsName", &e.private_dns_name);
            if e.public_ip.is_some() {
                p.obj("Association", association);
            }
        })
        .empty("Ipv6Addresses");
    if e.public_ip.is_some() {
        o.obj("Association", association);
    }
}

fn attachment(o: &mut Obj<'_>, e: &EniRecord) {
    o.str("AttachmentId", e.attachment_id.as_deref().unwrap_or(""))
        .int("DeviceIndex", e.device_index.into())
        .int("NetworkCardIndex", 0)
        .str("Status", "attached")
        .str("AttachTime", e.attach_time.as_deref().unwrap_or(""))
        .bool("DeleteOnTermination", e.delete_on_termination);
}

/// An interface inside DescribeInstances.
pub fn instance_interface(o: &mut Obj<'_>, e: &EniRecord, g: &[(String, String)], owner: &str, region: &str) {
    interface_base(o, e, g, owner, region);
    o.obj("Attachment", |a| attachment(a, e));
}

/// One network interface as DescribeNetworkInterfaces shows it.
fn write_interface(o: &mut Obj<'_>, n: &NetworkInterface, owner: &str, region: &str) {
    let e = &n.rec;
    interface_base(o, e, &n.groups, owner, region);
    o.str("AvailabilityZone", &e.availability_zone).bool("RequesterManaged", false);
    super::write_tags(o, "TagSet", &n.tags);
    if let Some(i) = &e.instance_id {
        o.obj("Attachment", |a| {
            attachment(a, e);
            a.str("InstanceId", i).str("InstanceOwnerId", owner);
        });
    }
}

/// An interface as the filters answered from its rendering see it.
pub fn interface(n: &NetworkInterface, owner: &str, region: &str) -> Value {
    // An error here is one in `write_interface`, which every response reports.
    write::value("NetworkInterface", |o| write_interface(o, n, owner, region)).unwrap_or(Value::Null)
}

pub fn interfaces(items: &[NetworkInterface], owner: &str, region: &str, next: Option<String>) -> Result<Value, EncodeError> {
    write::value("DescribeNetworkInterfacesResult", |o| {
        o.list("NetworkInterfaces", items, |o, n| write_interface(o, n, owner, region)).opt_str("NextToken", next.as_deref());
    })
}

pub fn internet_gateways(items: &[corral_control::gateway::InternetGateway], owner: &str, next: Option<String>) -> Value {
    let out: Vec<Value> = items
        .iter()
        .map(|g| {
            json!({
                "InternetGatewayId": g.rec.igw_id,
                "OwnerId": owner,
                "Attachments": g.rec.vpc_id.iter().map(|v| json!({"State": "available", "VpcId": v})).collect::<Vec<_>>(),
                "Tags": super::tags(&g.tags),
            })
        })
        .collect();
    super::with_next(json!({"InternetGateways": out}), next)
}

pub fn route_table(t: &corral_control::gateway::RouteTable, owner: &str) -> Value {
    let r = &t.rec;
    json!({
        "RouteTableId": r.route_table_id,
        "VpcId": r.vpc_id,
        "OwnerId": owner,
        "PropagatingVgws": [],
        "Routes": r.routes.iter().map(|x| json!({
            "DestinationCidrBlock": x.destination,
            "GatewayId": (!x.gateway_id.is_empty()).then_some(&x.gateway_id),
            "NetworkInterfaceId": x.network_interface_id,
            "InstanceId": x.instance_id,
            "InstanceOwnerId": x.instance_id.as_ref().map(|_| owner),
            "Origin": x.origin,
            "State": "active",
        })).collect::<Vec<_>>(),
        "Associations": r.associations.iter().map(|a| {
            let mut v = json!({
                "Main": a.main,
                "RouteTableAssociationId": a.association_id,
                "RouteTableId": r.route_table_id,
                "AssociationState": {"State": "associated"},
            });
            if let Some(s) = &a.subnet_id {
                v["SubnetId"] = json!(s);
            }
            v
        }).collect::<Vec<_>>(),
        "Tags": super::tags(&t.tags),
    })
}

pub fn route_tables(items: &[corral_control::gateway::RouteTable], owner: &str, next: Option<String>) -> Value {
    super::with_next(json!({"RouteTables": items.iter().map(|t| route_table(t, owner)).collect::<Vec<_>>()}), next)
}

/// One Elastic IP as DescribeAddresses shows it.
pub fn address(a: &corral_control::address::Address, owner: &str, region: &str) -> Value {
    let r = &a.rec;
    let mut v = json!({
        "AllocationId": r.allocation_id,
        "PublicIp": r.public_ip,
        "Domain": "vpc",
        "PublicIpv4Pool": "amazon",
        "NetworkBorderGroup": region,
        "Tags": super::tags(&a.tags),
    });
    if let Some(x) = &r.association_id {
        v["AssociationId"] = json!(x);
    }
    if let Some(x) = &r.instance_id {
        v["InstanceId"] = json!(x);
    }
    if let Some(x) = &r.eni_id {
        v["NetworkInterfaceId"] = json!(x);
        v["NetworkInterfaceOwnerId"] = json!(owner);
    }
    if let Some(x) = &r.private_ip {
        v["PrivateIpAddress"] = json!(x);
    }
    v
}

pub fn addresses(items: &[corral_control::address::Address], owner: &str, region: &str) -> Value {
    let out: Vec<Value> = items.iter().map(|a| address(a, owner, region)).collect();
    json!({"Addresses": out})
}

/// EC2's public DNS name for a public address.
pub fn public_dns_name(ip: &str, region: &str) -> String {
    format!("ec2-{}.{region}.compute.corral", ip.replace('.', "-"))
}

pub fn address_attribute((allocation_id, ip, ptr): &corral_control::address_attribute::AddressAttribute) -> Value {
    json!({"AllocationId": allocation_id, "PublicIp": ip, "PtrRecord": ptr})
}

pub fn address_attributes(items: &[corral_control::address_attribute::AddressAttribute], next: Option<String>) -> Value {
    super::with_next(json!({ "Addresses": items.iter().map(address_attribute).collect::<Vec<_>>() }), next)
}
