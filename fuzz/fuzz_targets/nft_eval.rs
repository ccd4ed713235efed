//! The evaluator `nft_rules` checks the generated text with: a parser of the nftables that
//! `corral_net::nft::ruleset` writes, and an evaluation of a new packet through the forward
//! hook's base chains (by priority, policies, `accept`/`drop`/`jump`/`goto`, verdict maps,
//! named sets, `ip saddr|daddr`, `meta l4proto`, `tcp|udp dport`, `icmp type|code`, interface
//! names with `*`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use corral_net::Cidr;

use crate::{Packet, ICMP, TCP, UDP};


#[derive(Debug, Default)]
pub(crate) struct Chain {
    /// `(hook, priority, policy accepts)` for a base chain.
    base: Option<(String, i32, bool)>,
    rules: Vec<Vec<String>>,
}

#[derive(Debug, Default)]
pub(crate) struct Ruleset {
    sets: BTreeMap<String, Vec<String>>,
    /// Verdict maps: key -> verdict tokens.
    maps: BTreeMap<String, Vec<(String, Vec<String>)>>,
    chains: BTreeMap<String, Chain>,
}

/// Splits a line into words; a double-quoted string is one word (quotes kept).
pub(crate) fn words(line: &str) -> Vec<String> {
    if !line.contains('"') {
        return line.split_ascii_whitespace().map(str::to_string).collect();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                cur.push(c);
                quoted = !quoted;
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    assert!(!quoted, "unbalanced quotes: {line:?}");
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub(crate) fn priority(p: &str) -> i32 {
    match p {
        "raw" => -300,
        "dstnat" => -100,
        "filter" => 0,
        "srcnat" => 100,
        n => n.parse().unwrap_or_else(|_| panic!("priority {n:?}")),
    }
}

pub(crate) fn parse(text: &str) -> Ruleset {
    let mut rs = Ruleset::default();
    let mut in_table = false;
    // (kind, name) of the block being read.
    let mut block: Option<(String, String)> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if !in_table {
            if t == "table inet corral {" {
                in_table = true;
            } else {
                assert!(t == "table inet corral" || t == "delete table inet corral", "outside the table: {t:?}");
            }
            continue;
        }
        let w = words(t);
        match &block {
            None => {
                if t == "}" {
                    in_table = false;
                    continue;
                }
                assert!(w.len() == 3 && w[2] == "{" && ["set", "map", "chain"].contains(&w[0].as_str()), "a block: {t:?}");
                let name = w[1].clone();
                match w[0].as_str() {
                    "set" => assert!(rs.sets.insert(name.clone(), vec![]).is_none(), "set {name} twice"),
                    "map" => assert!(rs.maps.insert(name.clone(), vec![]).is_none(), "map {name} twice"),
                    _ => assert!(rs.chains.insert(name.clone(), Chain::default()).is_none(), "chain {name} twice"),
                }
                block = Some((w[0].clone(), name));
            }
            Some((kind, name)) => {
                if t == "}" {
                    block = None;
                    continue;
                }
                match kind.as_str() {
                    "set" | "map" => {
                        if w[0] == "type" {
                            continue;
                        }
                        let body = t.strip_prefix("elements = {").and_then(|r| r.strip_suffix('}')).unwrap_or_else(|| panic!("{t:?}"));
                        let items: Vec<String> = body.split(", ").map(|s| s.trim().to_string()).collect();
                        if kind == "set" {
                            rs.sets.get_mut(name).expect("opened").extend(items);
                        } else {
                            let m = rs.maps.get_mut(name).expect("opened");
                            for item in items {
                                let (k, v) = item.split_once(" : ").unwrap_or_else(|| panic!("map element {item:?}"));
                                m.push((k.to_string(), words(v)));
                            }
                        }
                    }
                    _ => {
                        let chain = rs.chains.get_mut(name).expect("opened");
                        if w[0] == "type" {
                            // type filter hook forward priority filter; policy drop;
                            let s = t.replace(';', " ");
                            let w = words(&s);
                            assert_eq!((w[2].as_str(), w[4].as_str(), w[6].as_str()), ("hook", "priority", "policy"), "{t:?}");
                            chain.base = Some((w[3].clone(), priority(&w[5]), w[7] == "accept"));
                        } else {
                            chain.rules.push(w);
                        }
                    }
                }
            }
        }
    }
    assert!(!in_table && block.is_none(), "the table is not closed");
    rs
}

/// Every set, map and chain a rule or map names exists.
pub(crate) fn check_references(rs: &Ruleset) {
    let named = |w: &[String]| {
        for (i, word) in w.iter().enumerate() {
            if let Some(set) = word.strip_prefix('@') {
                assert!(rs.sets.contains_key(set) || rs.maps.contains_key(set), "no set or map {set}");
            }
            if (word == "jump" || word == "goto") && i + 1 < w.len() {
                assert!(rs.chains.contains_key(&w[i + 1]), "no chain {}", w[i + 1]);
            }
        }
    };
    for c in rs.chains.values() {
        for r in &c.rules {
            named(r);
        }
    }
    for m in rs.maps.values() {
        for (_, v) in m {
            named(v);
        }
    }
}

pub(crate) struct Flow<'a> {
    pub(crate) iif: &'a str,
    pub(crate) oif: &'a str,
    pub(crate) pkt: Packet,
}

