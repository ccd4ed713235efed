//! Internet gateways and route tables. A subnet reaches the internet gateway when its route
//! table (its own association, else the VPC's main table) has a route to an attached gateway;
//! only then do its instances' public and elastic IPs answer, as on AWS.

use crate::describe::{Describe, FilterLine};
use crate::lookup::get;
use crate::{filter, tag, Control};
use corral_ec2_query::requests as rq;
use corral_store::{
    InternetGatewayRecord, RouteRecord, RouteTableAssociationRecord, RouteTableRecord, SubnetRecord, TagRecord, Tx, VpcRecord,
};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};

pub struct InternetGateway {
    pub rec: InternetGatewayRecord,
    pub tags: Vec<TagRecord>,
}

pub struct RouteTable {
    pub rec: RouteTableRecord,
    pub tags: Vec<TagRecord>,
}

crate::described_as_tagged!(InternetGateway, InternetGatewayRecord, IdKind::InternetGateway, igw_id);
crate::described_as_tagged!(RouteTable, RouteTableRecord, IdKind::RouteTable, route_table_id);

const IGW_FILTERS: &[FilterLine<InternetGateway>] = &[
    ("internet-gateway-id", |g, _| vec![g.rec.igw_id.clone()]),
    ("attachment.vpc-id", |g, _| g.rec.vpc_id.iter().cloned().collect()),
    ("attachment.state", |g, _| g.rec.vpc_id.iter().map(|_| "available".to_string()).collect()),
    ("owner-id", |_, s| vec![s.account_id.to_string()]),
];

const ROUTE_TABLE_FILTERS: &[FilterLine<RouteTable>] = &[
    ("route-table-id", |t, _| vec![t.rec.route_table_id.clone()]),
    ("vpc-id", |t, _| vec![t.rec.vpc_id.clone()]),
    ("association.main", |t, _| t.rec.associations.iter().map(|a| a.main.to_string()).collect()),
    ("association.subnet-id", |t, _| t.rec.associations.iter().filter_map(|a| a.subnet_id.clone()).collect()),
    ("association.route-table-association-id", |t, _| t.rec.associations.iter().map(|a| a.association_id.clone()).collect()),
    ("route.destination-cidr-block", |t, _| t.rec.routes.iter().map(|x| x.destination.clone()).collect()),
    ("route.gateway-id", |t, _| t.rec.routes.iter().map(|x| x.gateway_id.clone()).filter(|g| !g.is_empty()).collect()),
    ("route.network-interface-id", |t, _| t.rec.routes.iter().filter_map(|x| x.network_interface_id.clone()).collect()),
    ("route.instance-id", |t, _| t.rec.routes.iter().filter_map(|x| x.instance_id.clone()).collect()),
    ("route.origin", |t, _| t.rec.routes.iter().map(|x| x.origin.clone()).collect()),
    ("owner-id", |_, s| vec![s.account_id.to_string()]),
];

/// A VPC's main route table with its local route.
pub(crate) fn main_table(vpc: &VpcRecord) -> RouteTableRecord {
    RouteTableRecord {
        route_table_id: ResourceId::generate(IdKind::RouteTable).into_string(),
        vpc_id: vpc.vpc_id.clone(),
        routes: vec![RouteRecord {
            destination: vpc.cidr.clone(),
            gateway_id: "local".into(),
            network_interface_id: None,
            instance_id: None,
            origin: "CreateRouteTable".into(),
        }],
        associations: vec![RouteTableAssociationRecord {
            association_id: ResourceId::generate(IdKind::RouteTableAssociation).into_string(),
            subnet_id: None,
            main: true,
        }],
    }
}

