//! Handing out addresses without reading every address taken: each range (a subnet's hosts,
//! the public pool) keeps a cursor just past the address it handed out last, and a candidate
//! is checked against the store's index on that address. Addresses given back (an instance
//! terminated, a stopped one's public address) are remembered per range and tried first, so
//! a nearly full range with instances coming and going costs a probe or two per launch too,
//! instead of a walk to the next hole; only a nearly full range nobody gives back to is
//! walked, and the walk wraps around, so a freed address nobody remembered is found again.

use corral_types::Result;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

/// Addresses remembered as given back, per range: beyond this the oldest are forgotten (the
/// walk still finds them).
const FREED_MAX: usize = 1024;

#[derive(Default)]
struct Range {
    /// The index of the candidate after the last one handed out.
    next: u64,
    /// Given back, most recent last. A hint only: each is checked again before it is handed
    /// out (the transaction that gave it back may have rolled back, or another taken it).
    freed: Vec<Ipv4Addr>,
}

/// The cursor and the given-back addresses of each range, by a key naming it. In memory:
/// after a restart each range is searched from its start again.
#[derive(Default)]
pub(crate) struct Cursors(Mutex<HashMap<String, Range>>);

impl Cursors {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Range>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers that `ip` of `range` was given back, to be handed out again first.
    pub(crate) fn freed(&self, range: &str, ip: Ipv4Addr) {
        let mut ranges = self.lock();
        let freed = &mut ranges.entry(range.to_string()).or_default().freed;
        if freed.len() >= FREED_MAX {
            freed.remove(0);
        }
        freed.push(ip);
    }

    /// A free address of `range`: one given back, if `taken` says it is still free, else the
    /// first of `count` candidates (`at(i)` is the `i`th) that `taken` says is free, looking
    /// from the cursor onwards and wrapping around; `None` when every one is taken.
    pub(crate) fn next_free(
        &self,
        range: &str,
        count: u64,
        at: impl Fn(u64) -> Option<Ipv4Addr>,
        mut taken: impl FnMut(Ipv4Addr) -> Result<bool>,
    ) -> Result<Option<Ipv4Addr>> {
        loop {
            let hint = self.lock().get_mut(range).and_then(|r| r.freed.pop());
            match hint {
                Some(ip) if !taken(ip)? => return Ok(Some(ip)),
                Some(_) => continue,
                None => break,
            }
        }
        let start = self.lock().get(range).map_or(0, |r| r.next);
        for k in 0..count {
            let i = (start + k) % count;
            let Some(ip) = at(i) else { continue };
            if !taken(ip)? {
                self.lock().entry(range.to_string()).or_default().next = i + 1;
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

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    #[test]
    fn hands_out_in_order_skips_taken_wraps_and_finds_freed() {
        let c = Cursors::default();
        let at = |i: u64| Some(ip(i as u8));
        let mut used: HashSet<Ipv4Addr> = [ip(1)].into();
        let next = |used: &mut HashSet<Ipv4Addr>| {
            let ip = c.next_free("r", 4, at, |ip| Ok(used.contains(&ip))).unwrap();
            used.extend(ip);
            ip.map(|ip| ip.octets()[3])
        };
        assert_eq!(next(&mut used), Some(0));
        assert_eq!(next(&mut used), Some(2), "the taken .1 is skipped");
        assert_eq!(next(&mut used), Some(3));
        assert_eq!(next(&mut used), None, "all four are taken");
        used.remove(&ip(1));
        assert_eq!(next(&mut used), Some(1), "a freed address is found again, wrapping around");
    }

    #[test]
    fn a_given_back_address_is_handed_out_without_a_walk() {
        let c = Cursors::default();
        let count = 4096;
        let at = |i: u64| Some(Ipv4Addr::from(0x0a00_0000 + i as u32));
        let mut used: HashSet<Ipv4Addr> = HashSet::new();
        for _ in 0..count {
            let got = c.next_free("r", count, at, |ip| Ok(used.contains(&ip))).unwrap().unwrap();
            used.insert(got);
        }
        // One in the middle is given back; the cursor is at the end of the range.
        let back = at(1000).unwrap();
        used.remove(&back);
        c.freed("r", back);
        let mut probes = 0;
        let got = c
            .next_free("r", count, at, |ip| {
                probes += 1;
                Ok(used.contains(&ip))
            })
            .unwrap();
        assert_eq!(got, Some(back));
        assert_eq!(probes, 1, "the given-back address is tried first");
    }

    #[test]
    fn a_hint_still_taken_is_skipped_and_other_ranges_keep_theirs() {
        let c = Cursors::default();
        let at = |i: u64| Some(ip(i as u8));
        c.freed("r", ip(2));
        c.freed("other", ip(3));
        // .2 was given back in a transaction that rolled back: it is still taken.
        let used: HashSet<Ipv4Addr> = [ip(2)].into();
        assert_eq!(c.next_free("r", 4, at, |ip| Ok(used.contains(&ip))).unwrap(), Some(ip(0)));
        assert_eq!(c.next_free("other", 4, at, |_| Ok(false)).unwrap(), Some(ip(3)));
    }

    #[test]
    fn remembers_a_bounded_number() {
        let c = Cursors::default();
        for i in 0..(FREED_MAX as u32 + 10) {
            c.freed("r", Ipv4Addr::from(i));
        }
        assert_eq!(c.lock()["r"].freed.len(), FREED_MAX);
        assert_eq!(c.lock()["r"].freed[0], Ipv4Addr::from(10), "the oldest are forgotten");
    }
}
