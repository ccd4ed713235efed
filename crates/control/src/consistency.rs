//! What every committed state of a store must satisfy, whatever crash came before: each
//! reference names a record that exists (a volume's layer, a layer's backing, an attachment's
//! instance, an image's snapshots, an interface's subnet and instance, an address's interface),
//! layer chains end, an instance launched with a ClientToken exists once (its reservation's),
//! and no two interfaces of a VPC share a private address. Transitional states (an instance
//! `shutting-down`, a volume `detaching`) are allowed: the reconciler and storage recovery
//! settle them after a restart; what they name must exist all the same.
//!
//! `corral doctor --store` runs it over every region's store; the crash-injection tests run it
//! after every kill.

use corral_store::{AddressRecord, EniRecord, LayerRecord, SnapshotRecord, SubnetRecord, Tx, VolumeRecord};
use corral_types::Result;
use std::collections::{HashMap, HashSet};

/// The problems found, one line each (empty: consistent).
pub fn problems(tx: &Tx<'_>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let instances = tx.instance_list()?;
    let instance_ids: HashSet<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
    let layers: HashMap<String, LayerRecord> = tx.doc_list::<LayerRecord>()?.into_iter().map(|l| (l.layer_id.clone(), l)).collect();
    let volumes = tx.doc_list::<VolumeRecord>()?;
    let snapshots = tx.doc_list::<SnapshotRecord>()?;
    let snapshot_ids: HashSet<&str> = snapshots.iter().map(|s| s.snapshot_id.as_str()).collect();
    let subnets: HashSet<String> = tx.doc_list::<SubnetRecord>()?.into_iter().map(|s| s.subnet_id).collect();
    let enis = tx.doc_list::<EniRecord>()?;

    for l in layers.values() {
        let mut seen = HashSet::from([l.layer_id.as_str()]);
        let mut cur = l.backing.as_deref();
        while let Some(b) = cur {
            match layers.get(b) {
                None => {
                    out.push(format!("layer {} builds on layer {b}, which has no record", l.layer_id));
                    break;
                }
                Some(_) if !seen.insert(b) => {
                    out.push(format!("the chain below layer {} loops at {b}", l.layer_id));
                    break;
                }
                Some(next) => cur = next.backing.as_deref(),
            }
        }
    }
    for v in &volumes {
        if !layers.contains_key(&v.layer) {
            out.push(format!("volume {} writes to layer {}, which has no record", v.volume_id, v.layer));
        }
        if let Some(a) = &v.attachment {
            if !instance_ids.contains(a.instance_id.as_str()) {
                out.push(format!("volume {} is attached to instance {}, which has no record", v.volume_id, a.instance_id));
            }
        }
    }
    for s in &snapshots {
        // A pending snapshot's new top has no record until the snapshot completes.
        if let Some(l) = s.layer.as_ref().filter(|l| !layers.contains_key(*l)) {
            out.push(format!("snapshot {} names layer {l}, which has no record", s.snapshot_id));
        }
    }
    for img in tx.image_list()? {
        for snap in img.block_devices.iter().filter_map(|b| b.snapshot_id.as_deref()) {
            if img.state == "available" && !snapshot_ids.contains(snap) {
                out.push(format!("image {} names snapshot {snap}, which has no record", img.image_id));
            }
        }
    }
    let mut addresses: HashMap<(&str, &str), &str> = HashMap::new();
    for e in &enis {
        if !subnets.contains(&e.subnet_id) {
            out.push(format!("network interface {} is in subnet {}, which has no record", e.eni_id, e.subnet_id));
        }
        if let Some(i) = e.instance_id.as_deref().filter(|i| !instance_ids.contains(i)) {
            out.push(format!("network interface {} is attached to instance {i}, which has no record", e.eni_id));
        }
        if let Some(other) = addresses.insert((e.vpc_id.as_str(), e.private_ip.as_str()), e.eni_id.as_str()) {
            out.push(format!("network interfaces {other} and {} share address {} in {}", e.eni_id, e.private_ip, e.vpc_id));
        }
    }
    let eni_ids: HashSet<&str> = enis.iter().map(|e| e.eni_id.as_str()).collect();
    for a in tx.doc_list::<AddressRecord>()? {
        if let Some(e) = a.eni_id.as_deref().filter(|e| !eni_ids.contains(e)) {
            out.push(format!("address {} is associated with network interface {e}, which has no record", a.allocation_id));
        }
    }
    let mut tokens: HashMap<&str, &str> = HashMap::new();
    for i in &instances {
        if let Some(t) = i.client_token.as_deref() {
            if let Some(r) = tokens.insert(t, i.reservation_id.as_str()).filter(|r| *r != i.reservation_id) {
                out.push(format!("ClientToken {t:?} launched twice: reservations {r} and {}", i.reservation_id));
            }
        }
    }
    Ok(out)
}
