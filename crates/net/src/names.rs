//! How things on the host are named. Interface names are at most 15 bytes (IFNAMSIZ - 1).

/// Interface names of instance ports all start with this; the nftables rules rely on it
/// (`iifname "tp*" drop` catches any port without rules).
pub const PORT_PREFIX: &str = "tp";
/// The namespace end of the VPC's link to the host.
pub const UPLINK_IFNAME: &str = "up0";
/// Host ends of VPC links start with this.
pub const HOST_LINK_PREFIX: &str = "cv";

/// The namespace of a VPC: `<prefix><vpc-id>`.
pub fn netns_name(prefix: &str, vpc_id: &str) -> String {
    format!("{prefix}{vpc_id}")
}

/// 64-bit FNV-1a: stable across releases and platforms (std's hasher is not).
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The port's link: `tp` + the last 12 hex digits of the ENI id (`eni-0123456789abcdef0`
/// gives `tp56789abcdef0`), so an operator can tell which ENI a tap belongs to. Those digits
/// are the end of the second the id was made and the count of its process (see
/// `corral_types::id`): two ENIs share them only if made 4,096 seconds apart exactly, with the
/// same count, which one process never gives twice. Ids without 12 hex digits get a hash.
pub fn port_ifname(eni_id: &str) -> String {
    let hex = eni_id.strip_prefix("eni-").unwrap_or(eni_id);
    if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{PORT_PREFIX}{}", hex[hex.len() - 12..].to_ascii_lowercase())
    } else {
        format!("{PORT_PREFIX}{:012x}", fnv1a(eni_id) & 0xffff_ffff_ffff)
    }
}

/// The host end of a VPC namespace's veth: `cv` + 12 hex digits of a hash of the namespace
/// name, so two drivers with different prefixes never collide in the host namespace.
pub fn host_link_ifname(netns: &str) -> String {
    format!("{HOST_LINK_PREFIX}{:012x}", fnv1a(netns) & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz() {
        assert_eq!(port_ifname("eni-0123456789abcdef0"), "tp56789abcdef0");
        for id in ["eni-0123456789abcdef0", "eni-1", "whatever-it-is-this-is-long"] {
            let n = port_ifname(id);
            assert!(n.len() <= 15 && n.starts_with(PORT_PREFIX), "{n}");
        }
        assert_ne!(port_ifname("eni-1"), port_ifname("eni-2"));
        let h = host_link_ifname("corral-vpc-0123456789abcdef0");
        assert!(h.len() <= 15 && h.starts_with(HOST_LINK_PREFIX));
        assert_ne!(h, host_link_ifname("t1-vpc-0123456789abcdef0"));
    }
}
