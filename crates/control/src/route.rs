//! Routes and route table associations: CreateRoute, ReplaceRoute, DeleteRoute, and
//! Associate, Replace and DisassociateRouteTable. Routes lead to internet gateways (the only
//! target Corral has so far); the host follows every change (see `gateway.rs`).

use crate::lookup::{get, parse_id};
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::{EniRecord, InternetGatewayRecord, RouteRecord, RouteTableAssociationRecord, RouteTableRecord, SubnetRecord, Tx};
use corral_types::{Cidr, Error, ErrorCode, IdKind, ResourceId, Result};

/// Where a route leads: an internet gateway, or an interface (of an instance) that forwards.
struct Target {
    gateway_id: String,
    network_interface_id: Option<String>,
    instance_id: Option<String>,
}

/// The destination and target of a CreateRoute or ReplaceRoute, checked: exactly one of an
/// attached internet gateway of the table's VPC, an interface in that VPC, or an instance
/// there (its primary interface).
fn route_target(tx: &Tx<'_>, t: &RouteTableRecord, req: &rq::CreateRoute) -> Result<(Cidr, Target)> {
    let dest = req.destination_cidr_block.as_deref().ok_or_else(|| Error::missing("DestinationCidrBlock"))?;
    let cidr = dest.parse::<Cidr>().map_err(|_| Error::invalid_value("DestinationCidrBlock", dest, "Not a CIDR block."))?.network();
    let other_network = |what: &str| {
        Error::new(ErrorCode::InvalidParameterValue, format!("route table {} and {what} belong to different networks", t.route_table_id))
    };
    match (req.gateway_id.as_deref(), req.network_interface_id.as_deref(), req.instance_id.as_deref()) {
        (Some(gw), None, None) => {
            let g: InternetGatewayRecord = get(tx, IdKind::InternetGateway, gw)?;
            if g.vpc_id.as_deref() != Some(&t.vpc_id) {
                return Err(other_network(&format!("network gateway {gw}")));
            }
            Ok((cidr, Target { gateway_id: gw.to_string(), network_interface_id: None, instance_id: None }))
        }
        (None, Some(eni), None) => {
            let e: EniRecord = get(tx, IdKind::NetworkInterface, eni)?;
            let s: SubnetRecord = get(tx, IdKind::Subnet, &e.subnet_id)?;
            if s.vpc_id != t.vpc_id {
                return Err(other_network(&format!("network interface {eni}")));
            }
            Ok((cidr, Target { gateway_id: String::new(), network_interface_id: Some(eni.to_string()), instance_id: e.instance_id }))
        }
        (None, None, Some(instance)) => {
            parse_id(IdKind::Instance, instance)?;
            let e = tx
                .eni_list_for_instance(instance)?
                .into_iter()
                .find(|e| e.device_index == 0)
                .ok_or_else(|| Error::not_found(IdKind::Instance, instance))?;
            let s: SubnetRecord = get(tx, IdKind::Subnet, &e.subnet_id)?;
            if s.vpc_id != t.vpc_id {
                return Err(other_network(&format!("instance {instance}")));
            }
            Ok((cidr, Target { gateway_id: String::new(), network_interface_id: Some(e.eni_id), instance_id: Some(instance.to_string()) }))
        }
        _ => Err(Error::new(
            ErrorCode::MissingParameter,
            "The request must contain exactly one of gatewayId, natGatewayId, networkInterfaceId, vpcPeeringConnectionId or instanceId",
        )),
    }
}

/// A route table's association and its table.
fn association(tx: &Tx<'_>, assoc: &str) -> Result<RouteTableRecord> {
    parse_id(IdKind::RouteTableAssociation, assoc)?;
    tx.doc_list::<RouteTableRecord>()?
        .into_iter()
        .find(|t| t.associations.iter().any(|a| a.association_id == assoc))
        .ok_or_else(|| Error::not_found(IdKind::RouteTableAssociation, assoc))
}