/// Whether `subnet`'s effective route table sends 0.0.0.0/0 (or any route) to an attached IGW.
pub fn routes_to_igw(tx: &Tx<'_>, subnet: &SubnetRecord) -> Result<bool> {
    let tables = tx.doc_list_by_parent::<RouteTableRecord>(&subnet.vpc_id)?;
    let table = tables
        .iter()
        .find(|t| t.associations.iter().any(|a| a.subnet_id.as_deref() == Some(&subnet.subnet_id)))
        .or_else(|| tables.iter().find(|t| t.associations.iter().any(|a| a.main)));
    let Some(table) = table else { return Ok(false) };
    for r in &table.routes {
        if r.gateway_id.starts_with("igw-") {
            if let Some(g) = tx.doc_get::<InternetGatewayRecord>(&r.gateway_id)? {
                if g.vpc_id.as_deref() == Some(&subnet.vpc_id) {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

impl Control {
    pub fn igw_create(&self, req: &rq::CreateInternetGateway) -> Result<InternetGateway> {
        let tags = tag::from_specifications(&req.tag_specifications, "internet-gateway", &["internet-gateway"])?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        let rec = InternetGatewayRecord { igw_id: ResourceId::generate(IdKind::InternetGateway).into_string(), vpc_id: None };
        let tags = self.store.transaction(|tx| {
            self.config.quotas.check("internet-gateways", tx.doc_list::<InternetGatewayRecord>()?.len() + 1)?;
            tx.doc_put(&rec)?;
            tag::insert(tx, &rec.igw_id, "internet-gateway", &tags)
        })?;
        Ok(InternetGateway { rec, tags })
    }

    pub fn igw_attach(&self, req: &rq::AttachInternetGateway) -> Result<()> {
        let igw_id = req.internet_gateway_id.as_deref().ok_or_else(|| Error::missing("InternetGatewayId"))?;
        let vpc_id = req.vpc_id.as_deref().ok_or_else(|| Error::missing("VpcId"))?;
        self.store.transaction(|tx| {
            let mut g: InternetGatewayRecord = get(tx, IdKind::InternetGateway, igw_id)?;
            let _: VpcRecord = get(tx, IdKind::Vpc, vpc_id)?;
            if let Some(v) = &g.vpc_id {
                return Err(Error::new(
                    ErrorCode::ResourceAlreadyAssociated,
                    format!("resource {igw_id} is already attached to network {v}"),
                ));
            }
            if tx.doc_list::<InternetGatewayRecord>()?.iter().any(|o| o.vpc_id.as_deref() == Some(vpc_id)) {
                return Err(Error::new(
                    ErrorCode::ResourceAlreadyAssociated,
                    format!("Network {vpc_id} already has an internet gateway attached"),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            g.vpc_id = Some(vpc_id.to_string());
            tx.doc_put(&g)?;
            Ok(())
        })?;
        self.kick_host();
        Ok(())
    }

    pub fn igw_detach(&self, req: &rq::DetachInternetGateway) -> Result<()> {
        let igw_id = req.internet_gateway_id.as_deref().ok_or_else(|| Error::missing("InternetGatewayId"))?;
        let vpc_id = req.vpc_id.as_deref().ok_or_else(|| Error::missing("VpcId"))?;
        self.store.transaction(|tx| {
            let mut g: InternetGatewayRecord = get(tx, IdKind::InternetGateway, igw_id)?;
            if g.vpc_id.as_deref() != Some(vpc_id) {
                return Err(Error::new(ErrorCode::GatewayNotAttached, format!("resource {igw_id} is not attached to network {vpc_id}")));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            g.vpc_id = None;
            tx.doc_put(&g)?;
            Ok(())
        })?;
        self.kick_host();
        Ok(())
    }

    pub fn igw_delete(&self, req: &rq::DeleteInternetGateway) -> Result<()> {
        let igw_id = req.internet_gateway_id.as_deref().ok_or_else(|| Error::missing("InternetGatewayId"))?;
        self.store.transaction(|tx| {
            let g: InternetGatewayRecord = get(tx, IdKind::InternetGateway, igw_id)?;
            if g.vpc_id.is_some() {
                return Err(Error::new(
                    ErrorCode::DependencyViolation,
                    format!("The internetGateway '{igw_id}' has dependencies and cannot be deleted."),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_delete::<InternetGatewayRecord>(igw_id)?;
            tx.tag_delete_all(igw_id)?;
            Ok(())
        })
    }

    pub fn igw_describe(&self, req: &rq::DescribeInternetGateways) -> Result<(Vec<InternetGateway>, Option<String>)> {
        let d = Describe::new(&req.internet_gateway_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        self.describe(&d.table(IGW_FILTERS), |_| true)
    }

    pub fn route_table_create(&self, req: &rq::CreateRouteTable) -> Result<RouteTable> {
        let vpc_id = req.vpc_id.as_deref().ok_or_else(|| Error::missing("VpcId"))?;
        let tags = tag::from_specifications(&req.tag_specifications, "route-table", &["route-table"])?;
        self.store.transaction(|tx| {
            let vpc: VpcRecord = get(tx, IdKind::Vpc, vpc_id)?;
            if req.dry_run {
                return Err(Error::dry_run());
            }
            self.config.quotas.check("route-tables-per-vpc", tx.doc_list_by_parent::<RouteTableRecord>(vpc_id)?.len() + 1)?;
            let mut rec = main_table(&vpc);
            rec.associations.clear();
            tx.doc_put(&rec)?;
            let tags = tag::insert(tx, &rec.route_table_id, "route-table", &tags)?;
            Ok(RouteTable { rec, tags })
        })
    }

    pub fn route_table_delete(&self, req: &rq::DeleteRouteTable) -> Result<()> {
        let id = req.route_table_id.as_deref().ok_or_else(|| Error::missing("RouteTableId"))?;
        self.store.transaction(|tx| {
            let t: RouteTableRecord = get(tx, IdKind::RouteTable, id)?;
            if !t.associations.is_empty() {
                return Err(Error::new(
                    ErrorCode::DependencyViolation,
                    format!("The routeTable '{id}' has dependencies and cannot be deleted."),
                ));
            }
            if req.dry_run {
                return Err(Error::dry_run());
            }
            tx.doc_delete::<RouteTableRecord>(id)?;
            tx.tag_delete_all(id)?;
            Ok(())
        })
    }

    pub fn route_table_describe(
        &self,
        req: &rq::DescribeRouteTables,
        rendered: &filter::Rendered<'_, RouteTable>,
    ) -> Result<(Vec<RouteTable>, Option<String>)> {
        let d = Describe::new(&req.route_table_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        self.describe(&d.table(ROUTE_TABLE_FILTERS).rendered(Some(rendered)), |_| true)
    }
}
