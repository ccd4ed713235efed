//! Subnets: CreateSubnet, DescribeSubnets, DeleteSubnet and every member of
//! ModifySubnetAttribute.

use crate::attribute::Target;
use crate::describe::{Describe, Described, FilterLine, TagMap};
use crate::lookup::get;
use crate::{filter, tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{EniRecord, SubnetRecord, TagRecord, VpcRecord};
use corral_types::{Cidr, Error, ErrorCode, IdKind, ResourceId, Result};

pub struct Subnet {
    pub rec: SubnetRecord,
    pub tags: Vec<TagRecord>,
    pub available_ips: u64,
}

impl Described for Subnet {
    type Record = SubnetRecord;
    const KIND: IdKind = IdKind::Subnet;
    fn record_id(rec: &SubnetRecord) -> &str {
        &rec.subnet_id
    }
    /// Each subnet with its free addresses: its usable hosts less its interfaces.
    fn assemble(tx: &corral_store::Tx<'_>, recs: Vec<SubnetRecord>, tags: &mut TagMap) -> Result<Vec<Subnet>> {
        let ids: Vec<String> = recs.iter().map(|r| r.subnet_id.clone()).collect();
        let used = tx.subnet_interface_counts(&ids)?;
        Ok(recs
            .into_iter()
            .map(|rec| {
                let total = rec.cidr.parse::<Cidr>().map(|c| c.usable_count()).unwrap_or(0);
                let used = used.get(&rec.subnet_id).copied().unwrap_or(0);
                Subnet { tags: tags.remove(&rec.subnet_id).unwrap_or_default(), rec, available_ips: total.saturating_sub(used) }
            })
            .collect())
    }
    fn id(&self) -> &str {
        &self.rec.subnet_id
    }
    fn tags(&self) -> &[TagRecord] {
        &self.tags
    }
}

/// DescribeSubnets' filters besides those its view answers, with the camel-case aliases AWS
/// accepts.
pub const SUBNET_FILTERS: &[FilterLine<Subnet>] = &[
    ("subnet-id", |s, _| vec![s.rec.subnet_id.clone()]),
    ("vpc-id", |s, _| vec![s.rec.vpc_id.clone()]),
    ("cidr", |s, _| vec![s.rec.cidr.clone()]),
    ("cidr-block", |s, _| vec![s.rec.cidr.clone()]),
    ("cidrBlock", |s, _| vec![s.rec.cidr.clone()]),
    ("availability-zone", |s, _| vec![s.rec.availability_zone.clone()]),
    ("availabilityZone", |s, _| vec![s.rec.availability_zone.clone()]),
    ("default-for-az", |s, _| vec![s.rec.default_for_az.to_string()]),
    ("defaultForAz", |s, _| vec![s.rec.default_for_az.to_string()]),
    ("map-public-ip-on-launch", |s, _| vec![s.rec.map_public_ip_on_launch.to_string()]),
    ("state", |s, _| vec![s.rec.state.clone()]),
];

impl Control {
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
            if !vpc_cidr.contains_cidr(&cidr) || !(16..=28).contains(&cidr.prefix_len()) {
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
            self.config.quotas.check("subnets-per-vpc", tx.doc_list_by_parent::<SubnetRecord>(vpc_id)?.len() + 1)?;
            let rec = SubnetRecord {
                subnet_id: ResourceId::generate(IdKind::Subnet).into_string(),
                vpc_id: vpc_id.to_string(),
                cidr: cidr.to_string(),
                availability_zone: zone.clone(),
                default_for_az: false,
                map_public_ip_on_launch: false,
                state: "available".into(),
                private_dns_hostname_type: "ip-name".into(),
                enable_resource_name_dns_a_record: false,
            };
            tx.doc_put(&rec)?;
            let t = tag::insert(tx, &rec.subnet_id, "subnet", &tags)?;
            Ok((rec, t))
        })?;
        let available_ips = cidr.usable_count();
        Ok(Subnet { rec, tags, available_ips })
    }

    pub fn subnet_describe(
        &self,
        req: &rq::DescribeSubnets,
        rendered: &filter::Rendered<'_, Subnet>,
    ) -> Result<(Vec<Subnet>, Option<String>)> {
        let d = Describe::new(&req.subnet_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        self.describe(&d.table(SUBNET_FILTERS).rendered(Some(rendered)), |_| true)
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

    /// ModifySubnetAttribute: one attribute per call, as on AWS. IPv6 and customer-owned
    /// addresses do not exist here, so turning them on is refused; turning them off is a no-op.
    pub fn subnet_attribute_modify(&self, req: &rq::ModifySubnetAttribute) -> Result<()> {
        let id = req.subnet_id.as_deref().ok_or_else(|| Error::missing("SubnetId"))?;
        let flag = |v: &Option<rq::AttributeValue<bool>>| v.as_ref().and_then(|v| v.value);
        let given = [
            flag(&req.map_public_ip_on_launch).is_some(),
            flag(&req.assign_ipv6_address_on_creation).is_some(),
            flag(&req.map_customer_owned_ip_on_launch).is_some(),
            flag(&req.enable_dns64).is_some(),
            req.private_dns_hostname_type_on_launch.is_some(),
            flag(&req.enable_resource_name_dns_a_record_on_launch).is_some(),
            flag(&req.enable_resource_name_dns_a_a_a_a_record_on_launch).is_some(),
        ];
        match given.iter().filter(|g| **g).count() {
            0 => return Err(Error::missing("Attribute")),
            1 => {}
            _ => return Err(Error::combination("Specify only one attribute to modify.")),
        }
        let ipv6_only = [
            ("AssignIpv6AddressOnCreation", flag(&req.assign_ipv6_address_on_creation)),
            ("EnableDns64", flag(&req.enable_dns64)),
            ("EnableResourceNameDnsAAAARecordOnLaunch", flag(&req.enable_resource_name_dns_a_a_a_a_record_on_launch)),
        ];
        for (name, v) in ipv6_only {
            if v == Some(true) {
                return Err(Error::new(
                    ErrorCode::InvalidParameterValue,
                    format!("{name} needs an IPv6 CIDR block; subnet {id} has none."),
                ));
            }
        }
        if flag(&req.map_customer_owned_ip_on_launch) == Some(true) {
            return Err(Error::new(ErrorCode::InvalidParameterValue, "Customer-owned IP pools exist only on Outposts."));
        }
        if let Some(t) = req.private_dns_hostname_type_on_launch.as_deref() {
            if t != "ip-name" && t != "resource-name" {
                return Err(Error::invalid_value("PrivateDnsHostnameTypeOnLaunch", t, "Valid values are ip-name and resource-name."));
            }
        }
        self.attribute_write(Target::new(IdKind::Subnet, Some(id), "SubnetId", false), |_, s: &mut SubnetRecord| {
            if let Some(v) = flag(&req.map_public_ip_on_launch) {
                s.map_public_ip_on_launch = v;
            }
            if let Some(t) = &req.private_dns_hostname_type_on_launch {
                s.private_dns_hostname_type = t.clone();
            }
            if let Some(v) = flag(&req.enable_resource_name_dns_a_record_on_launch) {
                s.enable_resource_name_dns_a_record = v;
            }
            Ok(())
        })?;
        Ok(())
    }
}
