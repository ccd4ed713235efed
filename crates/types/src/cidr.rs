//! The one IPv4 prefix type of the workspace, [`Cidr`]: an address with a prefix length.
//!
//! It serves two uses:
//!
//! - a block, as EC2 means it (a VPC, a subnet, a route's destination, a pool): the address is
//!   the network address. [`Cidr::parse_strict`] accepts only that form (EC2 refuses
//!   `10.0.0.1/16`), and [`Cidr::network`] clears the host bits of anything else;
//! - an interface address with its prefix, as `ip addr` shows it (`10.0.1.5/24`): the address
//!   is kept as given.
//!
//! Everything about the block (containment, overlap, size, the `n`th address, the host
//! addresses an EC2 subnet hands out: AWS reserves the first four and the last one) ignores
//! the host bits; only [`Cidr::addr`], `Display` and equality see them.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 prefix such as `10.0.1.0/24` or `10.0.1.5/24`. The address is kept as given;
/// [`Cidr::network`] masks it. Shown (and parsed) as `a.b.c.d/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    addr: Ipv4Addr,
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IPv4 CIDR (a.b.c.d/len)")]
pub struct CidrParseError(pub String);

impl Cidr {
    /// `addr/prefix_len`, the address kept as given; `None` when `prefix_len > 32`.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Cidr> {
        (prefix_len <= 32).then_some(Cidr { addr, len: prefix_len })
    }

    /// A block given exactly in its canonical form: the network address, the length without
    /// leading zeros (EC2 refuses `10.0.0.1/16`).
    pub fn parse_strict(s: &str) -> Option<Cidr> {
        let c: Cidr = s.parse().ok()?;
        (c.is_network() && c.to_string() == s).then_some(c)
    }

    /// The address as given (for a block made by [`Cidr::network`], the network address).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The netmask, e.g. `255.255.255.0` for a /24.
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

    fn base(&self) -> u32 {
        u32::from(self.addr) & self.mask_bits()
    }

    /// The block with host bits cleared: `10.0.1.5/24` gives `10.0.1.0/24`.
    pub fn network(&self) -> Cidr {
        Cidr { addr: Ipv4Addr::from(self.base()), len: self.len }
    }

    /// The network address: `10.0.1.5/24` gives `10.0.1.0`.
    pub fn network_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base())
    }

    /// Whether the address has no host bits set (the value is a block in canonical form).
    pub fn is_network(&self) -> bool {
        u32::from(self.addr) == self.base()
    }

    /// Number of addresses in the block.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }

    /// The `n`th address of the block (0 is the network address); `None` past its end.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(self.base().wrapping_add(n as u32)))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == self.base()
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains_cidr(&self, other: &Cidr) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }

    /// Whether the two blocks share an address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains_cidr(other) || other.contains_cidr(self)
    }

    /// Addresses instances may get: all but the first four and the last (EC2's reservation:
    /// network, router, DNS, future use, broadcast).
    pub fn usable_hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let n = self.size();
        (4..n.saturating_sub(1)).filter_map(move |i| self.nth(i))
    }

    /// Whether `ip` is one of [`Cidr::usable_hosts`], without walking them.
    pub fn is_usable(&self, ip: Ipv4Addr) -> bool {
        let offset = u64::from(u32::from(ip).wrapping_sub(self.base()));
        self.contains(ip) && (4..self.size().saturating_sub(1)).contains(&offset)
    }

    /// How many [`Cidr::usable_hosts`] there are, without walking them.
    pub fn usable_count(&self) -> u64 {
        self.size().saturating_sub(5)
    }
}

impl FromStr for Cidr {
    type Err = CidrParseError;

