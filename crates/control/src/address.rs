//! Public addresses: the host's public pool, elastic IPs (AllocateAddress and friends) and the
//! public IP an instance gets at launch in a subnet that maps one. Whether a public address
//! answers is the data path's business: only when the subnet routes to an attached internet
//! gateway and the security groups allow it.

use crate::describe::{Describe, FilterLine};
use crate::lookup::{get, parse_id};
use crate::{filter, tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{AddressRecord, EniRecord, TagRecord, Tx};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};
use std::net::Ipv4Addr;

pub struct Address {
    pub rec: AddressRecord,
    pub tags: Vec<TagRecord>,
}

crate::described_as_tagged!(Address, AddressRecord, IdKind::Allocation, allocation_id);

/// DescribeAddresses' filters besides those its view answers.
const ADDRESS_FILTERS: &[FilterLine<Address>] = &[
    ("allocation-id", |a, _| vec![a.rec.allocation_id.clone()]),
    ("association-id", |a, _| a.rec.association_id.iter().cloned().collect()),
    ("instance-id", |a, _| a.rec.instance_id.iter().cloned().collect()),
    ("network-interface-id", |a, _| a.rec.eni_id.iter().cloned().collect()),
    ("private-ip-address", |a, _| a.rec.private_ip.iter().cloned().collect()),
    ("public-ip", |a, _| vec![a.rec.public_ip.clone()]),
    ("domain", |_, _| vec!["vpc".into()]),
    ("network-interface-owner-id", |a, s| a.rec.eni_id.iter().map(|_| s.account_id.to_string()).collect()),
];

/// The allocator's name for the public pool (`alloc.rs`).
pub(crate) const PUBLIC_POOL: &str = "public-pool";

impl Control {
    /// A free address of the public pool (neither an elastic IP nor an interface's).
    pub(crate) fn public_ip_allocate(&self, tx: &Tx<'_>) -> Result<Ipv4Addr> {
        let pool = self.config.public_pool;
        // The pool's first and last addresses are not handed out.
        let count = pool.size().saturating_sub(2);
        let taken = |ip: Ipv4Addr| -> Result<bool> {
            let ip = ip.to_string();
            Ok(tx.doc_field_taken::<AddressRecord>("public_ip", &ip, None)? || tx.doc_field_taken::<EniRecord>("public_ip", &ip, None)?)
        };
        self.cursors
            .next_free(PUBLIC_POOL, count, |i| pool.nth(i + 1), taken)?
            .ok_or_else(|| Error::new(ErrorCode::AddressLimitExceeded, "The public address pool is exhausted."))
    }
}

impl Control {
    pub fn address_allocate(&self, req: &rq::AllocateAddress) -> Result<AddressRecord> {
        if let Some(d) = req.domain.as_deref() {
            if d != "vpc" && d != "standard" {
                return Err(Error::invalid_value("Domain", d, "Valid values are vpc and standard."));
            }
        }
        if req.address.is_some() {
            return Err(Error::new(ErrorCode::Unsupported, "Bring-your-own addresses are not supported."));
        }
        let tags = tag::from_specifications(&req.tag_specifications, "elastic-ip", &["elastic-ip"])?;
        self.store.transaction(|tx| {
            self.config.quotas.check("elastic-ips", tx.doc_list::<AddressRecord>()?.len() + 1)?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let ip = self.public_ip_allocate(tx)?;
            let rec = AddressRecord {
                allocation_id: ResourceId::generate(IdKind::Allocation).into_string(),
                public_ip: ip.to_string(),
                association_id: None,
                eni_id: None,
                instance_id: None,
                private_ip: None,
                ptr_record: None,
            };
            tx.doc_put(&rec)?;
            tag::insert(tx, &rec.allocation_id, "elastic-ip", &tags)?;
            Ok(rec)
        })
    }

    fn address_find(&self, tx: &Tx<'_>, allocation_id: Option<&str>, public_ip: Option<&str>) -> Result<AddressRecord> {
        match (allocation_id, public_ip) {
            (Some(id), _) => get(tx, IdKind::Allocation, id),
            (None, Some(ip)) => tx
                .doc_list::<AddressRecord>()?
                .into_iter()
                .find(|a| a.public_ip == ip)
                .ok_or_else(|| Error::new(ErrorCode::InvalidAddressNotFound, format!("Address '{ip}' not found."))),
            (None, None) => Err(Error::missing("AllocationId")),
        }
    }

