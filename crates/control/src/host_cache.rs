//! The desired host state kept between reconciler passes, so a pass recomputes what changed,
//! not what the host holds: the parts of the instances marked since the last pass (their
//! state, tags, interfaces or metadata options changed) and the parts of their VPCs; every
//! part after a change any of them may follow (a rule, a route, a gateway, an address), at
//! start, and every [`RECOMPUTE_ALL_EVERY`] as a backstop. Parts are shared (`Arc`), so putting the state
//! together, comparing it with the one applied and handing it to the agent cost a pointer
//! per port and per view.

use crate::fleet_work::{fleet_sized, give_back_memory, PAGE};
use crate::host::{InstancePart, Lookups, VpcPart};
use crate::vector_edit::{insert_at, remove_at};
use crate::Control;
use corral_agent_api::metadata::InstanceView;
use corral_agent_api::net::{DesiredNet, PortSpec};
use corral_agent_api::DesiredHost;
use corral_store::{EniRecord, InstanceRecord, Listed, Tx};
use corral_types::{InstanceState, Result};
use imbl::Vector;
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often every part is recomputed regardless, as a backstop for a change that marked
/// nothing. Rare: it costs the whole host (half a second at 10,000 instances).
const RECOMPUTE_ALL_EVERY: Duration = Duration::from_secs(300);

/// What must be recomputed before the desired state is put together next.
pub(crate) struct HostMarks {
    ids: HashSet<String>,
    all: bool,
    /// When every part was last recomputed.
    last_all: Option<Instant>,
}

impl Default for HostMarks {
    /// Everything, for the first pass.
    fn default() -> HostMarks {
        HostMarks { ids: HashSet::new(), all: true, last_all: None }
    }
}

/// What a refresh did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refreshed {
    /// Instances whose parts were computed.
    pub computed: usize,
    /// Whether any part differs from before (only then is the state put together again).
    pub changed: bool,
}

/// The parts as last computed, and the lists the desired state is made of, kept in step with
/// them (in launch order), so nothing is sorted or grouped again.
#[derive(Default)]
pub(crate) struct HostCache {
    /// By instance id, hashed: putting a part looks its neighbours' launch order up here a few
    /// dozen times (binary searches of the lists), which a tree of 50,000 ids made a string
    /// comparison each step of the way.
    instances: FxHashMap<String, InstancePart>,
    vpcs: BTreeMap<String, VpcPart>,
    /// Every port here, by VPC. Persistent vectors: the desired state shares them, so putting
    /// it together costs nothing whatever the host holds, and a change copies a path of the
    /// tree, not the list.
    ports: BTreeMap<String, Vector<Arc<PortSpec>>>,
    views: Vector<Arc<InstanceView>>,
    /// Instance parts computed since start.
    computed: u64,
}

impl HostCache {
    /// Puts an instance's part (or its absence) in place of the old one; says whether it
    /// differs.
    fn put(&mut self, id: &str, part: Option<InstancePart>) -> bool {
        let HostCache { instances, ports, views, .. } = self;
        let old = instances.get(id);
        if old == part.as_ref() {
            return false;
        }
        // The lists are in launch order; every item's instance has its part in `instances`
        // until the end of this function.
        let order_of = |instance: &String| instances.get(instance).map_or(i64::MAX, |p| p.order);
        if let Some(o) = old {
            if let Some(list) = ports.get_mut(&o.vpc_id) {
                let at = first_of(list, o.order, |p| order_of(&p.instance_id));
                while list.get(at).is_some_and(|p| p.instance_id == id) {
                    remove_at(list, at);
                }
            }
            let at = first_of(views, o.order, |v| order_of(&v.instance_id));
            if views.get(at).is_some_and(|v| v.instance_id == id) {
                remove_at(views, at);
            }
        }
        if let Some(p) = &part {
            let list = ports.entry(p.vpc_id.clone()).or_default();
            let at = first_of(list, p.order, |x| order_of(&x.instance_id));
            for (k, port) in p.ports.iter().enumerate() {
                insert_at(list, at + k, Arc::clone(port));
            }
            if let Some(v) = &p.view {
                let at = first_of(views, p.order, |x| order_of(&x.instance_id));
                insert_at(views, at, Arc::clone(v));
            }
        }
        match part {
            Some(p) => self.instances.insert(id.to_string(), p),
            None => self.instances.remove(id),
        };
        true
    }
}

