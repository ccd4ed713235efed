//! IPv4 CIDR blocks: parsing as EC2 accepts them, containment, overlap, and the host addresses
//! an EC2 subnet hands out (AWS reserves the first four and the last one).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Cidr> {
        if prefix > 32 {
            return None;
        }
        let base = u32::from(addr) & Self::mask_of(prefix);
        Some(Cidr { base, prefix })
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix as u32)
    }

    /// The `n`th address of the block (0 is the network address).
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(self.base.wrapping_add(n as u32)))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask_of(self.prefix) == self.base
    }

    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }

    /// Addresses instances may get: all but the first four and the last (EC2's reservation:
    /// network, router, DNS, future use, broadcast).
    pub fn usable_hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let n = self.size();
        (4..n.saturating_sub(1)).filter_map(move |i| self.nth(i))
    }

    /// Whether `s` was given exactly as the block's canonical form (EC2 refuses `10.0.0.1/16`).
    pub fn parse_strict(s: &str) -> Option<Cidr> {
        let c: Cidr = s.parse().ok()?;
        (c.to_string() == s).then_some(c)
    }
}

impl FromStr for Cidr {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s.split_once('/').ok_or(())?;
        let addr: Ipv4Addr = a.parse().map_err(|_| ())?;
        let prefix: u8 = p.parse().map_err(|_| ())?;
        Cidr::new(addr, prefix).ok_or(())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_contain_overlap() {
        let vpc: Cidr = "10.0.0.0/16".parse().unwrap();
        let sub: Cidr = "10.0.1.0/24".parse().unwrap();
        assert!(vpc.contains_cidr(&sub) && !sub.contains_cidr(&vpc));
        assert!(vpc.overlaps(&sub));
        assert!(!sub.overlaps(&"10.0.2.0/24".parse().unwrap()));
        assert_eq!(Cidr::parse_strict("10.0.0.1/16"), None);
        assert!(Cidr::parse_strict("10.0.0.0/16").is_some());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        let hosts: Vec<Ipv4Addr> = "10.0.1.0/28".parse::<Cidr>().unwrap().usable_hosts().collect();
        assert_eq!(hosts.first(), Some(&Ipv4Addr::new(10, 0, 1, 4)));
        assert_eq!(hosts.last(), Some(&Ipv4Addr::new(10, 0, 1, 14)));
        assert_eq!(hosts.len(), 11);
    }
}