    pub fn address_associate(&self, req: &rq::AssociateAddress) -> Result<String> {
        let out = self.store.transaction(|tx| {
            let mut addr = self.address_find(tx, req.allocation_id.as_deref(), req.public_ip.as_deref())?;
            let mut eni: EniRecord = match (&req.network_interface_id, &req.instance_id) {
                (Some(id), _) => get(tx, IdKind::NetworkInterface, id)?,
                (None, Some(iid)) => {
                    parse_id(IdKind::Instance, iid)?;
                    tx.instance_get(iid)?.ok_or_else(|| Error::not_found(IdKind::Instance, iid))?;
                    tx.eni_list_for_instance(iid)?
                        .into_iter()
                        .find(|e| e.device_index == 0)
                        .ok_or_else(|| Error::new(ErrorCode::InvalidParameterValue, format!("Instance {iid} has no network interface.")))?
                }
                (None, None) => return Err(Error::missing("InstanceId")),
            };
            if let Some(p) = &req.private_ip_address {
                if *p != eni.private_ip {
                    return Err(Error::invalid_value("PrivateIpAddress", p, "Not an address of the interface."));
                }
            }
            if addr.association_id.is_some() && !req.allow_reassociation.unwrap_or(false) && addr.eni_id.as_deref() != Some(&eni.eni_id) {
                return Err(Error::new(
                    ErrorCode::ResourceAlreadyAssociated,
                    format!("resource {} is already associated", addr.allocation_id),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            // Moving an address: the interface it leaves loses it.
            if let Some(old) = addr.eni_id.clone().filter(|o| *o != eni.eni_id) {
                if let Some(mut o) = tx.doc_get::<EniRecord>(&old)? {
                    o.public_ip = None;
                    o.public_ip_allocation = None;
                    tx.doc_put(&o)?;
                }
            }
            // The interface's own pool address (if any) is given back for the elastic one.
            let assoc = ResourceId::generate(IdKind::Association).into_string();
            eni.public_ip = Some(addr.public_ip.clone());
            eni.public_ip_allocation = Some(addr.allocation_id.clone());
            tx.doc_put(&eni)?;
            addr.association_id = Some(assoc.clone());
            addr.eni_id = Some(eni.eni_id.clone());
            addr.instance_id = eni.instance_id.clone();
            addr.private_ip = Some(eni.private_ip.clone());
            tx.doc_put(&addr)?;
            Ok(assoc)
        })?;
        self.kick_host();
        Ok(out)
    }

    pub fn address_disassociate(&self, req: &rq::DisassociateAddress) -> Result<()> {
        self.store.transaction(|tx| {
            let mut addr = match (&req.association_id, &req.public_ip) {
                (Some(id), _) => {
                    parse_id(IdKind::Association, id)?;
                    tx.doc_list::<AddressRecord>()?
                        .into_iter()
                        .find(|a| a.association_id.as_deref() == Some(id))
                        .ok_or_else(|| Error::not_found(IdKind::Association, id))?
                }
                (None, Some(ip)) => self.address_find(tx, None, Some(ip))?,
                (None, None) => return Err(Error::missing("AssociationId")),
            };
            if req.dry_run {
                return Err(Error::dry_run());
            }
            if let Some(e) = addr.eni_id.take() {
                if let Some(mut eni) = tx.doc_get::<EniRecord>(&e)? {
                    eni.public_ip = None;
                    eni.public_ip_allocation = None;
                    tx.doc_put(&eni)?;
                }
            }
            addr.association_id = None;
            addr.instance_id = None;
            addr.private_ip = None;
            tx.doc_put(&addr)?;
            Ok(())
        })?;
        self.kick_host();
        Ok(())
    }

    pub fn address_release(&self, req: &rq::ReleaseAddress) -> Result<()> {
        if let Some(g) = req.network_border_group.as_deref().filter(|g| *g != self.region()) {
            return Err(Error::invalid_value("NetworkBorderGroup", g, "The address's network border group is its region."));
        }
        self.store.transaction(|tx| {
            let addr = self.address_find(tx, req.allocation_id.as_deref(), req.public_ip.as_deref())?;
            if addr.association_id.is_some() {
                return Err(Error::new(ErrorCode::InvalidIpAddressInUse, format!("Address {} is in use.", addr.public_ip)));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_delete::<AddressRecord>(&addr.allocation_id)?;
            tx.tag_delete_all(&addr.allocation_id)?;
            Ok(())
        })
    }

    pub fn address_describe(&self, req: &rq::DescribeAddresses, rendered: &filter::Rendered<'_, Address>) -> Result<Vec<Address>> {
        let d = Describe::new(&req.allocation_ids, &req.filters, req.dry_run, None, None);
        let d = d.table(ADDRESS_FILTERS).rendered(Some(rendered));
        if !req.public_ips.is_empty() {
            let taken = self.store.read(|tx| tx.doc_field_values::<AddressRecord>("public_ip", None))?;
            if let Some(m) = req.public_ips.iter().find(|ip| !taken.contains(ip)) {
                return Err(Error::new(ErrorCode::InvalidAddressNotFound, format!("Address '{m}' not found.")));
            }
        }
        let (items, _) = self.describe(&d, |a| req.public_ips.is_empty() || req.public_ips.contains(&a.rec.public_ip))?;
        Ok(items)
    }
}
