//! Request types of the VPC network (VPCs, subnets, groups, gateways, routes, addresses, ACLs) actions; shared types are in `requests.rs`.

use super::*;
use serde::Deserialize;

request!(DescribeNetworkAcls { network_acl_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpRange {
    pub cidr_ip: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct UserIdGroupPair {
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub user_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpPermission {
    pub ip_protocol: Option<String>,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub ip_ranges: Vec<IpRange>,
    pub user_id_group_pairs: Vec<UserIdGroupPair>,
    pub ipv6_ranges: Vec<serde_json::Value>,
    pub prefix_list_ids: Vec<serde_json::Value>,
}

request!(CreateVpc { cidr_block: Option<String>, instance_tenancy: Option<String>, tag_specifications: Vec<TagSpecification> });
request!(DescribeVpcs { vpc_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DeleteVpc { vpc_id: Option<String> });
request!(no_dry_run ModifyVpcAttribute {
    vpc_id: Option<String>,
    enable_dns_support: Option<AttributeValue<bool>>,
    enable_dns_hostnames: Option<AttributeValue<bool>>,
    enable_network_address_usage_metrics: Option<AttributeValue<bool>>,
});
request!(DescribeVpcAttribute { vpc_id: Option<String>, attribute: Option<String> });
request!(CreateSubnet {
    vpc_id: Option<String>,
    cidr_block: Option<String>,
    availability_zone: Option<String>,
    tag_specifications: Vec<TagSpecification>,
});
request!(DescribeSubnets { subnet_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(DeleteSubnet { subnet_id: Option<String> });
request!(no_dry_run ModifySubnetAttribute {
    subnet_id: Option<String>,
    map_public_ip_on_launch: Option<AttributeValue<bool>>,
    assign_ipv6_address_on_creation: Option<AttributeValue<bool>>,
    map_customer_owned_ip_on_launch: Option<AttributeValue<bool>>,
    enable_dns64: Option<AttributeValue<bool>>,
    private_dns_hostname_type_on_launch: Option<String>,
    enable_resource_name_dns_a_record_on_launch: Option<AttributeValue<bool>>,
    // PascalCase of this name is the model's EnableResourceNameDnsAAAARecordOnLaunch.
    enable_resource_name_dns_a_a_a_a_record_on_launch: Option<AttributeValue<bool>>,
});
request!(CreateSecurityGroup {
    group_name: Option<String>,
    description: Option<String>,
    vpc_id: Option<String>,
    tag_specifications: Vec<TagSpecification>,
});
request!(DescribeSecurityGroups {
    group_ids: Vec<String>,
    group_names: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(DeleteSecurityGroup { group_id: Option<String>, group_name: Option<String> });

/// Authorize and Revoke, ingress and egress, share one shape.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupRulesChange {
    pub dry_run: bool,
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub ip_permissions: Vec<IpPermission>,
    pub ip_protocol: Option<String>,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub cidr_ip: Option<String>,
    pub source_security_group_name: Option<String>,
    pub security_group_rule_ids: Vec<String>,
    pub tag_specifications: Vec<TagSpecification>,
}

/// The four rule-change actions, each with exactly the members its model has, all read as a
/// [`SecurityGroupRulesChange`].
macro_rules! rules_change {
    ($($name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {
        $(
            request!($name { $($field: $ty),* });
            impl From<$name> for SecurityGroupRulesChange {
                fn from(r: $name) -> Self {
                    SecurityGroupRulesChange { dry_run: r.dry_run, $($field: r.$field,)* ..Default::default() }
                }
            }
        )*
    };
}

rules_change! {
    AuthorizeSecurityGroupIngress {
        group_id: Option<String>, group_name: Option<String>, ip_permissions: Vec<IpPermission>, ip_protocol: Option<String>,
        from_port: Option<i64>, to_port: Option<i64>, cidr_ip: Option<String>, source_security_group_name: Option<String>,
        tag_specifications: Vec<TagSpecification>,
    }
    AuthorizeSecurityGroupEgress {
        group_id: Option<String>, ip_permissions: Vec<IpPermission>, ip_protocol: Option<String>, from_port: Option<i64>,
        to_port: Option<i64>, cidr_ip: Option<String>, source_security_group_name: Option<String>,
        tag_specifications: Vec<TagSpecification>,
    }
    RevokeSecurityGroupIngress {
        group_id: Option<String>, group_name: Option<String>, ip_permissions: Vec<IpPermission>, ip_protocol: Option<String>,
        from_port: Option<i64>, to_port: Option<i64>, cidr_ip: Option<String>, source_security_group_name: Option<String>,
        security_group_rule_ids: Vec<String>,
    }
    RevokeSecurityGroupEgress {
        group_id: Option<String>, ip_permissions: Vec<IpPermission>, ip_protocol: Option<String>, from_port: Option<i64>,
        to_port: Option<i64>, cidr_ip: Option<String>, source_security_group_name: Option<String>,
        security_group_rule_ids: Vec<String>,
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupRuleDescription {
    pub security_group_rule_id: Option<String>,
    pub description: Option<String>,
}

request!(UpdateSecurityGroupRuleDescriptions {
    group_id: Option<String>,
    group_name: Option<String>,
    ip_permissions: Vec<IpPermission>,
    security_group_rule_descriptions: Vec<SecurityGroupRuleDescription>,
});
pub type UpdateSecurityGroupRuleDescriptionsIngress = UpdateSecurityGroupRuleDescriptions;
pub type UpdateSecurityGroupRuleDescriptionsEgress = UpdateSecurityGroupRuleDescriptions;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupRuleRequest {
    pub ip_protocol: Option<String>,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub cidr_ipv4: Option<String>,
    pub cidr_ipv6: Option<String>,
    pub prefix_list_id: Option<String>,
    pub referenced_group_id: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct SecurityGroupRuleUpdate {
    pub security_group_rule_id: Option<String>,
    pub security_group_rule: Option<SecurityGroupRuleRequest>,
}

request!(ModifySecurityGroupRules { group_id: Option<String>, security_group_rules: Vec<SecurityGroupRuleUpdate> });

request!(DescribeSecurityGroupRules {
    security_group_rule_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(DescribeNetworkInterfaces {
    network_interface_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});

request!(CreateInternetGateway { tag_specifications: Vec<TagSpecification> });
request!(AttachInternetGateway { internet_gateway_id: Option<String>, vpc_id: Option<String> });
request!(DetachInternetGateway { internet_gateway_id: Option<String>, vpc_id: Option<String> });
request!(DeleteInternetGateway { internet_gateway_id: Option<String> });
request!(DescribeInternetGateways {
    internet_gateway_ids: Vec<String>,
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(CreateRouteTable { vpc_id: Option<String>, tag_specifications: Vec<TagSpecification>, client_token: Option<String> });
request!(DeleteRouteTable { route_table_id: Option<String> });
request!(CreateRoute {
    route_table_id: Option<String>,
    destination_cidr_block: Option<String>,
    gateway_id: Option<String>,
    network_interface_id: Option<String>,
    instance_id: Option<String>,
});
request!(DeleteRoute { route_table_id: Option<String>, destination_cidr_block: Option<String> });
request!(AssociateRouteTable { route_table_id: Option<String>, subnet_id: Option<String> });
request!(DisassociateRouteTable { association_id: Option<String> });
/// ReplaceRoute takes what CreateRoute takes (both models have these members).
pub type ReplaceRoute = CreateRoute;
request!(ReplaceRouteTableAssociation { association_id: Option<String>, route_table_id: Option<String> });
request!(DescribeRouteTables { route_table_ids: Vec<String>, filters: Vec<Filter>, max_results: Option<i64>, next_token: Option<String> });
request!(AllocateAddress { domain: Option<String>, address: Option<String>, tag_specifications: Vec<TagSpecification> });
request!(AssociateAddress {
    allocation_id: Option<String>,
    public_ip: Option<String>,
    instance_id: Option<String>,
    network_interface_id: Option<String>,
    private_ip_address: Option<String>,
    allow_reassociation: Option<bool>,
});
request!(DisassociateAddress { association_id: Option<String>, public_ip: Option<String> });
request!(ReleaseAddress { allocation_id: Option<String>, public_ip: Option<String>, network_border_group: Option<String> });
request!(DescribeAddressesAttribute {
    allocation_ids: Vec<String>,
    attribute: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
});
request!(ModifyAddressAttribute { allocation_id: Option<String>, domain_name: Option<String> });
request!(ResetAddressAttribute { allocation_id: Option<String>, attribute: Option<String> });
request!(DescribeAddresses { allocation_ids: Vec<String>, public_ips: Vec<String>, filters: Vec<Filter> });
