//! VPCs and subnets, and the default VPC every account starts with (172.31.0.0/16, one
//! default subnet per availability zone, a default security group), as on AWS.

use crate::attribute::Target;
use crate::describe::{Describe, FilterLine};
use crate::lookup::get;
use crate::{filter, tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{InternetGatewayRecord, RouteRecord, RouteTableRecord, SecurityGroupRecord, SubnetRecord, TagRecord, VpcRecord};
use corral_types::{Cidr, Error, ErrorCode, IdKind, ResourceId, Result};

pub const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";
const DEFAULT_VPC_KEY: &str = "default_vpc";

pub struct Vpc {
    pub rec: VpcRecord,
    pub tags: Vec<TagRecord>,
}

crate::described_as_tagged!(Vpc, VpcRecord, IdKind::Vpc, vpc_id);

/// DescribeVpcs' filters besides those its view answers. `isDefault` (Terraform's aws_vpc data
/// source) and `cidr-block` (Ansible's ec2_vpc_net) are aliases AWS accepts.
pub const VPC_FILTERS: &[FilterLine<Vpc>] = &[
    ("vpc-id", |v, _| vec![v.rec.vpc_id.clone()]),
    ("cidr", |v, _| vec![v.rec.cidr.clone()]),
    ("cidr-block", |v, _| vec![v.rec.cidr.clone()]),
    ("cidr-block-association.cidr-block", |v, _| vec![v.rec.cidr.clone()]),
    ("is-default", |v, _| vec![v.rec.is_default.to_string()]),
    ("isDefault", |v, _| vec![v.rec.is_default.to_string()]),
    ("state", |v, _| vec![v.rec.state.clone()]),
    ("dhcp-options-id", |_, _| vec!["default".into()]),
];

impl Control {
    /// Creates the default VPC once; later calls find it.
    pub(crate) fn default_vpc_ensure(&self) -> Result<String> {
        let zones = self.config.zones();
        self.store.transaction(|tx| {
            if let Some(id) = tx.meta_get(DEFAULT_VPC_KEY)? {
                return Ok(id);
            }
            let vpc = new_vpc(DEFAULT_VPC_CIDR, true);
            tx.doc_put(&vpc)?;
            // As on AWS, the default VPC has an internet gateway and a default route to it.
            let igw = InternetGatewayRecord {
                igw_id: ResourceId::generate(IdKind::InternetGateway).into_string(),
                vpc_id: Some(vpc.vpc_id.clone()),
            };
            tx.doc_put(&igw)?;
            let mut main = crate::gateway::main_table(&vpc);
            main.routes.push(RouteRecord {
                destination: "0.0.0.0/0".into(),
                gateway_id: igw.igw_id.clone(),
                network_interface_id: None,
                instance_id: None,
                origin: "CreateRoute".into(),
            });
            tx.doc_put(&main)?;
            for (i, zone) in zones.iter().enumerate() {
                // AWS's default subnets: 172.31.0.0/20, 172.31.16.0/20, 172.31.32.0/20, ...
                let cidr = format!("172.31.{}.0/20", i * 16);
                tx.doc_put(&SubnetRecord {
                    subnet_id: ResourceId::generate(IdKind::Subnet).into_string(),
                    vpc_id: vpc.vpc_id.clone(),
                    cidr,
                    availability_zone: zone.clone(),
                    default_for_az: true,
                    map_public_ip_on_launch: true,
                    state: "available".into(),
                    private_dns_hostname_type: "ip-name".into(),
                    enable_resource_name_dns_a_record: false,
                })?;
            }
            tx.doc_put(&crate::security_group::default_group(&vpc.vpc_id))?;
            tx.doc_put(&crate::network_acl::default_acl(&vpc.vpc_id))?;
            tx.meta_set(DEFAULT_VPC_KEY, &vpc.vpc_id)?;
            Ok(vpc.vpc_id)
        })
    }

    pub fn default_vpc_id(&self) -> Result<Option<String>> {
        Ok(self.store.read(|tx| tx.meta_get(DEFAULT_VPC_KEY))?)
    }

    pub fn vpc_create(&self, req: &rq::CreateVpc) -> Result<Vpc> {
        let cidr_s = req.cidr_block.as_deref().ok_or_else(|| Error::missing("CidrBlock"))?;
        let cidr = Cidr::parse_strict(cidr_s).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidParameterValue,
                format!("Value ({cidr_s}) for parameter cidrBlock is invalid. This is not a valid CIDR block."),
            )
        })?;
        if !(16..=28).contains(&cidr.prefix_len()) {
            return Err(Error::new(ErrorCode::InvalidVpcRange, format!("The CIDR '{cidr_s}' is invalid.")));
        }
        let tags = tag::from_specifications(&req.tag_specifications, "vpc", &["vpc"])?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let mut vpc = new_vpc(&cidr.to_string(), false);
        if let Some(t) = &req.instance_tenancy {
            vpc.instance_tenancy = t.clone();
        }
        let tags = self.store.transaction(|tx| {
            let quotas = &self.config.quotas;
            quotas.check("vpcs", tx.doc_list::<VpcRecord>()?.len() + 1)?;
            quotas.check("security-groups", tx.doc_list::<SecurityGroupRecord>()?.len() + 1)?;
            tx.doc_put(&vpc)?;
            tx.doc_put(&crate::security_group::default_group(&vpc.vpc_id))?;
            tx.doc_put(&crate::gateway::main_table(&vpc))?;
            tx.doc_put(&crate::network_acl::default_acl(&vpc.vpc_id))?;
            tag::insert(tx, &vpc.vpc_id, "vpc", &tags)
        })?;
        Ok(Vpc { rec: vpc, tags })
    }

    pub fn vpc_describe(&self, req: &rq::DescribeVpcs, rendered: &filter::Rendered<'_, Vpc>) -> Result<(Vec<Vpc>, Option<String>)> {
        let d = Describe::new(&req.vpc_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        self.describe(&d.table(VPC_FILTERS).rendered(Some(rendered)), |_| true)
    }

    pub fn vpc_delete(&self, req: &rq::DeleteVpc) -> Result<()> {
        let id = req.vpc_id.as_deref().ok_or_else(|| Error::missing("VpcId"))?;
        self.store.transaction(|tx| {
            let vpc: VpcRecord = get(tx, IdKind::Vpc, id)?;
            let in_use = !tx.doc_list_by_parent::<SubnetRecord>(id)?.is_empty()
                || tx.doc_list_by_parent::<SecurityGroupRecord>(id)?.iter().any(|g| g.group_name != "default")
                || tx.doc_list_by_parent::<RouteTableRecord>(id)?.iter().any(|t| !t.associations.iter().any(|a| a.main))
                || tx.doc_list::<InternetGatewayRecord>()?.iter().any(|g| g.vpc_id.as_deref() == Some(id));
            if in_use {
                return Err(Error::new(ErrorCode::DependencyViolation, format!("The vpc '{id}' has dependencies and cannot be deleted.")));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            for g in tx.doc_list_by_parent::<SecurityGroupRecord>(id)? {
                tx.doc_delete::<SecurityGroupRecord>(&g.group_id)?;
                tx.tag_delete_all(&g.group_id)?;
            }
            for t in tx.doc_list_by_parent::<RouteTableRecord>(id)? {
                tx.doc_delete::<RouteTableRecord>(&t.route_table_id)?;
                tx.tag_delete_all(&t.route_table_id)?;
            }
            crate::network_acl::delete_for_vpc(tx, id)?;
            tx.doc_delete::<VpcRecord>(&vpc.vpc_id)?;
            tx.tag_delete_all(id)?;
            if tx.meta_get(DEFAULT_VPC_KEY)?.as_deref() == Some(id) {
                tx.meta_set(DEFAULT_VPC_KEY, "")?;
            }
            Ok(())
        })
    }

    pub fn vpc_attribute_modify(&self, req: &rq::ModifyVpcAttribute) -> Result<()> {
        let id = req.vpc_id.as_deref().ok_or_else(|| Error::missing("VpcId"))?;
        let support = req.enable_dns_support.as_ref().and_then(|v| v.value);
        let hostnames = req.enable_dns_hostnames.as_ref().and_then(|v| v.value);
        let metrics = req.enable_network_address_usage_metrics.as_ref().and_then(|v| v.value);
        if [support.is_some(), hostnames.is_some(), metrics.is_some()].iter().filter(|x| **x).count() != 1 {
            return Err(Error::combination(
                "Exactly one of EnableDnsSupport, EnableDnsHostnames and EnableNetworkAddressUsageMetrics must be given.",
            ));
        }
        self.attribute_write(Target::new(IdKind::Vpc, Some(id), "VpcId", false), |_, vpc: &mut VpcRecord| {
            if let Some(s) = support {
                vpc.enable_dns_support = s;
            }
            if let Some(h) = hostnames {
                vpc.enable_dns_hostnames = h;
            }
            if let Some(m) = metrics {
                vpc.enable_network_address_usage_metrics = m;
            }
            Ok(())
        })?;
        Ok(())
    }

    pub fn vpc_attribute(&self, req: &rq::DescribeVpcAttribute) -> Result<(VpcRecord, String)> {
        const ATTRIBUTES: &[&str] = &["enableDnsSupport", "enableDnsHostnames", "enableNetworkAddressUsageMetrics"];
        let t = Target::new(IdKind::Vpc, req.vpc_id.as_deref(), "VpcId", req.dry_run);
        self.attribute_read(t, req.attribute.as_deref(), ATTRIBUTES)
    }
}

fn new_vpc(cidr: &str, is_default: bool) -> VpcRecord {
    VpcRecord {
        vpc_id: ResourceId::generate(IdKind::Vpc).into_string(),
        cidr: cidr.to_string(),
        is_default,
        state: "available".into(),
        enable_dns_support: true,
        enable_dns_hostnames: is_default,
        instance_tenancy: "default".into(),
        created_at: crate::now_iso(),
        enable_network_address_usage_metrics: false,
    }
}
