//! Renderings of instances kept between DescribeInstances calls. Each is an instance's XML
//! (a [`Fragment`]) at the revision its record had when it was written; the store raises the
//! revision in the same transaction as any write to what the rendering shows (the row, its
//! interfaces, volumes, tags, its image's root device: migration 8), so a rendering whose
//! revision equals the record's is exact. The control plane then skips joining those
//! instances at all (`Describe::known`), and the response copies their XML.
//!
//! One map for the process, by account and region, then instance id; bounded: when it holds
//! [`CAPACITY`] renderings it is emptied and fills again with what is asked for.

use corral_control::Instance;
use corral_ec2_query::write::{self, Fragment};
use corral_ec2_query::EncodeError;
use corral_store::InstanceRecord;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Renderings kept at most (about 4 KiB each).
pub const CAPACITY: usize = 10_000;

type Kept = HashMap<String, HashMap<String, (u64, Fragment)>>;

fn kept() -> &'static Mutex<Kept> {
    static KEPT: OnceLock<Mutex<Kept>> = OnceLock::new();
    KEPT.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock() -> std::sync::MutexGuard<'static, Kept> {
    // A panic while the map was held leaves renderings that are each whole: keep using it.
    kept().lock().unwrap_or_else(|e| e.into_inner())
}

/// The renderings one request uses: those found kept when the control plane asked
/// ([`Held::known`]), so an emptying of the map meanwhile takes none of them away.
pub struct Held<'a> {
    owner: &'a str,
    region: &'a str,
    scope: String,
    found: RefCell<HashMap<String, Fragment>>,
}

impl<'a> Held<'a> {
    pub fn new(owner: &'a str, region: &'a str) -> Self {
        Held { owner, region, scope: format!("{owner}/{region}"), found: RefCell::new(HashMap::new()) }
    }

    /// Whether a rendering of `rec` at its revision is kept; if so it is now held here.
    pub fn known(&self, rec: &InstanceRecord) -> bool {
        let fragment =
            lock().get(&self.scope).and_then(|m| m.get(&rec.instance_id)).filter(|(rev, _)| *rev == rec.rev).map(|(_, f)| f.clone());
        match fragment {
            Some(f) => {
                self.found.borrow_mut().insert(rec.instance_id.clone(), f);
                true
            }
            None => false,
        }
    }

    /// The rendering of `i`: the one held for it, or one written now (and kept). An instance
    /// that came back bare always has one held.
    pub fn rendering(&self, i: &Instance) -> Result<Fragment, EncodeError> {
        if let Some(f) = self.found.borrow().get(&i.rec.instance_id) {
            return Ok(f.clone());
        }
        let f = write::fragment("Instance", |o| super::instance::instance(o, i, self.owner, self.region))?;
        let mut kept = lock();
        if kept.values().map(HashMap::len).sum::<usize>() >= CAPACITY {
            kept.clear();
        }
        kept.entry(self.scope.clone()).or_default().insert(i.rec.instance_id.clone(), (i.rec.rev, f.clone()));
        Ok(f)
    }
}
