//! The table of actions Corral serves (one `Ec2Request` variant each) and what runs each:
//! its control-plane call and the view that renders the answer. A new action is a name in the
//! table and an arm in [`run`]; parsing and checking are `dispatch.rs`'s.

use crate::dispatch::{schema_of, typed};
use crate::views;
use corral_control::filter::Rendered;
use corral_control::security_group::Direction;
use corral_control::Control;
use corral_ec2_query::requests as rq;
use corral_ec2_query::schema::Schema;
use corral_ec2_query::{decode, Model};
use corral_types::{Error, ErrorCode};
use serde_json::Value;

macro_rules! requests {
    ($($name:ident),* $(,)?) => {
        /// Every EC2 action Corral serves, typed.
        // One value per request, moved once into its handler: variant sizes do not matter.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug)]
        pub enum Ec2Request {
            $($name(rq::$name),)*
        }

        impl Ec2Request {
            /// Parses the form of `action` (without Action, Version and auth parameters).
            /// A name outside botocore's model is `InvalidAction`; an operation of the model
            /// Corral does not serve is `UnsupportedOperation`, naming it.
            pub fn parse(action: &str, params: &[(String, String)]) -> Result<Ec2Request, Error> {
                match action {
                    $(stringify!($name) => Ok(Ec2Request::$name(typed(stringify!($name), decode(action, params)?)?)),)*
                    _ if Model::get().has_operation(action) => Err(Error::new(
                        ErrorCode::Unsupported,
                        format!("The operation {action} is not supported by Corral."),
                    )),
                    _ => Err(Error::new(
                        ErrorCode::InvalidAction,
                        format!("The action {action} is not valid for this web service."),
                    )),
                }
            }

            pub fn action(&self) -> &'static str {
                match self {
                    $(Ec2Request::$name(_) => stringify!($name),)*
                }
            }
        }

        /// The actions served, for documentation and tests.
        pub const ACTIONS: &[&str] = &[$(stringify!($name)),*];

        /// The members an action's request struct reads.
        pub fn schema(action: &str) -> Option<&'static Schema> {
            match action {
                $(stringify!($name) => Some(schema_of::<rq::$name>(stringify!($name))),)*
                _ => None,
            }
        }
    };
}

requests!(
    DescribeRegions,
    DescribeAvailabilityZones,
    DescribeAccountAttributes,
    DescribeInstanceTypes,
    DescribeImages,
    CreateKeyPair,
    ImportKeyPair,
    DescribeKeyPairs,
    DeleteKeyPair,
    RunInstances,
    DescribeInstances,
    DescribeInstanceStatus,
    StartInstances,
    StopInstances,
    RebootInstances,
    TerminateInstances,
    GetConsoleOutput,
    CreateTags,
    DeleteTags,
    DescribeTags,
    DescribeInstanceAttribute,
    ModifyInstanceAttribute,
    CreateVpc,
    DescribeVpcs,
    DeleteVpc,
    ModifyVpcAttribute,
    DescribeVpcAttribute,
    CreateSubnet,
    DescribeSubnets,
    DeleteSubnet,
    ModifySubnetAttribute,
    CreateSecurityGroup,
    DescribeSecurityGroups,
    DeleteSecurityGroup,
    AuthorizeSecurityGroupIngress,
    AuthorizeSecurityGroupEgress,
    RevokeSecurityGroupIngress,
    RevokeSecurityGroupEgress,
    DescribeSecurityGroupRules,
    DescribeNetworkInterfaces,
    CreateInternetGateway,
    AttachInternetGateway,
    DetachInternetGateway,
    DeleteInternetGateway,
    DescribeInternetGateways,
    CreateRouteTable,
    DeleteRouteTable,
    CreateRoute,
    DeleteRoute,
    AssociateRouteTable,
    DisassociateRouteTable,
    DescribeRouteTables,
    AllocateAddress,
    AssociateAddress,
    DisassociateAddress,
    ReleaseAddress,
    DescribeAddresses,
    ModifyInstanceMetadataOptions,
    CreateVolume,
    DescribeVolumes,
    DeleteVolume,
    AttachVolume,
    DetachVolume,
    ModifyVolume,
    DescribeVolumesModifications,
    CreateSnapshot,
    DescribeSnapshots,
    DescribeSnapshotTierStatus,
    DeleteSnapshot,
    CopySnapshot,
    CreateImage,
    RegisterImage,
    DeregisterImage,
    CopyImage,
    DescribeImageAttribute,
    ModifyImageAttribute,
    ResetImageAttribute,
    DescribeVolumeStatus,
    DescribeVolumeAttribute,
    ModifyVolumeAttribute,
    DescribeSnapshotAttribute,
    ModifySnapshotAttribute,
    ResetSnapshotAttribute,
    DescribeInstanceCreditSpecifications,
    ModifyInstanceCreditSpecification,
    MonitorInstances,
    UnmonitorInstances,
    DescribeNetworkAcls,
    CreatePlacementGroup,
    DescribePlacementGroups,
    DeletePlacementGroup,
    ReplaceRoute,
    ReplaceRouteTableAssociation,
    UpdateSecurityGroupRuleDescriptionsIngress,
    UpdateSecurityGroupRuleDescriptionsEgress,
    ModifySecurityGroupRules,
    DescribeAddressesAttribute,
    ModifyAddressAttribute,
    ResetAddressAttribute,
    EnableImageDeprecation,
    DisableImageDeprecation,
    GetInstanceUefiData,
    DescribeInstanceTypeOfferings,
);

