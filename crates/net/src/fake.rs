//! [`FakeNet`]: a [`NetDriver`] that touches nothing. It validates and records every desired
//! state it is given, answers with the report the real driver would give, and fails on
//! demand, so control-plane tests can check what they asked for and their undo paths.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::names::{netns_name, port_ifname};
use crate::spec::{DesiredNet, NetConfig, NetReport, VpcReport};
use crate::{NetDriver, NetError};

pub struct FakeNet {
    config: NetConfig,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    applied: Vec<DesiredNet>,
    failures: VecDeque<String>,
}

impl FakeNet {
    pub fn new(config: NetConfig) -> Self {
        FakeNet { config, inner: Mutex::new(Inner::default()) }
    }

    /// The next `apply` fails with `NetError::Injected(message)` (queued: one per call).
    pub fn fail_next(&self, message: impl Into<String>) {
        self.inner.lock().expect("poisoned").failures.push_back(message.into());
    }

    /// Every desired state applied successfully, oldest first.
    pub fn applied(&self) -> Vec<DesiredNet> {
        self.inner.lock().expect("poisoned").applied.clone()
    }

    /// The last desired state applied successfully: what the "host" now looks like.
    pub fn current(&self) -> DesiredNet {
        self.inner.lock().expect("poisoned").applied.last().cloned().unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl NetDriver for FakeNet {
    async fn apply(&self, desired: &DesiredNet) -> Result<NetReport, NetError> {
        let mut inner = self.inner.lock().expect("poisoned");
        if let Some(msg) = inner.failures.pop_front() {
            return Err(NetError::Injected(msg));
        }
        crate::spec::validate(desired, &self.config)?;
        let before: Vec<String> = inner
            .applied
            .last()
            .map(|d| d.vpcs.iter().filter(|v| !v.ports.is_empty()).map(|v| self.netns_for(&v.vpc_id)).collect())
            .unwrap_or_default();
        let mut report = NetReport::default();
        for v in desired.vpcs.iter().filter(|v| !v.ports.is_empty()) {
            report.vpcs.push(VpcReport {
                vpc_id: v.vpc_id.clone(),
                netns: self.netns_for(&v.vpc_id),
                ports: v.ports.iter().map(|p| (p.eni_id.clone(), self.tap_for(&p.eni_id))).collect(),
            });
        }
        for ns in before {
            if !report.vpcs.iter().any(|v| v.netns == ns) {
                report.removed.push(format!("namespace {ns}"));
            }
        }
        inner.applied.push(desired.clone());
        Ok(report)
    }

    fn netns_for(&self, vpc_id: &str) -> String {
        netns_name(&self.config.ns_prefix, vpc_id)
    }

    fn tap_for(&self, eni_id: &str) -> String {
        port_ifname(eni_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{PortLink, PortSpec, SubnetSpec, VpcSpec};
    use std::net::Ipv4Addr;

    fn desired(ports: usize) -> DesiredNet {
        DesiredNet {
            vpcs: vec![VpcSpec {
                vpc_id: "vpc-1".into(),
                cidr: "10.0.0.0/16".parse().unwrap(),
                subnets: vec![SubnetSpec { subnet_id: "subnet-1".into(), cidr: "10.0.1.0/24".parse().unwrap(), routes_to_igw: false }],
                ports: (0..ports)
                    .map(|i| {
                        std::sync::Arc::new(PortSpec {
                            eni_id: format!("eni-{i}"),
                            instance_id: format!("i-{i}"),
                            subnet_id: "subnet-1".into(),
                            mac: [2, 0, 0, 0, 0, 10 + i as u8],
                            ip: Ipv4Addr::new(10, 0, 1, 10 + i as u8),
                            hostname: format!("h{i}"),
                            public_ip: None,
                            groups: vec![],
                            link: PortLink::Tap,
                            source_dest_check: true,
                        })
                    })
                    .collect(),
                groups: vec![],
                routes: vec![],
            }],
        }
    }

    #[tokio::test]
    async fn records_reports_and_fails_on_demand() {
        let f = FakeNet::new(NetConfig::new("/nowhere"));
        let r = f.apply(&desired(2)).await.unwrap();
        assert_eq!(r.vpcs[0].netns, "corral-vpc-1");
        assert_eq!(r.vpcs[0].ports.len(), 2);
        f.fail_next("boom");
        assert!(matches!(f.apply(&desired(1)).await, Err(NetError::Injected(m)) if m == "boom"));
        assert_eq!(f.current(), desired(2), "a failed apply changes nothing");
        let r = f.apply(&desired(0)).await.unwrap();
        assert_eq!(r.removed, vec!["namespace corral-vpc-1".to_string()]);
        assert_eq!(f.applied().len(), 2);
    }
}
