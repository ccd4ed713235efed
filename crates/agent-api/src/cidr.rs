//! A small IPv4 prefix type: all this crate needs (parse, contains, nth address, network
//! alignment), without pulling in a crate for it.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 prefix such as `10.0.1.0/24`. The address is kept as given; [`Ipv4Net::network`]
/// masks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IPv4 CIDR (a.b.c.d/len)")]
pub struct CidrParseError(pub String);

impl Ipv4Net {
    /// `None` when `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32).then_some(Ipv4Net { addr, len })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    fn mask_bits(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        }
    }

    /// The prefix with host bits cleared.
    pub fn network(&self) -> Ipv4Net {
        Ipv4Net { addr: Ipv4Addr::from(u32::from(self.addr) & self.mask_bits()), len: self.len }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.addr) & self.mask_bits()
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains_net(&self, other: &Ipv4Net) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// The `n`th address of the network (0 is the network address); `None` past its end.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size: u64 = 1u64 << (32 - u32::from(self.len));
        (u64::from(n) < size).then(|| Ipv4Addr::from((u32::from(self.addr) & self.mask_bits()) + n))
    }

    /// Number of addresses in the prefix.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Ipv4Net {
    type Err = CidrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrParseError(s.to_string());
        let (a, l) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| err())?;
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let len: u8 = l.parse().map_err(|_| err())?;
        Ipv4Net::new(addr, len).ok_or_else(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(n("10.0.1.0/24").to_string(), "10.0.1.0/24");
        assert_eq!(n("0.0.0.0/0").prefix_len(), 0);
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "10.0.0.0/", "10.0.0.0/+8", "x/8"] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
    }

    #[test]
    fn arithmetic() {
        let v = n("10.0.1.77/24");
        assert_eq!(v.network(), n("10.0.1.0/24"));
        assert_eq!(v.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(v.nth(1), Some(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(v.nth(255), Some(Ipv4Addr::new(10, 0, 1, 255)));
        assert_eq!(v.nth(256), None);
        assert!(v.contains(Ipv4Addr::new(10, 0, 1, 200)));
        assert!(!v.contains(Ipv4Addr::new(10, 0, 2, 1)));
        assert!(n("10.0.0.0/16").contains_net(&n("10.0.1.0/24")));
        assert!(!n("10.0.1.0/24").contains_net(&n("10.0.0.0/16")));
        assert!(n("0.0.0.0/0").contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(n("1.2.3.4/32").size(), 1);
        assert_eq!(n("0.0.0.0/0").size(), 1 << 32);
    }
}