/// These instances (those that exist) as they are now, in launch order with their positions:
/// those `known` holds from one probe of their revision each (`Tx::instance_current`), the
/// others read.
fn instances_now(tx: &Tx<'_>, ids: &[String], known: &HashMap<&str, &InstanceRecord>) -> Result<Vec<(i64, InstanceRecord)>> {
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for id in ids {
        match known.get(id.as_str()) {
            Some(read) => out.extend(tx.instance_current(read)?.map(|r| (r.seq, r))),
            None => unknown.push(id.clone()),
        }
    }
    if !unknown.is_empty() {
        out.extend(InstanceRecord::with_ids(tx, &unknown)?);
    }
    out.sort_by_key(|(pos, _)| *pos);
    Ok(out)
}

/// The position of the first item of a list in launch order whose instance was not launched
/// before `order` (where an instance's items are, or would go). A launch goes at the end.
fn first_of<T: Clone>(list: &Vector<T>, order: i64, order_of: impl Fn(&T) -> i64) -> usize {
    match list.last() {
        Some(last) if order_of(last) < order => list.len(),
        _ => list.binary_search_by(|x| if order_of(x) < order { Ordering::Less } else { Ordering::Greater }).unwrap_or_else(|at| at),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Control {
    /// These instances' parts of the host state are recomputed by the next pass.
    pub(crate) fn host_mark(&self, ids: impl IntoIterator<Item = String>) {
        lock(&self.host_marks).ids.extend(ids);
        self.kick.notify_one();
    }

    /// Every part of the host state is recomputed by the next pass.
    pub(crate) fn host_mark_all(&self) {
        lock(&self.host_marks).all = true;
    }

    /// Brings the cached parts up to date with the store; says what that took. On failure
    /// the marks stay for the next pass. `known`: instances the caller has just read (the
    /// pass's), taken as they are while their revision is unchanged instead of read again.
    pub(crate) fn host_refresh(&self, known: &[InstanceRecord]) -> Result<Refreshed> {
        let marks = {
            let mut m = lock(&self.host_marks);
            let due = m.last_all.is_none_or(|t| t.elapsed() >= RECOMPUTE_ALL_EVERY);
            let last_all = if m.all || due { Some(Instant::now()) } else { m.last_all };
            let taken = HostMarks { ids: std::mem::take(&mut m.ids), all: m.all || due, last_all };
            m.all = false;
            m.last_all = last_all;
            taken
        };
        if !marks.all && marks.ids.is_empty() {
            return Ok(Refreshed::default());
        }
        let mut cache = lock(&self.host_cache);
        let done = match marks.all {
            true => fleet_sized(true, || {
                let done = self.host_refresh_all(&mut cache);
                give_back_memory();
                done
            }),
            // A page of marked instances per transaction: after a big launch there are
            // thousands.
            false => {
                let ids: Vec<String> = marks.ids.iter().cloned().collect();
                let known: HashMap<&str, &InstanceRecord> = known.iter().map(|r| (r.instance_id.as_str(), r)).collect();
                fleet_sized(ids.len() > PAGE, || {
                    let mut done = Refreshed::default();
                    for page in ids.chunks(PAGE) {
                        let r = self.store.read(|tx| self.host_refresh_some(tx, &mut cache, page, &known))?;
                        done.computed += r.computed;
                        done.changed |= r.changed;
                    }
                    Ok(done)
                })
            }
        };
        match done {
            Ok(r) => {
                cache.computed += r.computed as u64;
                Ok(r)
            }
            Err(e) => {
                let mut m = lock(&self.host_marks);
                m.all |= marks.all;
                m.ids.extend(marks.ids);
                Err(e)
            }
        }
    }

    /// Recomputes every part, a page of instances per transaction. The parts are built aside
    /// and put in place whole, so a failure halfway leaves those of before. An instance that
    /// changes while later pages are read is marked by that change, for the next pass.
    fn host_refresh_all(&self, cache: &mut HostCache) -> Result<Refreshed> {
        let mut fresh = HostCache { computed: cache.computed, ..HostCache::default() };
        let mut computed = 0;
        self.store.read_pages(
            PAGE,
            |tx, after, n| tx.instance_page_live(&self.config.host, after, n),
            |tx, page| {
                let ids: Vec<String> = page.iter().map(|(_, i)| i.instance_id.clone()).collect();
                let enis = tx.eni_list_for_instances(&ids)?;
                computed += self.host_parts(tx, &mut fresh, &page, enis)?.computed;
                Ok::<_, corral_types::Error>(())
            },
        )?;
        *cache = fresh;
        Ok(Refreshed { computed, changed: true })
    }

    fn host_refresh_some(
        &self,
        tx: &Tx<'_>,
        cache: &mut HostCache,
        ids: &[String],
        known: &HashMap<&str, &InstanceRecord>,
    ) -> Result<Refreshed> {
        let instances: Vec<(i64, InstanceRecord)> = instances_now(tx, ids, known)?
            .into_iter()
            .filter(|(_, r)| r.state != InstanceState::Terminated && r.host == self.config.host)
            .collect();
        let live: Vec<String> = instances.iter().map(|(_, i)| i.instance_id.clone()).collect();
        let mut changed = false;
        // Those no longer live here leave.
        let is_live: HashSet<&str> = live.iter().map(String::as_str).collect();
        for id in ids.iter().filter(|id| !is_live.contains(id.as_str())) {
            changed |= cache.put(id, None);
        }
        let enis = tx.eni_list_for_instances(&live)?;
        // Their VPCs' parts are read again where they lack a subnet or group these interfaces
        // are in (new since). Rule, route and gateway changes recompute everything anyway.
        let stale = |e: &EniRecord| {
            cache.vpcs.get(&e.vpc_id).is_none_or(|v| {
                !v.subnet_specs.iter().any(|s| s.subnet_id == e.subnet_id)
                    || e.groups.iter().any(|g| !v.group_specs.iter().any(|s| &s.group_id == g))
            })
        };
        let vpc_ids: HashSet<String> = enis.iter().filter(|e| stale(e)).map(|e| e.vpc_id.clone()).collect();
        for v in &vpc_ids {
            let v = v.as_str();
            let part = VpcPart::read(tx, v)?;
            changed |= part.as_ref().map(VpcPart::specs) != cache.vpcs.get(v).map(VpcPart::specs);
            match part {
                Some(part) => cache.vpcs.insert(v.to_string(), part),
                None => cache.vpcs.remove(v),
            };
        }
        let r = self.host_parts(tx, cache, &instances, enis)?;
        Ok(Refreshed { computed: r.computed, changed: changed || r.changed })
    }

    /// Computes these instances' parts, reading the VPC parts not cached yet.
    fn host_parts(
        &self,
        tx: &Tx<'_>,
        cache: &mut HostCache,
        instances: &[(i64, InstanceRecord)],
        enis: Vec<EniRecord>,
    ) -> Result<Refreshed> {
        let mut by_instance: HashMap<String, Vec<EniRecord>> = HashMap::new();
        for e in enis {
            if let Some(i) = e.instance_id.clone() {
                by_instance.entry(i).or_default().push(e);
            }
        }
        for list in by_instance.values_mut() {
            list.sort_by_key(|e| e.device_index);
            for e in list.iter() {
                if !cache.vpcs.contains_key(&e.vpc_id) {
                    if let Some(part) = VpcPart::read(tx, &e.vpc_id)? {
                        cache.vpcs.insert(e.vpc_id.clone(), part);
                    }
                }
            }
        }
        let lookups = Lookups::read(tx, &instances.iter().map(|(_, i)| i).collect::<Vec<_>>())?;
        let mut changed = false;
        for (order, inst) in instances {
            let enis = by_instance.get(&inst.instance_id).map(Vec::as_slice).unwrap_or_default();
            let part = self.instance_part(&lookups, (*order, inst), enis, &cache.vpcs)?;
            changed |= cache.put(&inst.instance_id, part);
        }
        Ok(Refreshed { computed: instances.len(), changed })
    }

    /// How many instance parts of the host state were computed since start (what the
    /// reconciler spent on it).
    pub fn host_parts_computed(&self) -> u64 {
        lock(&self.host_cache).computed
    }

    /// The desired host state from the cached parts.
    pub(crate) fn host_desired(&self) -> DesiredHost {
        let cache = lock(&self.host_cache);
        let vpcs = cache
            .ports
            .iter()
            .filter(|(_, ports)| !ports.is_empty())
            .filter_map(|(id, ports)| cache.vpcs.get(id).map(|v| v.spec(ports.clone())))
            .collect();
        DesiredHost { net: DesiredNet { vpcs }, instances: cache.views.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_agent_api::net::PortLink;

    fn part(instance: &str, order: i64, vpc: &str, enis: &[&str]) -> InstancePart {
        let ports = enis
            .iter()
            .enumerate()
            .map(|(i, e)| {
                Arc::new(PortSpec {
                    eni_id: e.to_string(),
                    instance_id: instance.into(),
                    subnet_id: "subnet-1".into(),
                    mac: [2, 0, 0, 0, 0, i as u8],
                    ip: std::net::Ipv4Addr::new(10, 0, 0, i as u8 + 4),
                    hostname: "h".into(),
                    public_ip: None,
                    groups: vec![],
                    link: PortLink::Tap,
                    source_dest_check: true,
                })
            })
            .collect();
        InstancePart { order, vpc_id: vpc.into(), ports, view: None }
    }

    fn enis(c: &HostCache, vpc: &str) -> Vec<String> {
        c.ports.get(vpc).map(|l| l.iter().map(|p| p.eni_id.clone()).collect()).unwrap_or_default()
    }

    #[test]
    fn parts_keep_the_lists_in_launch_order_and_leave_them_whole() {
        let mut c = HostCache::default();
        assert!(c.put("i-2", Some(part("i-2", 2, "vpc-a", &["eni-2a", "eni-2b"]))));
        assert!(c.put("i-1", Some(part("i-1", 1, "vpc-a", &["eni-1"]))));
        assert!(c.put("i-3", Some(part("i-3", 3, "vpc-b", &["eni-3"]))));
        assert_eq!(enis(&c, "vpc-a"), ["eni-1", "eni-2a", "eni-2b"]);
        assert!(!c.put("i-2", Some(part("i-2", 2, "vpc-a", &["eni-2a", "eni-2b"]))), "the same part again changes nothing");
        assert!(c.put("i-2", Some(part("i-2", 2, "vpc-a", &["eni-2a"]))));
        assert_eq!(enis(&c, "vpc-a"), ["eni-1", "eni-2a"]);
        assert!(c.put("i-1", None));
        assert!(!c.put("i-1", None));
        assert_eq!(enis(&c, "vpc-a"), ["eni-2a"]);
        assert_eq!(enis(&c, "vpc-b"), ["eni-3"]);
    }

    /// Random launches (mostly at the end, as launches are), changes, moves between VPCs and
    /// removals anywhere leave each VPC's list exactly its instances' ports in launch order.
    #[test]
    fn random_changes_leave_the_lists_as_a_sorted_rebuild_would() {
        let mut rng: u64 = 0x1234_5678;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut c = HostCache::default();
        let mut model: BTreeMap<i64, (String, String, usize)> = BTreeMap::new();
        let mut launched = 0i64;
        for step in 0..2_000 {
            let order = if next() % 3 == 0 || launched == 0 {
                launched += 1;
                launched
            } else {
                (next() % launched as u64) as i64 + 1
            };
            let id = format!("i-{order:05}");
            if next() % 4 == 0 {
                c.put(&id, None);
                model.remove(&order);
            } else {
                let vpc = ["vpc-a", "vpc-b"][(next() % 2) as usize];
                let n = (next() % 3) as usize + 1;
                let names: Vec<String> = (0..n).map(|k| format!("{id}-{k}")).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                c.put(&id, Some(part(&id, order, vpc, &refs)));
                model.insert(order, (id.clone(), vpc.to_string(), n));
            }
            for vpc in ["vpc-a", "vpc-b"] {
                let want: Vec<String> =
                    model.values().filter(|(_, v, _)| v == vpc).flat_map(|(id, _, n)| (0..*n).map(move |k| format!("{id}-{k}"))).collect();
                assert_eq!(enis(&c, vpc), want, "step {step}, {vpc}");
            }
        }
    }
}