    /// `a.b.c.d/len` with `len` one or two decimal digits, at most 32; the address is kept
    /// (see [`Cidr::parse_strict`] for blocks as EC2 takes them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrParseError(s.to_string());
        let (a, l) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| err())?;
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let len: u8 = l.parse().map_err(|_| err())?;
        Cidr::new(addr, len).ok_or_else(err)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn usable_count_is_the_usable_hosts_counted() {
        for len in [16u8, 20, 24, 28, 30, 31, 32] {
            let c: Cidr = format!("10.0.0.0/{len}").parse().unwrap();
            assert_eq!(c.usable_count(), c.usable_hosts().count() as u64, "/{len}");
        }
    }

    #[test]
    fn is_usable_is_being_among_the_usable_hosts() {
        for len in [24u8, 28, 30, 31, 32] {
            let c: Cidr = format!("10.0.1.0/{len}").parse().unwrap();
            for last in [255u8, 0, 1, 3, 4, 5, 14, 15, 16, 254] {
                for ip in [Ipv4Addr::new(10, 0, 1, last), Ipv4Addr::new(10, 0, 2, last)] {
                    assert_eq!(c.is_usable(ip), c.usable_hosts().any(|h| h == ip), "{ip} in /{len}");
                }
            }
        }
    }

    #[test]
    fn parse_contain_overlap() {
        let vpc = c("10.0.0.0/16");
        let sub = c("10.0.1.0/24");
        assert!(vpc.contains_cidr(&sub) && !sub.contains_cidr(&vpc));
        assert!(vpc.overlaps(&sub));
        assert!(!sub.overlaps(&c("10.0.2.0/24")));
        assert_eq!(Cidr::parse_strict("10.0.0.1/16"), None);
        assert!(Cidr::parse_strict("10.0.0.0/16").is_some());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        let hosts: Vec<Ipv4Addr> = c("10.0.1.0/28").usable_hosts().collect();
        assert_eq!(hosts.first(), Some(&Ipv4Addr::new(10, 0, 1, 4)));
        assert_eq!(hosts.last(), Some(&Ipv4Addr::new(10, 0, 1, 14)));
        assert_eq!(hosts.len(), 11);
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(c("10.0.1.0/24").to_string(), "10.0.1.0/24");
        assert_eq!(c("0.0.0.0/0").prefix_len(), 0);
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/008", "x/8", "10.0.0.0/8/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!("x/8".parse::<Cidr>().unwrap_err().to_string(), "`x/8` is not an IPv4 CIDR (a.b.c.d/len)");
    }

    #[test]
    fn arithmetic() {
        let v = c("10.0.1.77/24");
        assert_eq!(v.network(), c("10.0.1.0/24"));
        assert_eq!(v.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(v.nth(1), Some(Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(v.nth(255), Some(Ipv4Addr::new(10, 0, 1, 255)));
        assert_eq!(v.nth(256), None);
        assert!(v.contains(Ipv4Addr::new(10, 0, 1, 200)));
        assert!(!v.contains(Ipv4Addr::new(10, 0, 2, 1)));
        assert!(c("10.0.0.0/16").contains_cidr(&c("10.0.1.0/24")));
        assert!(!c("10.0.1.0/24").contains_cidr(&c("10.0.0.0/16")));
        assert!(c("0.0.0.0/0").contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(c("1.2.3.4/32").size(), 1);
        assert_eq!(c("0.0.0.0/0").size(), 1 << 32);
        assert_eq!(c("0.0.0.0/0").mask(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(c("0.0.0.0/0").nth((1 << 32) - 1), Some(Ipv4Addr::BROADCAST));
        assert_eq!(c("0.0.0.0/0").nth(1 << 32), None);
    }

    /// One type for both uses: an interface address keeps its host bits, and every question
    /// about its block gets the same answer as for the masked block.
    #[test]
    fn interface_address_and_its_block() {
        let iface = c("10.0.1.5/24");
        let block = iface.network();
        assert_eq!(iface.addr(), Ipv4Addr::new(10, 0, 1, 5));
        assert_eq!(iface.to_string(), "10.0.1.5/24");
        assert_eq!(block.to_string(), "10.0.1.0/24");
        assert_eq!(block.addr(), Ipv4Addr::new(10, 0, 1, 0));
        assert_eq!(iface.network_addr(), block.addr());
        assert_eq!(block.network(), block);
        assert!(!iface.is_network() && block.is_network());
        assert_ne!(iface, block, "equality sees the address as given");
        assert_eq!(iface.prefix_len(), block.prefix_len());
        assert_eq!(iface.mask(), block.mask());
        assert_eq!(iface.size(), block.size());
        assert_eq!(iface.nth(0), Some(block.addr()));
        assert_eq!(iface.nth(7), block.nth(7));
        assert!(iface.usable_hosts().eq(block.usable_hosts()));
        let vpc = c("10.0.0.0/16");
        assert!(vpc.contains_cidr(&iface) && vpc.overlaps(&iface) && iface.overlaps(&block));
        assert!(iface.contains_cidr(&block) && block.contains_cidr(&iface));
        assert!(iface.contains(Ipv4Addr::new(10, 0, 1, 0)) && !iface.contains(Ipv4Addr::new(10, 0, 2, 5)));
        assert!(!c("10.0.2.9/24").overlaps(&iface));
        // A host route: the /32 is its own block.
        let host = Cidr::new(Ipv4Addr::new(169, 254, 169, 254), 32).unwrap();
        assert!(host.is_network() && host.to_string() == "169.254.169.254/32");
        assert_eq!(Cidr::new(Ipv4Addr::new(1, 2, 3, 4), 33), None);
    }

    /// Blocks as EC2 takes them: only the canonical form; anything parsed leniently becomes
    /// that block through `network()`.
    #[test]
    fn blocks_strict_and_masked() {
        assert_eq!(Cidr::parse_strict("10.0.0.0/16"), Some(c("10.0.0.0/16")));
        for bad in ["10.0.0.1/16", "10.0.0.0/016", "10.0.0.0/08", "10.0.0.0/33", "10.0.0.0", "010.0.0.0/16", " 10.0.0.0/16"] {
            assert_eq!(Cidr::parse_strict(bad), None, "{bad}");
        }
        assert_eq!(Cidr::parse_strict("0.0.0.0/0"), Some(c("0.0.0.0/0")));
        assert_eq!(Cidr::parse_strict("10.0.0.5/32"), Some(c("10.0.0.5/32")));
        assert_eq!(c("10.0.0.1/16").network().to_string(), "10.0.0.0/16");
        assert_eq!(c("192.168.7.200/0").network().to_string(), "0.0.0.0/0");
        let strict: Vec<Cidr> = ["10.0.0.0/8", "172.16.0.0/12", "198.51.100.0/24"].iter().map(|s| Cidr::parse_strict(s).unwrap()).collect();
        for b in strict {
            assert_eq!(b.to_string().parse::<Cidr>(), Ok(b), "round trip");
            assert_eq!(b.network(), b);
        }
    }
}
