//! The host side of the VPC links: what a guest may send to the host itself.
//!
//! A guest reaches the host end of its VPC's link (the /31 is connected in the namespace), and
//! anything on the host listening on a wildcard address (sshd, the API) would answer it. One
//! nftables table in the host namespace, per driver (its name carries a hash of the namespace
//! prefix, so two clouds on one host never touch each other's), drops every packet that
//! arrives from this driver's links for the host itself, except replies to connections the
//! host opened (SSH from the host to a public IP) and the TCP ports the operator allowed
//! (`corral serve --guest-host-ports`). Rebuilt whole in one transaction when the set of links
//! changes; removed with the last VPC.
//!
//! ```text
//! table inet corral-guard-<hash>
//!     set links      the host ends of this driver's VPC links
//!     chain guest-in input hook, priority filter, policy accept:
//!         from a link: established/related accept; allowed TCP ports accept; drop
//! ```

use std::fmt::Write as _;

/// The table of the driver whose namespaces start with `ns_prefix`.
pub fn table_name(ns_prefix: &str) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in ns_prefix.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("corral-guard-{h:08x}")
}

/// The table's script: created if missing, then replaced whole (one `nft -f`, one
/// transaction). `links` are interface names, `tcp_ports` the ports guests may reach.
pub fn ruleset(table: &str, links: &[String], tcp_ports: &[u16]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table inet {table}");
    let _ = writeln!(s, "delete table inet {table}");
    let _ = writeln!(s, "table inet {table} {{");
    let _ = writeln!(s, "\tset links {{\n\t\ttype ifname;");
    if !links.is_empty() {
        let quoted: Vec<String> = links.iter().map(|l| format!("\"{l}\"")).collect();
        let _ = writeln!(s, "\t\telements = {{ {} }}", quoted.join(", "));
    }
    let _ = writeln!(s, "\t}}");
    let _ = writeln!(s, "\tchain guest-in {{\n\t\ttype filter hook input priority filter; policy accept;");
    let _ = writeln!(s, "\t\tiifname @links ct state established,related accept");
    if !tcp_ports.is_empty() {
        let ports: Vec<String> = tcp_ports.iter().map(u16::to_string).collect();
        let _ = writeln!(s, "\t\tiifname @links tcp dport {{ {} }} accept", ports.join(", "));
    }
    let _ = writeln!(s, "\t\tiifname @links drop");
    let _ = writeln!(s, "\t}}\n}}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_differ_by_prefix_and_fit_nft_names() {
        let a = table_name("corral-");
        assert_ne!(a, table_name("corral-abc123-"));
        assert!(a.len() < 32 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{a}");
    }

    #[test]
    fn the_script_drops_from_links_after_replies_and_allowed_ports() {
        let s = ruleset("corral-guard-1", &["cv1".into(), "cv2".into()], &[8773]);
        let lines: Vec<&str> = s.lines().map(str::trim).collect();
        let at = |needle: &str| lines.iter().position(|l| *l == needle).unwrap_or_else(|| panic!("{needle} missing:\n{s}"));
        assert!(at("iifname @links ct state established,related accept") < at("iifname @links drop"));
        assert!(at("iifname @links tcp dport { 8773 } accept") < at("iifname @links drop"));
        assert!(s.contains("elements = { \"cv1\", \"cv2\" }"));
        let empty = ruleset("corral-guard-1", &[], &[]);
        assert!(!empty.contains("elements") && !empty.contains("dport"), "{empty}");
    }
}