impl Control {
    pub fn route_create(&self, req: &rq::CreateRoute) -> Result<()> {
        let id = req.route_table_id.as_deref().ok_or_else(|| Error::missing("RouteTableId"))?;
        self.store.transaction(|tx| {
            let mut t: RouteTableRecord = get(tx, IdKind::RouteTable, id)?;
            let (cidr, to) = route_target(tx, &t, req)?;
            if t.routes.iter().any(|r| r.destination == cidr.to_string()) {
                return Err(Error::new(ErrorCode::RouteAlreadyExists, format!("The route identified by {cidr} already exists.")));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            self.config.quotas.check("routes-per-table", t.routes.iter().filter(|r| r.gateway_id != "local").count() + 1)?;
            t.routes.push(RouteRecord {
                destination: cidr.to_string(),
                gateway_id: to.gateway_id,
                network_interface_id: to.network_interface_id,
                instance_id: to.instance_id,
                origin: "CreateRoute".into(),
            });
            tx.doc_put(&t)?;
            Ok(())
        })?;
        self.kick_host();
        Ok(())
    }

    pub fn route_delete(&self, req: &rq::DeleteRoute) -> Result<()> {
        let id = req.route_table_id.as_deref().ok_or_else(|| Error::missing("RouteTableId"))?;
        let dest = req.destination_cidr_block.as_deref().ok_or_else(|| Error::missing("DestinationCidrBlock"))?;
        self.store.transaction(|tx| {
            let mut t: RouteTableRecord = get(tx, IdKind::RouteTable, id)?;
            let pos = t.routes.iter().position(|r| r.destination == dest && r.gateway_id != "local").ok_or_else(|| {
                Error::new(ErrorCode::InvalidRouteNotFound, format!("no route with destination-cidr-block {dest} in route table {id}"))
            })?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            t.routes.remove(pos);
            tx.doc_put(&t)?;
            Ok(())
        })?;
        self.kick_host();
        Ok(())
    }

    pub fn route_table_associate(&self, req: &rq::AssociateRouteTable) -> Result<String> {
        let id = req.route_table_id.as_deref().ok_or_else(|| Error::missing("RouteTableId"))?;
        let subnet_id = req.subnet_id.as_deref().ok_or_else(|| Error::missing("SubnetId"))?;
        let out = self.store.transaction(|tx| {
            let mut t: RouteTableRecord = get(tx, IdKind::RouteTable, id)?;
            let s: SubnetRecord = get(tx, IdKind::Subnet, subnet_id)?;
            if s.vpc_id != t.vpc_id {
                return Err(Error::new(
                    ErrorCode::InvalidParameterValue,
                    format!("Route table {id} and subnet {subnet_id} belong to different networks"),
                ));
            }
            let taken = tx
                .doc_list_by_parent::<RouteTableRecord>(&t.vpc_id)?
                .iter()
                .any(|o| o.associations.iter().any(|a| a.subnet_id.as_deref() == Some(subnet_id)));
            if taken {
                return Err(Error::new(
                    ErrorCode::ResourceAlreadyAssociated,
                    format!("the specified association for route table {id} conflicts with an existing association"),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let assoc = ResourceId::generate(IdKind::RouteTableAssociation).into_string();
            t.associations.push(RouteTableAssociationRecord {
                association_id: assoc.clone(),
                subnet_id: Some(subnet_id.to_string()),
                main: false,
            });
            tx.doc_put(&t)?;
            Ok(assoc)
        })?;
        self.kick_host();
        Ok(out)
    }

    pub fn route_table_disassociate(&self, req: &rq::DisassociateRouteTable) -> Result<()> {
        let assoc = req.association_id.as_deref().ok_or_else(|| Error::missing("AssociationId"))?;
        self.store.transaction(|tx| {
            let mut t = association(tx, assoc)?;
            if t.associations.iter().any(|a| a.association_id == assoc && a.main) {
                return Err(Error::new(ErrorCode::InvalidParameterValue, "The main route table association cannot be removed."));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            t.associations.retain(|a| a.association_id != assoc);
            tx.doc_put(&t)?;
            Ok(())
        })?;
        self.kick_host();
        Ok(())
    }

    /// ReplaceRoute: the route to a destination gets another target.
    pub fn route_replace(&self, req: &rq::ReplaceRoute) -> Result<()> {
        let id = req.route_table_id.as_deref().ok_or_else(|| Error::missing("RouteTableId"))?;
        self.store.transaction(|tx| {
            let mut t: RouteTableRecord = get(tx, IdKind::RouteTable, id)?;
            let (cidr, to) = route_target(tx, &t, req)?;
            let dest = cidr.to_string();
            let route = t.routes.iter_mut().find(|r| r.destination == dest && r.gateway_id != "local").ok_or_else(|| {
                Error::new(ErrorCode::InvalidParameterValue, format!("There is no route defined for '{dest}' in the route table."))
            })?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            route.gateway_id = to.gateway_id;
            route.network_interface_id = to.network_interface_id;
            route.instance_id = to.instance_id;
            route.origin = "CreateRoute".into();
            tx.doc_put(&t)?;
            Ok(())
        })?;
        self.kick_host();
        Ok(())
    }

    /// ReplaceRouteTableAssociation: a subnet (or the VPC's main association) moves to
    /// another table of the same VPC under a new association id, which is returned.
    pub fn route_table_association_replace(&self, req: &rq::ReplaceRouteTableAssociation) -> Result<String> {
        let assoc = req.association_id.as_deref().ok_or_else(|| Error::missing("AssociationId"))?;
        let id = req.route_table_id.as_deref().ok_or_else(|| Error::missing("RouteTableId"))?;
        let out = self.store.transaction(|tx| {
            let mut from = association(tx, assoc)?;
            let mut to: RouteTableRecord = get(tx, IdKind::RouteTable, id)?;
            if to.vpc_id != from.vpc_id {
                return Err(Error::new(
                    ErrorCode::InvalidParameterValue,
                    format!("Route table {id} and association {assoc} belong to different networks"),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            let old = from.associations.iter().find(|a| a.association_id == assoc).cloned().expect("association found above");
            let new_id = ResourceId::generate(IdKind::RouteTableAssociation).into_string();
            from.associations.retain(|a| a.association_id != assoc);
            if from.route_table_id == to.route_table_id {
                to = from;
            } else {
                tx.doc_put(&from)?;
            }
            to.associations.push(RouteTableAssociationRecord { association_id: new_id.clone(), ..old });
            tx.doc_put(&to)?;
            Ok(new_id)
        })?;
        self.kick_host();
        Ok(out)
    }
}
