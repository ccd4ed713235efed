//! Handing out addresses without reading every address taken: each range (a subnet's hosts,
//! the public pool) keeps a cursor just past the address it handed out last, and a candidate
//! is checked against the store's index on that address. A launch so costs a probe or two,
//! whatever the fleet holds; only a nearly full range is walked, and it wraps around, so a
//! freed address is found again.

use corral_types::Result;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// The cursor of each range, by a key naming it. In memory: after a restart each range is
/// searched from its start again.
#[derive(Default)]
pub(crate) struct Cursors(Mutex<HashMap<String, u64>>);

impl Cursors {
    /// The first of `count` candidates (`at(i)` is the `i`th) that `taken` says is free,
    /// looking from the cursor of `range` onwards and wrapping around; `None` when every one
    /// is taken.
    pub(crate) fn next_free(
        &self,
        range: &str,
        count: u64,
        at: impl Fn(u64) -> Option<Ipv4Addr>,
        mut taken: impl FnMut(Ipv4Addr) -> Result<bool>,
    ) -> Result<Option<Ipv4Addr>> {
        let start = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(range).copied().unwrap_or(0);
        for k in 0..count {
            let i = (start + k) % count;
            let Some(ip) = at(i) else { continue };
            if !taken(ip)? {
                self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(range.to_string(), i + 1);
                return Ok(Some(ip));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn hands_out_in_order_skips_taken_wraps_and_finds_freed() {
        let c = Cursors::default();
        let at = |i: u64| Some(Ipv4Addr::new(10, 0, 0, i as u8));
        let mut used: HashSet<Ipv4Addr> = [Ipv4Addr::new(10, 0, 0, 1)].into();
        let next = |used: &mut HashSet<Ipv4Addr>| {
            let ip = c.next_free("r", 4, at, |ip| Ok(used.contains(&ip))).unwrap();
            used.extend(ip);
            ip.map(|ip| ip.octets()[3])
        };
        assert_eq!(next(&mut used), Some(0));
        assert_eq!(next(&mut used), Some(2), "the taken .1 is skipped");
        assert_eq!(next(&mut used), Some(3));
        assert_eq!(next(&mut used), None, "all four are taken");
        used.remove(&Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(next(&mut used), Some(1), "a freed address is found again, wrapping around");
    }
}