/// What an action answers: a JSON value keyed by member names for the encoder, or a response
/// its view wrote straight into XML (long listings).
pub(crate) enum Answer {
    Value(Value),
    Xml(String),
}

/// A view that the model refused: a bug of ours, reported as one.
fn rendering(e: corral_ec2_query::EncodeError) -> Error {
    Error::internal(format!("rendering the response: {e}"))
}

pub(crate) async fn run(c: &Control, req: Ec2Request, request_id: &str) -> Result<Answer, Error> {
    use Ec2Request as R;
    Ok(Answer::Value(match req {
        R::DescribeRegions(r) => views::region::regions(&c.regions_describe(&r)?),
        R::DescribeAvailabilityZones(r) => views::region::zones(&c.zones_describe(&r)?),
        R::DescribeAccountAttributes(r) => views::region::account_attributes(&c.account_attributes(&r)?),
        R::DescribeInstanceTypes(r) => {
            let rendered =
                Rendered { shape: "InstanceTypeInfo", view: &|t: &&corral_types::InstanceTypeInfo| views::region::instance_type(t) };
            let (types, next) = c.instance_types_describe(&r, &rendered)?;
            views::region::instance_types(&types, next)
        }
        R::DescribeImages(r) => {
            let rendered = Rendered { shape: "Image", view: &|i: &corral_control::image::Image| views::image::image(&i.rec, &i.tags) };
            let (images, next) = c.image_describe(&r, &rendered)?;
            views::image::describe(&images, next)
        }
        R::CreateKeyPair(r) => views::keypair::created(&c.keypair_create(&r)?),
        R::ImportKeyPair(r) => views::keypair::imported(&c.keypair_import(&r)?),
        R::DescribeKeyPairs(r) => views::keypair::describe(&c.keypair_describe(&r)?, r.include_public_key),
        R::DeleteKeyPair(r) => views::keypair::deleted(c.keypair_delete(&r)?),
        R::RunInstances(r) => views::instance::reservation(&c.instance_run(&r)?, c.region()).map_err(rendering)?,
        R::DescribeInstances(r) => {
            c.settle().await;
            let (owner, region) = (c.account_id(), c.region());
            let rendered =
                Rendered { shape: "Instance", view: &|i: &corral_control::Instance| views::instance::instance_value(i, owner, region) };
            let held = views::instance_cache::Held::new(owner, region);
            let (res, next) = c.instance_describe_reservations(&r, &rendered, &|rec| held.known(rec))?;
            return Ok(Answer::Xml(views::instance::describe(request_id, &res, &held, next).map_err(rendering)?));
        }
        R::DescribeInstanceStatus(r) => {
            c.settle().await;
            let rendered = Rendered { shape: "InstanceStatus", view: &views::instance::status };
            let (items, next) = c.instance_status_describe(&r, &rendered)?;
            views::instance::statuses(&items, next)
        }
        R::StartInstances(r) => views::instance::state_changes("StartingInstances", &c.instance_start(&r)?),
        R::StopInstances(r) => views::instance::state_changes("StoppingInstances", &c.instance_stop(&r)?),
        R::TerminateInstances(r) => views::instance::state_changes("TerminatingInstances", &c.instance_terminate(&r)?),
        R::RebootInstances(r) => {
            c.instance_reboot(&r).await?;
            serde_json::json!({})
        }
        R::GetConsoleOutput(r) => {
            let (id, bytes, ts) = c.instance_console(&r).await?;
            views::instance::console(&id, &bytes, &ts)
        }
        R::CreateTags(r) => {
            c.tags_create(&r)?;
            serde_json::json!({})
        }
        R::DeleteTags(r) => {
            c.tags_delete(&r)?;
            serde_json::json!({})
        }
        R::DescribeTags(r) => {
            let (tags, next) = c.tags_describe(&r)?;
            views::tag::describe(&tags, next)
        }
        R::DescribeInstanceAttribute(r) => {
            let (instance, attr) = c.instance_attribute(&r)?;
            views::instance::attribute(&instance, &attr)
        }
        R::ModifyInstanceAttribute(r) => {
            c.instance_attribute_modify(&r)?;
            serde_json::json!({})
        }
        R::CreateVpc(r) => serde_json::json!({"Vpc": views::network::vpc(&c.vpc_create(&r)?, c.account_id())}),
        R::DescribeVpcs(r) => {
            let owner = c.account_id();
            let rendered = Rendered { shape: "Vpc", view: &|v: &corral_control::vpc::Vpc| views::network::vpc(v, owner) };
            let (items, next) = c.vpc_describe(&r, &rendered)?;
            views::network::vpcs(&items, c.account_id(), next)
        }
        R::DeleteVpc(r) => {
            c.vpc_delete(&r)?;
            serde_json::json!({})
        }
        R::ModifyVpcAttribute(r) => {
            c.vpc_attribute_modify(&r)?;
            serde_json::json!({})
        }
        R::DescribeVpcAttribute(r) => {
            let (vpc, attr) = c.vpc_attribute(&r)?;
            views::network::vpc_attribute(&vpc, &attr)
        }
        R::CreateSubnet(r) => serde_json::json!({"Subnet": views::network::subnet(&c.subnet_create(&r)?, c.account_id(), c.region())}),
        R::DescribeSubnets(r) => {
            let (owner, region) = (c.account_id(), c.region());
            let rendered =
                Rendered { shape: "Subnet", view: &|s: &corral_control::subnet::Subnet| views::network::subnet(s, owner, region) };
            let (items, next) = c.subnet_describe(&r, &rendered)?;
            views::network::subnets(&items, c.account_id(), c.region(), next)
        }
        R::DeleteSubnet(r) => {
            c.subnet_delete(&r)?;
            serde_json::json!({})
        }
        R::ModifySubnetAttribute(r) => {
            c.subnet_attribute_modify(&r)?;
            serde_json::json!({})
        }
        R::CreateSecurityGroup(r) => {
            let g = c.security_group_create(&r)?;
            serde_json::json!({"GroupId": g.rec.group_id, "Tags": views::tags(&g.tags), "SecurityGroupArn": format!("arn:aws:ec2:{}:{}:security-group/{}", c.region(), c.account_id(), g.rec.group_id)})
        }
        R::DescribeSecurityGroups(r) => {
            let (items, next) = c.security_group_describe(&r)?;
            views::network::security_groups(&items, c.account_id(), c.region(), next)
        }
        R::DeleteSecurityGroup(r) => serde_json::json!({"Return": true, "GroupId": c.security_group_delete(&r)?}),
        R::AuthorizeSecurityGroupIngress(r) => {
            views::network::authorized(&c.security_group_authorize(&r.into(), Direction::Ingress)?, c.account_id(), c.region())
        }
        R::AuthorizeSecurityGroupEgress(r) => {
            views::network::authorized(&c.security_group_authorize(&r.into(), Direction::Egress)?, c.account_id(), c.region())
        }
        R::RevokeSecurityGroupIngress(r) => views::network::revoked(&c.security_group_revoke(&r.into(), Direction::Ingress)?),
        R::RevokeSecurityGroupEgress(r) => views::network::revoked(&c.security_group_revoke(&r.into(), Direction::Egress)?),
        R::DescribeSecurityGroupRules(r) => {
            let (items, next) = c.security_group_rules_describe(&r)?;
            views::network::rules(&items, c.account_id(), c.region(), next)
        }
        R::CreateInternetGateway(r) => {
            let g = c.igw_create(&r)?;
            serde_json::json!({"InternetGateway": views::network::internet_gateways(&[g], c.account_id(), None)["InternetGateways"][0]})
        }
        R::AttachInternetGateway(r) => {
            c.igw_attach(&r)?;
            serde_json::json!({})
        }
        R::DetachInternetGateway(r) => {
            c.igw_detach(&r)?;
            serde_json::json!({})
        }
        R::DeleteInternetGateway(r) => {
            c.igw_delete(&r)?;
            serde_json::json!({})
        }
        R::DescribeInternetGateways(r) => {
            let (items, next) = c.igw_describe(&r)?;
            views::network::internet_gateways(&items, c.account_id(), next)
        }
        R::CreateRouteTable(r) => {
            serde_json::json!({"RouteTable": views::network::route_table(&c.route_table_create(&r)?, c.account_id())})
        }
        R::DeleteRouteTable(r) => {
            c.route_table_delete(&r)?;
            serde_json::json!({})
        }
        R::CreateRoute(r) => {
            c.route_create(&r)?;
            serde_json::json!({"Return": true})
        }
        R::DeleteRoute(r) => {
            c.route_delete(&r)?;
            serde_json::json!({})
        }
        R::AssociateRouteTable(r) => {
            serde_json::json!({"AssociationId": c.route_table_associate(&r)?, "AssociationState": {"State": "associated"}})
        }
        R::DisassociateRouteTable(r) => {
            c.route_table_disassociate(&r)?;
            serde_json::json!({})
        }
        R::DescribeRouteTables(r) => {
            let owner = c.account_id();
            let rendered =
                Rendered { shape: "RouteTable", view: &|t: &corral_control::gateway::RouteTable| views::network::route_table(t, owner) };
            let (items, next) = c.route_table_describe(&r, &rendered)?;
            views::network::route_tables(&items, c.account_id(), next)
        }
        R::AllocateAddress(r) => {
            let a = c.address_allocate(&r)?;
            serde_json::json!({"AllocationId": a.allocation_id, "PublicIp": a.public_ip, "Domain": "vpc", "PublicIpv4Pool": "amazon", "NetworkBorderGroup": c.region()})
        }
        R::AssociateAddress(r) => serde_json::json!({"AssociationId": c.address_associate(&r)?}),
        R::DisassociateAddress(r) => {
            c.address_disassociate(&r)?;
            serde_json::json!({})
        }
        R::ReleaseAddress(r) => {
            c.address_release(&r)?;
            serde_json::json!({})
        }
        R::ModifyInstanceMetadataOptions(r) => {
            let rec = c.instance_metadata_options_modify(&r)?;
            serde_json::json!({
                "InstanceId": rec.instance_id,
                "InstanceMetadataOptions": views::instance::metadata_options(&rec.metadata, "pending").map_err(rendering)?,
            })
        }
        R::CreateVolume(r) => views::storage::volume(&c.volume_create(&r).await?),
        R::DescribeVolumes(r) => {
            let (items, next) = c.volume_describe(&r)?;
            views::storage::volumes(&items, next)
        }
        R::DeleteVolume(r) => {
            c.volume_delete(&r).await?;
            serde_json::json!({})
        }
        R::AttachVolume(r) => views::storage::attachment(&c.volume_attach(&r).await?),
        R::DetachVolume(r) => views::storage::attachment(&c.volume_detach(&r).await?),
        R::ModifyVolume(r) => {
            let v = c.volume_modify(&r).await?;
            let m = v.modification.as_ref().ok_or_else(|| Error::internal("modification not recorded"))?;
            serde_json::json!({ "VolumeModification": views::storage::modification(&v.volume_id, m) })
        }
        R::DescribeVolumesModifications(r) => {
            let (items, next) = c.volume_modifications(&r)?;
            views::storage::modifications(&items, next)
        }
        R::CreateSnapshot(r) => views::storage::snapshot(&c.snapshot_create(&r).await?),
        R::DescribeSnapshots(r) => {
            let (items, next) = c.snapshot_describe(&r)?;
            views::storage::snapshots(&items, next)
        }
        // Through the generic Describe path: the snapshots kind, a view, and the one filter
        // the view cannot answer (no snapshot is ever archived, so none has a tiering operation).
        R::DescribeSnapshotTierStatus(r) => {
            use corral_control::describe::{Describe, FilterLine};
            use corral_control::snapshot::Snapshot;
            const FILTERS: &[FilterLine<Snapshot>] = &[("last-tiering-operation", |_, _| vec![])];
            let rendered = Rendered { shape: "SnapshotTierStatus", view: &views::storage::snapshot_tier_status };
            let d = Describe::new(&[], &r.filters, r.dry_run, r.max_results, r.next_token.as_deref());
            let (items, next) = c.describe(&d.table(FILTERS).rendered(Some(&rendered)).bounds(5, 1000), |_| true)?;
            views::storage::snapshot_tier_statuses(&items, next)
        }
        R::DeleteSnapshot(r) => {
            c.snapshot_delete(&r).await?;
            serde_json::json!({})
        }
        R::CopySnapshot(r) => {
            let s = c.snapshot_copy(&r)?;
            serde_json::json!({ "SnapshotId": s.rec.snapshot_id, "Tags": views::tags(&s.tags) })
        }
        R::CreateImage(r) => serde_json::json!({ "ImageId": c.image_create(&r).await? }),
        R::RegisterImage(r) => serde_json::json!({ "ImageId": c.image_register(&r)? }),
        R::DeregisterImage(r) => {
            let deleted = c.image_deregister(&r).await?;
            let results: Vec<Value> = deleted.iter().map(|s| serde_json::json!({ "SnapshotId": s, "ReturnCode": "success" })).collect();
            serde_json::json!({ "Return": true, "DeleteSnapshotResults": results })
        }
        R::CopyImage(r) => serde_json::json!({ "ImageId": c.image_copy(&r)? }),
        R::DescribeImageAttribute(r) => {
            let (img, attr) = c.image_attribute(&r)?;
            views::image::attribute(&img, &attr)
        }
        R::ModifyImageAttribute(r) => {
            c.image_attribute_modify(&r)?;
            serde_json::json!({})
        }
        R::ResetImageAttribute(r) => {
            c.image_attribute_reset(&r)?;
            serde_json::json!({})
        }
        R::DescribeVolumeStatus(r) => {
            let (items, next) = c.volume_status(&r)?;
            views::storage::volume_statuses(&items, next)
        }
        R::DescribeVolumeAttribute(r) => {
            let (v, attr) = c.volume_attribute(&r)?;
            views::storage::volume_attribute(&v, &attr)
        }
        R::ModifyVolumeAttribute(r) => {
            c.volume_attribute_modify(&r)?;
            serde_json::json!({})
        }
        R::DescribeSnapshotAttribute(r) => {
            let (s, attr) = c.snapshot_attribute(&r)?;
            views::storage::snapshot_attribute(&s, &attr)
        }
        R::ModifySnapshotAttribute(r) => {
            c.snapshot_attribute_modify(&r)?;
            serde_json::json!({})
        }
        R::ResetSnapshotAttribute(r) => {
            c.snapshot_attribute_reset(&r)?;
            serde_json::json!({})
        }
        R::DescribeInstanceCreditSpecifications(r) => {
            let (items, next) = c.instance_credit_describe(&r)?;
            views::instance::credit_specifications(&items, next)
        }
        R::ModifyInstanceCreditSpecification(r) => {
            let (ok, failed) = c.instance_credit_modify(&r)?;
            views::instance::credit_modified(&ok, &failed)
        }
        R::MonitorInstances(r) => views::instance::monitorings(&c.instance_monitoring_set(&r.instance_ids, true, r.dry_run)?),
        R::UnmonitorInstances(r) => views::instance::monitorings(&c.instance_monitoring_set(&r.instance_ids, false, r.dry_run)?),
        R::UpdateSecurityGroupRuleDescriptionsIngress(r) => {
            c.security_group_rule_descriptions_update(&r, Direction::Ingress)?;
            serde_json::json!({"Return": true})
        }
        R::UpdateSecurityGroupRuleDescriptionsEgress(r) => {
            c.security_group_rule_descriptions_update(&r, Direction::Egress)?;
            serde_json::json!({"Return": true})
        }
        R::ModifySecurityGroupRules(r) => {
            c.security_group_rules_modify(&r)?;
            serde_json::json!({"Return": true})
        }
        R::DescribeAddressesAttribute(r) => {
            let (items, next) = c.address_attribute_describe(&r)?;
            views::network::address_attributes(&items, next)
        }
        R::ModifyAddressAttribute(r) => {
            let a = c.address_attribute_set(r.allocation_id.as_deref(), r.domain_name.as_deref(), r.dry_run)?;
            serde_json::json!({ "Address": views::network::address_attribute(&a) })
        }
        R::ResetAddressAttribute(r) => {
            let a = c.address_attribute_reset(&r)?;
            serde_json::json!({ "Address": views::network::address_attribute(&a) })
        }
        R::EnableImageDeprecation(r) => {
            c.image_deprecation_enable(&r)?;
            serde_json::json!({"Return": true})
        }
        R::DisableImageDeprecation(r) => {
            c.image_deprecation_disable(&r)?;
            serde_json::json!({"Return": true})
        }
        R::GetInstanceUefiData(r) => {
            let id = c.instance_uefi_data(&r)?;
            serde_json::json!({"InstanceId": id, "UefiData": ""})
        }
        R::DescribeInstanceTypeOfferings(r) => {
            let (items, next) = c.instance_type_offerings(&r)?;
            views::region::instance_type_offerings(&items, next)
        }
        R::ReplaceRoute(r) => {
            c.route_replace(&r)?;
            serde_json::json!({})
        }
        R::ReplaceRouteTableAssociation(r) => {
            serde_json::json!({"NewAssociationId": c.route_table_association_replace(&r)?, "AssociationState": {"State": "associated"}})
        }
        R::CreatePlacementGroup(r) => {
            let g = c.placement_group_create(&r)?;
            serde_json::json!({ "PlacementGroup": views::instance::placement_group(&g, c.region(), c.account_id()) })
        }
        R::DescribePlacementGroups(r) => {
            let groups = c.placement_group_describe(&r)?;
            let list: Vec<Value> = groups.iter().map(|g| views::instance::placement_group(g, c.region(), c.account_id())).collect();
            serde_json::json!({ "PlacementGroups": list })
        }
        R::DeletePlacementGroup(r) => {
            c.placement_group_delete(&r)?;
            serde_json::json!({})
        }
        R::DescribeNetworkAcls(r) => {
            let (items, next) = c.network_acl_describe(&r)?;
            views::network_acl::network_acls(&items, c.account_id(), next)
        }
        R::DescribeAddresses(r) => {
            let (owner, region) = (c.account_id(), c.region());
            let rendered =
                Rendered { shape: "Address", view: &|a: &corral_control::address::Address| views::network::address(a, owner, region) };
            views::network::addresses(&c.address_describe(&r, &rendered)?, owner, region)
        }
        R::DescribeNetworkInterfaces(r) => {
            let (owner, region) = (c.account_id(), c.region());
            let rendered = Rendered {
                shape: "NetworkInterface",
                view: &|n: &corral_control::eni::NetworkInterface| views::network::interface(n, owner, region),
            };
            let (items, next) = c.eni_describe(&r, &rendered)?;
            views::network::interfaces(&items, c.account_id(), c.region(), next).map_err(rendering)?
        }
    }))
}
