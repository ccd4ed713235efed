//! Thin wrappers over `ip`, `nft` and `sysctl`, each run through `corral_exec`, each aimed at
//! a named namespace (`None`: the namespace this process runs in). `ip -j` output is parsed
//! into the few fields the driver reads.

use std::net::Ipv4Addr;

use corral_exec::ExecError;

use crate::Cidr;
use crate::NetError;

fn exec_err(context: impl Into<String>) -> impl FnOnce(ExecError) -> NetError {
    let context = context.into();
    move |source| NetError::Exec { context, source }
}

/// `ip [-n ns] args...`
pub(crate) async fn ip(ns: Option<&str>, args: &[&str]) -> Result<Vec<u8>, NetError> {
    let mut argv: Vec<&str> = Vec::with_capacity(args.len() + 2);
    if let Some(ns) = ns {
        argv.extend(["-n", ns]);
    }
    argv.extend_from_slice(args);
    let out = corral_exec::run("ip", &argv).await.map_err(exec_err(format!("ip {}", args.first().unwrap_or(&""))))?;
    Ok(out.stdout)
}

/// Several `ip` commands in one process (`ip -batch -`); stops at the first failure.
pub(crate) async fn ip_batch(ns: Option<&str>, lines: &[String]) -> Result<(), NetError> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut argv: Vec<&str> = Vec::new();
    if let Some(ns) = ns {
        argv.extend(["-n", ns]);
    }
    argv.extend(["-batch", "-"]);
    let input = lines.join("\n") + "\n";
    corral_exec::run_with_stdin("ip", &argv, Some(input.as_bytes())).await.map_err(exec_err(format!(
        "ip batch in {}: {}",
        ns.unwrap_or("host"),
        lines.join("; ")
    )))?;
    Ok(())
}

/// `ip netns exec ns program args...` (or the program directly when `ns` is `None`).
pub(crate) async fn in_ns(ns: Option<&str>, program: &str, args: &[&str]) -> Result<std::process::Output, NetError> {
    let context = format!("{program} in {}", ns.unwrap_or("host"));
    match ns {
        Some(ns) => {
            let mut argv = vec!["netns", "exec", ns, program];
            argv.extend_from_slice(args);
            corral_exec::run("ip", &argv).await.map_err(exec_err(context))
        }
        None => corral_exec::run(program, args).await.map_err(exec_err(context)),
    }
}

fn json(bytes: &[u8]) -> Vec<serde_json::Value> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Vec::new();
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Array(v)) => v,
        _ => Vec::new(),
    }
}

fn str_field(v: &serde_json::Value, key: &str) -> Option<String> {
    v.get(key).and_then(|s| s.as_str()).map(str::to_string)
}

/// Names of the network namespaces under /run/netns.
pub(crate) async fn netns_list() -> Result<Vec<String>, NetError> {
    let out = ip(None, &["-j", "netns", "list"]).await?;
    Ok(json(&out).iter().filter_map(|v| str_field(v, "name")).collect())
}

/// Whether `/run/netns/NAME` holds a namespace. A live one is an nsfs mount, on another device
/// than the directory; a file left behind when what mounted it went away is a plain file of
/// the directory's, on which every `ip -n NAME` fails ("Invalid argument").
pub(crate) fn netns_alive(ns: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dir = std::path::Path::new(NETNS_DIR);
    match (std::fs::metadata(dir.join(ns)), std::fs::metadata(dir)) {
        (Ok(file), Ok(dir)) => file.dev() != dir.dev(),
        _ => false,
    }
}

/// Where `ip netns` keeps its named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Interface names in a namespace.
pub(crate) async fn links(ns: Option<&str>) -> Result<Vec<String>, NetError> {
    let out = ip(ns, &["-j", "link", "show"]).await?;
    Ok(json(&out).iter().filter_map(|v| str_field(v, "ifname")).collect())
}

/// `(ifname, address/len)` of every IPv4 address in a namespace.
pub(crate) async fn addrs(ns: Option<&str>) -> Result<Vec<(String, Cidr)>, NetError> {
    let out = ip(ns, &["-j", "-4", "addr", "show"]).await?;
    let mut v = Vec::new();
    for link in json(&out) {
        let Some(ifname) = str_field(&link, "ifname") else { continue };
        for a in link.get("addr_info").and_then(|a| a.as_array()).into_iter().flatten() {
            let local = str_field(a, "local").and_then(|s| s.parse::<Ipv4Addr>().ok());
            let len = a.get("prefixlen").and_then(|l| l.as_u64()).and_then(|l| u8::try_from(l).ok());
            if let (Some(local), Some(len)) = (local, len) {
                if let Some(net) = Cidr::new(local, len) {
                    v.push((ifname.clone(), net));
                }
            }
        }
    }
    Ok(v)
}

/// One IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// As `ip` prints it: `10.0.1.5` for a /32, `10.0.0.0/24` otherwise, or `default`.
    pub dst: String,
    pub dev: Option<String>,
    pub gateway: Option<String>,
    /// `kernel` for connected routes.
    pub protocol: Option<String>,
}

pub(crate) async fn routes(ns: Option<&str>) -> Result<Vec<Route>, NetError> {
    let out = ip(ns, &["-j", "-4", "route", "show", "table", "main"]).await?;
    Ok(json(&out)
        .iter()
        .filter_map(|r| {
            Some(Route {
                dst: str_field(r, "dst")?,
                dev: str_field(r, "dev"),
                gateway: str_field(r, "gateway"),
                protocol: str_field(r, "protocol"),
            })
        })
        .collect())
}

/// Writes sysctls in a namespace with one `sysctl` process.
pub(crate) async fn sysctl(ns: &str, settings: &[String]) -> Result<(), NetError> {
    if settings.is_empty() {
        return Ok(());
    }
    let mut args = vec!["-q", "-w"];
    args.extend(settings.iter().map(String::as_str));
    in_ns(Some(ns), "sysctl", &args).await?;
    Ok(())
}

/// Applies an nftables script file inside a namespace (one transaction).
pub(crate) async fn nft_file(ns: Option<&str>, path: &std::path::Path) -> Result<(), NetError> {
    let p = path.to_string_lossy();
    in_ns(ns, "nft", &["-f", &p]).await?;
    Ok(())
}