pub(crate) enum Step {
    Next,
    Accept,
    Drop,
    Jump(String),
    Goto(String),
}

pub(crate) fn ifname_matches(pattern: &str, name: &str) -> bool {
    let p = pattern.trim_matches('"');
    match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == p,
    }
}

pub(crate) fn addr_matches(rs: &Ruleset, spec: &str, ip: Ipv4Addr) -> bool {
    if let Some(set) = spec.strip_prefix('@') {
        return rs.sets[set].iter().any(|e| e.parse::<Ipv4Addr>().expect("an address set") == ip);
    }
    if spec.contains('/') {
        let c: Cidr = spec.parse().unwrap_or_else(|_| panic!("{spec:?}"));
        assert!(c.is_network(), "nft refuses host bits in a prefix: {spec}");
        return c.contains(ip);
    }
    spec.parse::<Ipv4Addr>().unwrap_or_else(|_| panic!("{spec:?}")) == ip
}

pub(crate) fn proto_number(name: &str) -> u8 {
    match name {
        "tcp" => TCP,
        "udp" => UDP,
        "icmp" => ICMP,
        n => n.parse().unwrap_or_else(|_| panic!("protocol {n:?}")),
    }
}

pub(crate) fn verdict(w: &[String]) -> Step {
    match w {
        [v] if v == "accept" => Step::Accept,
        [v] if v == "drop" => Step::Drop,
        [v, c] if v == "jump" => Step::Jump(c.clone()),
        [v, c] if v == "goto" => Step::Goto(c.clone()),
        _ => panic!("verdict {w:?}"),
    }
}

pub(crate) fn number(w: &str, max: u32) -> u32 {
    let n: u32 = w.parse().unwrap_or_else(|_| panic!("number {w:?}"));
    assert!(n <= max, "{n} > {max}");
    n
}

