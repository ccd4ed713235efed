//! Small file-system helpers for assembling image trees: writing files with modes, atomic
//! replacement, busybox applet links. Each error names the path it failed on.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::ImageError;

/// `root` joined with an image path like `/etc/passwd`.
pub(crate) fn in_tree(root: &Path, image_path: &str) -> PathBuf {
    root.join(image_path.trim_start_matches('/'))
}

pub(crate) fn mkdir(path: &Path, mode: u32) -> Result<(), ImageError> {
    std::fs::create_dir_all(path).map_err(ImageError::io("create", path))?;
    set_mode(path, mode)
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), ImageError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(ImageError::io("chmod", path))
}

/// Writes `content` to `path` (creating parent directories) and sets its mode.
pub(crate) fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), ImageError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(ImageError::io("create", parent))?;
    }
    // Replace rather than write through: the path may be a symlink or a hard link into the tree.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ImageError::Io { action: "replace", path: path.to_path_buf(), source: e }),
    }
    std::fs::write(path, content).map_err(ImageError::io("write", path))?;
    set_mode(path, mode)
}

/// Writes `path` through a temporary file, fsync and rename, so readers see all or nothing.
pub(crate) fn write_atomic(path: &Path, content: &[u8]) -> Result<(), ImageError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(ImageError::io("create", &tmp))?;
    f.write_all(content).map_err(ImageError::io("write", &tmp))?;
    f.sync_all().map_err(ImageError::io("sync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(ImageError::io("rename", path))
}

pub(crate) fn symlink(target: &str, link: &Path) -> Result<(), ImageError> {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(ImageError::io("create", parent))?;
    }
    std::os::unix::fs::symlink(target, link).map_err(ImageError::io("create symlink", link))
}

pub(crate) fn copy(from: &Path, to: &Path) -> Result<(), ImageError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(ImageError::io("create", parent))?;
    }
    std::fs::copy(from, to).map_err(ImageError::io("copy", from))?;
    Ok(())
}

/// Lists busybox's applets with their install paths (`usr/bin/awk`, `sbin/ifconfig`, ...), by
/// running the (static) binary on the build host.
pub(crate) async fn busybox_applets(busybox: &Path) -> Result<Vec<String>, ImageError> {
    let out =
        corral_exec::run(&busybox.to_string_lossy(), &["--list-full"]).await.map_err(ImageError::command("listing busybox applets"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let applets: Vec<String> = text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    if applets.iter().all(|a| !a.ends_with("/sh")) {
        return Err(ImageError::Output { command: format!("{} --list-full", busybox.display()), reason: "no `sh` applet listed".into() });
    }
    Ok(applets)
}

/// Relative symlink target from the directory of `link` (an image path like `usr/bin/awk`) to
/// `/bin/busybox`.
pub(crate) fn link_to_busybox(applet_path: &str) -> String {
    let depth = applet_path.split('/').count().saturating_sub(1);
    if depth <= 1 && applet_path.starts_with("bin/") {
        return "busybox".into();
    }
    format!("{}bin/busybox", "../".repeat(depth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_links_are_relative() {
        assert_eq!(link_to_busybox("bin/sh"), "busybox");
        assert_eq!(link_to_busybox("sbin/ifconfig"), "../bin/busybox");
        assert_eq!(link_to_busybox("usr/bin/awk"), "../../bin/busybox");
    }

    #[test]
    fn write_atomic_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        write_atomic(&p, b"1").unwrap();
        write_atomic(&p, b"2").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"2");
        assert!(!dir.path().join("m.tmp").exists());
    }
}
