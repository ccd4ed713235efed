//! Fetches Debian packages with the host's apt: resolves a package to its candidate version
//! (following `linux-image-cloud-amd64` to the concrete `linux-image-<abi>-cloud-amd64`),
//! downloads it with `apt-get download` into the shared `debs/` cache and unpacks it with
//! `dpkg-deb -x`. `apt-get update` runs only when apt has no lists for a package.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::ImageError;

/// A package at a definite version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub depends: String,
}

impl Package {
    /// The file name `apt-get download` gives it (an epoch's colon is written `%3a`).
    pub(crate) fn deb_file_name(&self) -> String {
        format!("{}_{}_{}.deb", self.name, self.version.replace(':', "%3a"), self.arch)
    }
}

/// Parses the first stanza of `apt-cache show --no-all-versions` output.
pub(crate) fn parse_show(text: &str) -> Option<Package> {
    let mut name = None;
    let mut version = None;
    let mut arch = None;
    let mut depends = String::new();
    for line in text.lines() {
        if line.is_empty() {
            if name.is_some() {
                break;
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(": ") {
            match k {
                "Package" => name = Some(v.trim().to_string()),
                "Version" => version = Some(v.trim().to_string()),
                "Architecture" => arch = Some(v.trim().to_string()),
                "Depends" => depends = v.trim().to_string(),
                _ => {}
            }
        }
    }
    Some(Package { name: name?, version: version?, arch: arch?, depends })
}

/// For a metapackage like `linux-image-cloud-amd64`, the concrete `linux-image-*` it depends on.
pub(crate) fn kernel_dependency(depends: &str) -> Option<String> {
    depends
        .split(',')
        .flat_map(|alt| alt.split('|'))
        .map(|d| d.trim().split(' ').next().unwrap_or("").to_string())
        .find(|d| is_concrete_kernel(d))
}

/// `linux-image-6.1.0-56-cloud-amd64` is a kernel; `linux-image-cloud-amd64` a metapackage.
pub(crate) fn is_concrete_kernel(name: &str) -> bool {
    name.strip_prefix("linux-image-").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// The candidate version of `name`, running `apt-get update` once if apt does not know it.
pub(crate) async fn candidate(name: &str, progress: &(dyn Fn(&str) + Send + Sync)) -> Result<Package, ImageError> {
    let show = || async {
        match corral_exec::run("apt-cache", &["show", "--no-all-versions", name]).await {
            Ok(out) => Ok(parse_show(&String::from_utf8_lossy(&out.stdout))),
            Err(e) => Err(e),
        }
    };
    let first = show().await;
    if let Ok(Some(p)) = first {
        return Ok(p);
    }
    progress(&format!("apt has no lists for {name}; running apt-get update"));
    update(name).await?;
    match show().await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => {
            Err(ImageError::Package { package: name.to_string(), reason: "apt-cache show printed no package stanza".into(), source: None })
        }
        Err(e) => Err(ImageError::Package {
            package: name.to_string(),
            reason: "apt knows no such package (is deb.debian.org bookworm in the apt sources?)".into(),
            source: Some(Box::new(e)),
        }),
    }
}

async fn update(package: &str) -> Result<(), ImageError> {
    corral_exec::run("apt-get", &["update", "-q"]).await.map_err(|e| ImageError::Package {
        package: package.to_string(),
        reason: "apt-get update failed".into(),
        source: Some(Box::new(e)),
    })?;
    Ok(())
}

/// Resolves `name` (following a kernel metapackage to the concrete kernel package).
pub(crate) async fn resolve(name: &str, progress: &(dyn Fn(&str) + Send + Sync)) -> Result<Package, ImageError> {
    let p = candidate(name, progress).await?;
    if name.starts_with("linux-image-") && !is_concrete_kernel(name) {
        let concrete = kernel_dependency(&p.depends).ok_or_else(|| ImageError::Package {
            package: name.to_string(),
            reason: format!("no linux-image-<version> in its Depends ({:?})", p.depends),
            source: None,
        })?;
        return candidate(&concrete, progress).await;
    }
    Ok(p)
}

/// Makes sure `<debs_dir>/<package>.deb` exists, downloading it through a scratch directory
/// (so a concurrent or interrupted download never leaves a partial file under the final name).
pub(crate) async fn fetch(
    package: &Package,
    debs_dir: &Path,
    scratch: &Path,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<PathBuf, ImageError> {
    let target = debs_dir.join(package.deb_file_name());
    if target.is_file() {
        return Ok(target);
    }
    progress(&format!("downloading {} {}", package.name, package.version));
    let dir = scratch.join(format!("download-{}", package.name));
    tokio::fs::create_dir_all(&dir).await.map_err(ImageError::io("create", &dir))?;
    let spec = format!("{}={}", package.name, package.version);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match download(&spec, &dir).await {
            Ok(()) => break,
            Err(e) if attempt == 1 => {
                // Stale lists name a file the mirror no longer has: refresh and retry once.
                tracing::warn!(package = %spec, error = %e, "download failed; running apt-get update and retrying");
                progress(&format!("download of {spec} failed; running apt-get update"));
                update(&package.name).await?;
            }
            Err(e) => {
                return Err(ImageError::Package { package: spec, reason: "apt-get download failed".into(), source: Some(Box::new(e)) })
            }
        }
    }
    let got = dir.join(package.deb_file_name());
    if !got.is_file() {
        return Err(ImageError::Package {
            package: spec,
            reason: format!("apt-get download did not produce {}", got.display()),
            source: None,
        });
    }
    tokio::fs::rename(&got, &target).await.map_err(ImageError::io("move into the package cache", &target))?;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    Ok(target)
}

/// `apt-get download SPEC` with `dir` as working directory.
async fn download(spec: &str, dir: &Path) -> Result<(), corral_exec::ExecError> {
    let line = format!("apt-get download {spec} (in {})", dir.display());
    let out = corral_exec::command("apt-get")
        .args(["download", "-q", spec])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| corral_exec::ExecError::Spawn { command: line.clone(), source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(corral_exec::ExecError::Failed {
            command: line,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Unpacks `deb` into `dest` with `dpkg-deb -x`.
pub(crate) async fn extract(deb: &Path, dest: &Path) -> Result<(), ImageError> {
    tokio::fs::create_dir_all(dest).await.map_err(ImageError::io("create", dest))?;
    corral_exec::run("dpkg-deb", &[std::ffi::OsStr::new("-x"), deb.as_os_str(), dest.as_os_str()])
        .await
        .map_err(ImageError::command(format!("unpacking {}", deb.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW: &str = "Package: linux-image-cloud-amd64\nSource: linux-signed-amd64 (6.1.192+2)\n\
Version: 6.1.192-2\nInstalled-Size: 13\nMaintainer: Debian Kernel Team\nArchitecture: amd64\n\
Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\nDescription: Linux for x86-64 cloud\n\n";

    #[test]
    fn parses_apt_cache_show() {
        let p = parse_show(SHOW).unwrap();
        assert_eq!(p.name, "linux-image-cloud-amd64");
        assert_eq!(p.version, "6.1.192-2");
        assert_eq!(p.arch, "amd64");
        assert_eq!(kernel_dependency(&p.depends).as_deref(), Some("linux-image-6.1.0-56-cloud-amd64"));
        assert_eq!(parse_show(""), None);
        assert!(is_concrete_kernel("linux-image-6.1.0-56-cloud-amd64"));
        assert!(!is_concrete_kernel("linux-image-cloud-amd64"));
    }

    #[test]
    fn deb_names_escape_epochs() {
        let p = Package {
            name: "busybox-static".into(),
            version: "1:1.35.0-4+deb12u1+b1".into(),
            arch: "amd64".into(),
            depends: String::new(),
        };
        assert_eq!(p.deb_file_name(), "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb");
    }
}
