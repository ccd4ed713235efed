//! VPCs and subnets, and the default VPC every account starts with (172.31.0.0/16, one
//! default subnet per availability zone, a default security group), as on AWS.

use crate::{filter, tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{
    Doc, EniRecord, InternetGatewayRecord, RouteRecord, RouteTableRecord, SecurityGroupRecord, SubnetRecord, TagRecord, Tx, VpcRecord,
};
use corral_types::{Cidr, Error, ErrorCode, IdKind, ResourceId, Result};

pub const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";
const DEFAULT_VPC_KEY: &str = "default_vpc";

pub struct Vpc {
    pub rec: VpcRecord,
    pub tags: Vec<TagRecord>,
}

pub struct Subnet {
    pub rec: SubnetRecord,
    pub tags: Vec<TagRecord>,
    pub available_ips: u64,
}

pub(crate) fn parse_id(kind: IdKind, id: &str) -> Result<()> {
    ResourceId::parse(kind, id).map(|_| ()).ok_or_else(|| Error::malformed(kind, id))
}

pub(crate) fn get<T: Doc>(tx: &Tx<'_>, kind: IdKind, id: &str) -> Result<T> {
    parse_id(kind, id)?;
    tx.doc_get::<T>(id)?.ok_or_else(|| Error::not_found(kind, id))
}

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
            main.routes.push(RouteRecord { destination: "0.0.0.0/0".into(), gateway_id: igw.igw_id.clone(), origin: "CreateRoute".into() });
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
        if !(16..=28).contains(&cidr.prefix()) {
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
            tx.doc_put(&vpc)?;
            tx.doc_put(&crate::security_group::default_group(&vpc.vpc_id))?;
            tx.doc_put(&crate::gateway::main_table(&vpc))?;
            tx.doc_put(&crate::network_acl::default_acl(&vpc.vpc_id))?;
            tag::insert(tx, &vpc.vpc_id, "vpc", &tags)
        })?;
        Ok(Vpc { rec: vpc, tags })
    }

    pub fn vpc_describe(&self, req: &rq::DescribeVpcs) -> Result<(Vec<Vpc>, Option<String>)> {
        filter::check(
            &req.filters,
            // `isDefault` (Terraform's aws_vpc data source) and `cidr-block` (Ansible's
            // ec2_vpc_net) are aliases AWS accepts.
            &["vpc-id", "cidr", "cidr-block", "cidr-block-association.cidr-block", "is-default", "isDefault", "state", "owner-id", "dhcp-options-id"],
            true,
        )?;
        for id in &req.vpc_ids {
            parse_id(IdKind::Vpc, id)?;
        }
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let (all, tags) = self.store.read(|tx| Ok::<_, Error>((tx.doc_list::<VpcRecord>()?, tx.tag_map()?)))?;
        if let Some(missing) = req.vpc_ids.iter().find(|id| !all.iter().any(|v| &v.vpc_id == *id)) {
            return Err(Error::not_found(IdKind::Vpc, missing));
        }
        let account = self.account_id.clone();
        let items = all
            .into_iter()
            .filter(|v| req.vpc_ids.is_empty() || req.vpc_ids.contains(&v.vpc_id))
            .map(|rec| {
                let t = tags.get(&rec.vpc_id).cloned().unwrap_or_default();
                Vpc { rec, tags: t }
            })
            .filter(|v| {
                filter::matches(&req.filters, &v.tags, |n| match n {
                    "vpc-id" => vec![v.rec.vpc_id.clone()],
                    "cidr" | "cidr-block" | "cidr-block-association.cidr-block" => vec![v.rec.cidr.clone()],
                    "is-default" | "isDefault" => vec![v.rec.is_default.to_string()],
                    "state" => vec![v.rec.state.clone()],
                    "owner-id" => vec![account.clone()],
                    "dhcp-options-id" => vec!["default".into()],
                    _ => vec![],
                })
            })
            .collect();
        filter::page(items, req.max_results, req.next_token.as_deref(), (5, 1000))
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
        if support.is_some() == hostnames.is_some() {
            return Err(Error::combination("Exactly one of EnableDnsSupport and EnableDnsHostnames must be given."));
        }
        self.store.transaction(|tx| {
            let mut vpc: VpcRecord = get(tx, IdKind::Vpc, id)?;
            if let Some(s) = support {
                vpc.enable_dns_support = s;
            }
            if let Some(h) = hostnames {
                vpc.enable_dns_hostnames = h;
            }
            tx.doc_put(&vpc)?;
            Ok(())
        })
    }

    pub fn vpc_attribute(&self, req: &rq::DescribeVpcAttribute) -> Result<(VpcRecord, String)> {
        let id = req.vpc_id.as_deref().ok_or_else(|| Error::missing("VpcId"))?;
        let attr = req.attribute.clone().ok_or_else(|| Error::missing("Attribute"))?;
        if !["enableDnsSupport", "enableDnsHostnames", "enableNetworkAddressUsageMetrics"].contains(&attr.as_str()) {
            return Err(Error::invalid_value("Attribute", &attr, "Unknown VPC attribute."));
        }
        let vpc = self.store.read(|tx| get::<VpcRecord>(tx, IdKind::Vpc, id))?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        Ok((vpc, attr))
    }

    pub fn subnet_create(&self, req: &rq::CreateSubnet) -> Result<Subnet> {
        let vpc_id = req.vpc_id.as_deref().ok_or_else(|| Error::missing("VpcId"))?;
        let cidr_s = req.cidr_block.as_deref().ok_or_else(|| Error::missing("CidrBlock"))?;
        let cidr = Cidr::parse_strict(cidr_s).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidParameterValue,
                format!("Value ({cidr_s}) for parameter cidrBlock is invalid. This is not a valid CIDR block."),
            )
        })?;
        let zones = self.config.zones();
        let zone = match req.availability_zone.as_deref() {
            Some(z) if zones.iter().any(|x| x == z) => z.to_string(),
            Some(z) => return Err(Error::new(ErrorCode::InvalidParameterValue, format!("Value ({z}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.", zones.join(", ")))),
            None => zones[0].clone(),
        };
        let tags = tag::from_specifications(&req.tag_specifications, "subnet", &["subnet"])?;
        let (rec, tags) = self.store.transaction(|tx| {
            let vpc: VpcRecord = get(tx, IdKind::Vpc, vpc_id)?;
            let vpc_cidr: Cidr = vpc.cidr.parse().map_err(|_| Error::internal(format!("vpc {vpc_id} has cidr {}", vpc.cidr)))?;
            if !vpc_cidr.contains_cidr(&cidr) || !(16..=28).contains(&cidr.prefix()) {
                return Err(Error::new(ErrorCode::InvalidSubnetRange, format!("The CIDR '{cidr_s}' is invalid.")));
            }
            for s in tx.doc_list_by_parent::<SubnetRecord>(vpc_id)? {
                if s.cidr.parse::<Cidr>().is_ok_and(|c| c.overlaps(&cidr)) {
                    return Err(Error::new(ErrorCode::InvalidSubnetConflict, format!("The CIDR '{cidr_s}' conflicts with another subnet")));
                }
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let rec = SubnetRecord {
                subnet_id: ResourceId::generate(IdKind::Subnet).into_string(),
                vpc_id: vpc_id.to_string(),
                cidr: cidr.to_string(),
                availability_zone: zone.clone(),
                default_for_az: false,
                map_public_ip_on_launch: false,
                state: "available".into(),
            };
            tx.doc_put(&rec)?;
            let t = tag::insert(tx, &rec.subnet_id, "subnet", &tags)?;
            Ok((rec, t))
        })?;
        let available_ips = cidr.usable_hosts().count() as u64;
        Ok(Subnet { rec, tags, available_ips })
    }

    pub fn subnet_describe(&self, req: &rq::DescribeSubnets) -> Result<(Vec<Subnet>, Option<String>)> {
        const NAMES: &[&str] = &[
            "subnet-id",
            "vpc-id",
            "cidr",
            "cidr-block",
            "cidrBlock",
            "availability-zone",
            "availabilityZone",
            "default-for-az",
            "defaultForAz",
            "map-public-ip-on-launch",
            "state",
            "owner-id",
        ];
        filter::check(&req.filters, NAMES, true)?;
        for id in &req.subnet_ids {
            parse_id(IdKind::Subnet, id)?;
        }
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let (all, tags, enis) =
            self.store.read(|tx| Ok::<_, Error>((tx.doc_list::<SubnetRecord>()?, tx.tag_map()?, tx.doc_list::<EniRecord>()?)))?;
        if let Some(missing) = req.subnet_ids.iter().find(|id| !all.iter().any(|s| &s.subnet_id == *id)) {
            return Err(Error::not_found(IdKind::Subnet, missing));
        }
        let account = self.account_id.clone();
        let items = all
            .into_iter()
            .filter(|s| req.subnet_ids.is_empty() || req.subnet_ids.contains(&s.subnet_id))
            .map(|rec| {
                let t = tags.get(&rec.subnet_id).cloned().unwrap_or_default();
                let total = rec.cidr.parse::<Cidr>().map(|c| c.usable_hosts().count() as u64).unwrap_or(0);
                let used = enis.iter().filter(|e| e.subnet_id == rec.subnet_id).count() as u64;
                Subnet { rec, tags: t, available_ips: total.saturating_sub(used) }
            })
            .filter(|s| {
                filter::matches(&req.filters, &s.tags, |n| match n {
                    "subnet-id" => vec![s.rec.subnet_id.clone()],
                    "vpc-id" => vec![s.rec.vpc_id.clone()],
                    "cidr" | "cidr-block" | "cidrBlock" => vec![s.rec.cidr.clone()],
                    "availability-zone" | "availabilityZone" => vec![s.rec.availability_zone.clone()],
                    "default-for-az" | "defaultForAz" => vec![s.rec.default_for_az.to_string()],
                    "map-public-ip-on-launch" => vec![s.rec.map_public_ip_on_launch.to_string()],
                    "state" => vec![s.rec.state.clone()],
                    "owner-id" => vec![account.clone()],
                    _ => vec![],
                })
            })
            .collect();
        filter::page(items, req.max_results, req.next_token.as_deref(), (5, 1000))
    }

    pub fn subnet_delete(&self, req: &rq::DeleteSubnet) -> Result<()> {
        let id = req.subnet_id.as_deref().ok_or_else(|| Error::missing("SubnetId"))?;
        self.store.transaction(|tx| {
            let _: SubnetRecord = get(tx, IdKind::Subnet, id)?;
            if !tx.doc_list_by_parent::<EniRecord>(id)?.is_empty() {
                return Err(Error::new(
                    ErrorCode::DependencyViolation,
                    format!("The subnet '{id}' has dependencies and cannot be deleted."),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_delete::<SubnetRecord>(id)?;
            tx.tag_delete_all(id)?;
            Ok(())
        })
    }

    pub fn subnet_attribute_modify(&self, req: &rq::ModifySubnetAttribute) -> Result<()> {
        let id = req.subnet_id.as_deref().ok_or_else(|| Error::missing("SubnetId"))?;
        let v = req.map_public_ip_on_launch.as_ref().and_then(|v| v.value).ok_or_else(|| Error::missing("MapPublicIpOnLaunch"))?;
        self.store.transaction(|tx| {
            let mut s: SubnetRecord = get(tx, IdKind::Subnet, id)?;
            s.map_public_ip_on_launch = v;
            tx.doc_put(&s)?;
            Ok(())
        })
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
    }
}