/// One rule: the matches in order, then the verdict.
pub(crate) fn eval_rule(rs: &Ruleset, w: &[String], f: &Flow<'_>) -> Step {
    // Every packet here is new: no `ct state` verdict map entry applies to it.
    if w.first().map(String::as_str) == Some("ct") {
        assert_eq!(&w[..3], ["ct", "state", "vmap"]);
        assert!(!w.iter().any(|x| x.starts_with("new")), "{w:?}");
        return Step::Next;
    }
    let p = &f.pkt;
    let mut i = 0;
    while i < w.len() {
        let ok = match w[i].as_str() {
            "iifname" | "oifname" => {
                let name = if w[i] == "iifname" { f.iif } else { f.oif };
                if w[i + 1] == "vmap" {
                    let map = &rs.maps[w[i + 2].strip_prefix('@').expect("a named map")];
                    assert_eq!(i + 3, w.len(), "a verdict map ends the rule");
                    return match map.iter().find(|(k, _)| k.trim_matches('"') == name) {
                        Some((_, v)) => verdict(v),
                        None => Step::Next,
                    };
                }
                i += 2;
                ifname_matches(&w[i - 1], name)
            }
            "ip" => {
                let ip = match w[i + 1].as_str() {
                    "saddr" => p.saddr,
                    "daddr" => p.daddr,
                    x => panic!("ip {x}"),
                };
                i += 3;
                addr_matches(rs, &w[i - 1], ip)
            }
            "meta" => {
                assert_eq!(w[i + 1], "l4proto", "{w:?}");
                i += 3;
                p.proto == proto_number(&w[i - 1])
            }
            "tcp" | "udp" => {
                assert_eq!(w[i + 1], "dport", "{w:?}");
                let (lo, hi) = match w[i + 2].split_once('-') {
                    Some((a, b)) => (number(a, 65535), number(b, 65535)),
                    None => (number(&w[i + 2], 65535), number(&w[i + 2], 65535)),
                };
                assert!(lo <= hi, "nft refuses an empty range: {w:?}");
                let proto = proto_number(&w[i]);
                i += 3;
                p.proto == proto && (lo..=hi).contains(&u32::from(p.dport))
            }
            "icmp" => {
                let v = number(&w[i + 2], 255);
                let field = match w[i + 1].as_str() {
                    "type" => p.icmp_type,
                    "code" => p.icmp_code,
                    x => panic!("icmp {x}"),
                };
                i += 3;
                p.proto == ICMP && u32::from(field) == v
            }
            "comment" => panic!("a comment before the verdict: {w:?}"),
            _ => {
                // The verdict, perhaps followed by a comment.
                let end = w.iter().position(|x| x == "comment").unwrap_or(w.len());
                if end < w.len() {
                    assert_eq!(end + 2, w.len(), "a comment ends the rule: {w:?}");
                    let c = &w[end + 1];
                    assert!(c.len() >= 2 && c.starts_with('"') && c.ends_with('"') && c.len() <= 130, "comment {c:?}");
                }
                return verdict(&w[i..end]);
            }
        };
        if !ok {
            return Step::Next;
        }
    }
    panic!("a rule without a verdict: {w:?}")
}

/// The verdict of `chain`, `None` when the packet falls off its end.
pub(crate) fn eval_chain(rs: &Ruleset, chain: &str, f: &Flow<'_>, depth: usize) -> Option<bool> {
    assert!(depth < 16, "jumps nest too deep at {chain}");
    for rule in &rs.chains[chain].rules {
        match eval_rule(rs, rule, f) {
            Step::Next => {}
            Step::Accept => return Some(true),
            Step::Drop => return Some(false),
            Step::Jump(c) => {
                if let Some(v) = eval_chain(rs, &c, f, depth + 1) {
                    return Some(v);
                }
            }
            // The chain gone to returns, at its end, to whoever called this one.
            Step::Goto(c) => return eval_chain(rs, &c, f, depth + 1),
        }
    }
    None
}

/// The packet through every base chain of the forward hook, by priority.
pub(crate) fn forward(rs: &Ruleset, f: &Flow<'_>) -> bool {
    let mut base: Vec<(&String, i32, bool)> =
        rs.chains.iter().filter_map(|(n, c)| c.base.as_ref().filter(|b| b.0 == "forward").map(|b| (n, b.1, b.2))).collect();
    base.sort_by_key(|b| b.1);
    assert!(!base.is_empty(), "no forward chain");
    for (name, _, policy_accepts) in base {
        match eval_chain(rs, name, f, 0) {
            Some(true) => {}
            Some(false) => return false,
            None if policy_accepts => {}
            None => return false,
        }
    }
    true
}
