//! The one attribute of an Elastic IP: its reverse DNS name (`domain-name`), read with
//! DescribeAddressesAttribute, set with ModifyAddressAttribute, put back with
//! ResetAddressAttribute. Without one set, an address has EC2's default name.

use crate::address::Address;
use crate::describe::Describe;
use crate::lookup::get;
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::AddressRecord;
use corral_types::{Error, IdKind, Result};

/// (allocation id, public IP, reverse DNS name).
pub type AddressAttribute = (String, String, String);

/// EC2's default reverse name of a public IP (`ec2-198-18-0-5.local-1.compute.amazonaws.com`).
pub fn default_ptr(ip: &str, region: &str) -> String {
    format!("ec2-{}.{region}.compute.amazonaws.com", ip.replace('.', "-"))
}

fn check_attribute(a: Option<&str>) -> Result<()> {
    match a {
        Some("domain-name") => Ok(()),
        Some(other) => Err(Error::invalid_value("Attribute", other, "The only address attribute is domain-name.")),
        None => Err(Error::missing("Attribute")),
    }
}

impl Control {
    fn address_attribute(&self, a: &AddressRecord) -> AddressAttribute {
        let ptr = a.ptr_record.clone().unwrap_or_else(|| default_ptr(&a.public_ip, self.region()));
        (a.allocation_id.clone(), a.public_ip.clone(), ptr)
    }

    pub fn address_attribute_describe(&self, req: &rq::DescribeAddressesAttribute) -> Result<(Vec<AddressAttribute>, Option<String>)> {
        // Optional here: domain-name is the only attribute.
        check_attribute(req.attribute.as_deref().or(Some("domain-name")))?;
        let d = Describe::<Address>::new(&req.allocation_ids, &[], req.dry_run, req.max_results, req.next_token.as_deref()).bounds(1, 1000);
        let (items, next) = self.describe(&d, |_| true)?;
        Ok((items.iter().map(|a| self.address_attribute(&a.rec)).collect(), next))
    }

    pub fn address_attribute_reset(&self, req: &rq::ResetAddressAttribute) -> Result<AddressAttribute> {
        check_attribute(req.attribute.as_deref())?;
        self.address_attribute_set(req.allocation_id.as_deref(), None, req.dry_run)
    }

    /// ModifyAddressAttribute (`Some(name)`) and ResetAddressAttribute (`None`).
    pub fn address_attribute_set(&self, allocation_id: Option<&str>, domain_name: Option<&str>, dry_run: bool) -> Result<AddressAttribute> {
        let id = allocation_id.ok_or_else(|| Error::missing("AllocationId"))?;
        if let Some(name) = domain_name {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name
                    .trim_end_matches('.')
                    .split('.')
                    .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if !ok {
                return Err(Error::invalid_value("DomainName", name, "Not a valid domain name."));
            }
        }
        self.store.transaction(|tx| {
            let mut a: AddressRecord = get(tx, IdKind::Allocation, id)?;
            if dry_run {
                return Err(Error::dry_run());
            }
            a.ptr_record = domain_name.map(|n| n.trim_end_matches('.').to_string());
            tx.doc_put(&a)?;
            Ok(self.address_attribute(&a))
        })
    }
}
