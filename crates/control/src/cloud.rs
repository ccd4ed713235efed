//! A cloud: the regions it serves, each its own world with its own control plane (its own
//! store, default VPC, ids and hypervisor), made on first use. The API picks a region's
//! control plane from the region a request is signed for; credentials and the account live in
//! the home region's store (the `--region` of `corral serve`).
//!
//! Regions share nothing but the account, so no id of one region is ever visible from another,
//! as on AWS.

use crate::Control;
use corral_types::{Error, Result};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Makes the control plane of a region (called once per region, on first use).
pub type RegionFactory = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Arc<Control>>> + Send>> + Send + Sync>;

/// How a region name stands with this cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionStatus {
    Served,
    /// A region of the `aws` partition this cloud does not serve (as a region an account has
    /// not opted in to).
    NotEnabled,
    /// No region of this cloud or of AWS.
    Unknown,
}

pub struct Cloud {
    home: Arc<Control>,
    regions: Vec<String>,
    made: tokio::sync::Mutex<HashMap<String, Arc<Control>>>,
    factory: RegionFactory,
}

impl Cloud {
    /// `home` serves `home.region()`; `factory` makes the others in `regions` on first use.
    pub fn new(home: Arc<Control>, regions: Vec<String>, factory: RegionFactory) -> Arc<Cloud> {
        let mut made = HashMap::new();
        made.insert(home.region().to_string(), home.clone());
        Arc::new(Cloud { home, regions, made: tokio::sync::Mutex::new(made), factory })
    }

    /// The home region's control plane: its store holds the account and the credentials.
    pub fn home(&self) -> &Arc<Control> {
        &self.home
    }

    /// Every region served, the home region among them.
    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    pub fn status(&self, region: &str) -> RegionStatus {
        if self.regions.iter().any(|r| r == region) {
            RegionStatus::Served
        } else if corral_types::region::aws_region(region).is_some() {
            RegionStatus::NotEnabled
        } else {
            RegionStatus::Unknown
        }
    }

    /// The control plane of a served region, made on first use.
    pub async fn region(&self, name: &str) -> Result<Arc<Control>> {
        if self.status(name) != RegionStatus::Served {
            return Err(Error::internal(format!("region {name} is not served")));
        }
        let mut made = self.made.lock().await;
        if let Some(c) = made.get(name) {
            return Ok(c.clone());
        }
        tracing::info!(region = name, "opening region");
        let c = (self.factory)(name.to_string()).await?;
        made.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// The regions opened so far.
    pub async fn opened(&self) -> Vec<Arc<Control>> {
        self.made.lock().await.values().cloned().collect()
    }
}

/// The served set for `--regions`: `all` is every region of the `aws` partition; the home
/// region is always served. Unknown names are refused.
pub fn served_regions(home: &str, spec: &str) -> Result<Vec<String>> {
    let mut out = vec![home.to_string()];
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            out.extend(corral_types::region::AWS_REGIONS.iter().map(|r| r.name.to_string()));
        } else if corral_types::region::aws_region(name).is_some() || name == home {
            out.push(name.to_string());
        } else {
            return Err(Error::internal(format!("--regions: {name} is not a region of the aws partition")));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_sets() {
        assert_eq!(served_regions("local-1", "").unwrap(), vec!["local-1"]);
        let all = served_regions("local-1", "all").unwrap();
        assert_eq!(all.len(), corral_types::region::AWS_REGIONS.len() + 1);
        assert_eq!(served_regions("us-east-1", "us-west-2, us-east-1").unwrap(), vec!["us-east-1", "us-west-2"]);
        assert!(served_regions("local-1", "mars-north-1").is_err());
    }
}
