//! The host side of the desired state besides VMs: the data path (`corral-net`) and one
//! metadata service per VPC namespace, bound to 169.254.169.254:80 inside it, answering from
//! the instance views the control plane sent.

use corral_agent_api::metadata::InstanceView;
use corral_agent_api::{AgentError, DesiredHost};
use corral_metadata::{InstanceDirectory, MetadataServer, TokenKey};
use corral_net::LinuxNet;
use corral_net::NetDriver as _;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use tokio::sync::{oneshot, Mutex};

/// Where the metadata service listens in every VPC namespace.
const METADATA_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)), 80);

/// Instance views by (VPC, private IP), swapped whole on every apply.
#[derive(Default)]
struct Directory {
    views: RwLock<HashMap<(String, Ipv4Addr), Arc<InstanceView>>>,
}

impl InstanceDirectory for Directory {
    fn view_by_ip(&self, vpc_id: &str, ip: Ipv4Addr) -> Option<Arc<InstanceView>> {
        self.views.read().unwrap_or_else(|e| e.into_inner()).get(&(vpc_id.to_string(), ip)).cloned()
    }
}

/// A running metadata service; dropping `_stop` ends it.
struct Server {
    _stop: oneshot::Sender<()>,
    netns: String,
}

pub(crate) struct HostNet {
    net: LinuxNet,
    directory: Arc<Directory>,
    tokens: TokenKey,
    servers: Mutex<HashMap<String, Server>>,
}

impl HostNet {
    pub(crate) fn new(net: LinuxNet) -> HostNet {
        HostNet { net, directory: Arc::default(), tokens: TokenKey::random(), servers: Mutex::default() }
    }

    pub(crate) async fn apply(&self, desired: &DesiredHost) -> Result<(), AgentError> {
        // Views first, so a guest that boots as soon as its port exists finds its metadata.
        let mut views = HashMap::new();
        for v in &desired.instances {
            for i in &v.interfaces {
                for ip in &i.private_ips {
                    views.insert((i.vpc_id.clone(), *ip), v.clone());
                }
            }
        }
        *self.directory.views.write().unwrap_or_else(|e| e.into_inner()) = views;
        let report = self.net.apply(&desired.net).await.map_err(|e| AgentError::host("applying the network state", e))?;
        for w in &report.warnings {
            tracing::warn!(warning = %w, "network apply");
        }
        let mut servers = self.servers.lock().await;
        let wanted: HashMap<String, String> = report.vpcs.iter().map(|v| (v.vpc_id.clone(), v.netns.clone())).collect();
        servers.retain(|vpc, s| {
            let keep = wanted.get(vpc) == Some(&s.netns);
            if !keep {
                tracing::info!(vpc, "stopping its metadata service");
            }
            keep
        });
        for (vpc, netns) in wanted {
            if servers.contains_key(&vpc) {
                continue;
            }
            let listener = corral_metadata::bind_in_netns(&netns, METADATA_ADDR)
                .await
                .map_err(|e| AgentError::host(format!("binding the metadata service in {netns}"), e))?;
            let (stop, stopped) = oneshot::channel();
            let server = MetadataServer::new(vpc.clone(), self.directory.clone(), self.tokens.clone());
            tokio::spawn(async move {
                server
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
            });
            tracing::info!(vpc, netns, "metadata service listening");
            servers.insert(vpc, Server { _stop: stop, netns });
        }
        Ok(())
    }
}
