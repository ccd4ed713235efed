//! Connections counted per client address, for servers that cap what one client may hold
//! open (the API per caller, the metadata service per guest).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per client address.
#[derive(Debug, Default, Clone)]
pub struct PerAddress(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection of one address, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    table: PerAddress,
    ip: IpAddr,
}

impl PerAddress {
    /// A slot for `ip`, unless it already holds `most`.
    pub fn take(&self, ip: IpAddr, most: usize) -> Option<Slot> {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.entry(ip).or_default();
        if *n >= most {
            return None;
        }
        *n += 1;
        Some(Slot { table: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = t.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_address_and_given_back() {
        let p = PerAddress::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let held: Vec<Slot> = (0..3).map(|_| p.take(a, 3).expect("a slot")).collect();
        assert!(p.take(a, 3).is_none(), "a fourth for one address");
        assert!(p.take(b, 3).is_some(), "another address is not held back");
        drop(held);
        let again: Vec<Slot> = (0..3).map(|_| p.take(a, 3).expect("given back")).collect();
        assert!(p.take(a, 3).is_none());
        drop(again);
    }
}
