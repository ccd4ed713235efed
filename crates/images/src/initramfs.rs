//! The tiny initramfs both images boot with: static busybox, `/dev/console`, the virtio and
//! power-button modules in load order, and an `/init` that loads them, mounts `root=` and
//! `switch_root`s. Debian's own initrd costs about 20 s under TCG; this one almost nothing.

use std::collections::BTreeSet;
use std::path::Path;

use crate::cpio::{self, Entry};
use crate::modules::{Module, ModuleIndex};
use crate::recipe::{INITRAMFS_INIT, INITRAMFS_MODULES};
use crate::ImageError;

/// What went into the initramfs.
pub(crate) struct Initramfs {
    pub modules: Vec<Module>,
    pub bytes: u64,
}

/// Writes the initramfs (uncompressed newc cpio: unpacking beats decompressing under TCG) to
/// `out`, with busybox from `busybox` and the modules of `index`.
pub(crate) async fn build(busybox: &Path, applets: &[String], index: &ModuleIndex, out: &Path) -> Result<Initramfs, ImageError> {
    let modules = index.closure(INITRAMFS_MODULES).await?;
    let mut dirs: BTreeSet<String> = ["bin", "dev", "etc", "lib", "lib/modules", "newroot", "proc", "sys"].map(String::from).into();
    let mut files = Vec::new();
    let mut list = String::new();
    for m in &modules {
        let rel = format!("{}/{}", index.version, m.plain_rel());
        let path = format!("lib/modules/{rel}");
        let mut parent = Path::new(&path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            parent = p.parent();
        }
        files.push(Entry::File { path, mode: 0o644, data: index.read(&m.name).await? });
        list.push_str(&rel);
        list.push('\n');
    }

    let busybox_bytes = tokio::fs::read(busybox).await.map_err(ImageError::io("read", busybox))?;
    let mut entries: Vec<Entry> = dirs.into_iter().map(|path| Entry::Dir { path, mode: 0o755 }).collect();
    entries.push(Entry::CharDev { path: "dev/console".into(), mode: 0o600, major: 5, minor: 1 });
    entries.push(Entry::CharDev { path: "dev/null".into(), mode: 0o666, major: 1, minor: 3 });
    entries.push(Entry::File { path: "bin/busybox".into(), mode: 0o755, data: busybox_bytes });
    let names: BTreeSet<&str> = applets.iter().filter_map(|a| a.rsplit('/').next()).collect();
    for name in names.into_iter().filter(|n| *n != "busybox") {
        entries.push(Entry::Symlink { path: format!("bin/{name}"), target: "busybox".into() });
    }
    entries.push(Entry::File { path: "etc/modules".into(), mode: 0o644, data: list.into_bytes() });
    entries.push(Entry::File { path: "init".into(), mode: 0o755, data: INITRAMFS_INIT.as_bytes().to_vec() });
    entries.extend(files);
    let bytes = cpio::write(out, &entries).await?;
    Ok(Initramfs { modules, bytes })
}
