//! Writes an uncompressed cpio archive in the "newc" format the kernel unpacks as initramfs.
//!
//! Written in Rust rather than with `cpio` so that device nodes (`/dev/console`) and root
//! ownership need no privileges, and the archive is byte-for-byte reproducible (fixed mtime
//! and inode numbers).

use std::path::Path;

use crate::ImageError;

/// One archive member. Paths are relative (`bin/busybox`), parents listed before children.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Dir { path: String, mode: u32 },
    File { path: String, mode: u32, data: Vec<u8> },
    Symlink { path: String, target: String },
    CharDev { path: String, mode: u32, major: u32, minor: u32 },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[allow(clippy::too_many_arguments)]
fn member(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, rdev: (u32, u32), name: &str, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        data.len() as u32,
        0, // dev major
        0, // dev minor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// The archive's bytes.
pub(crate) fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match e {
            Entry::Dir { path, mode } => member(&mut out, ino, S_IFDIR | mode, 2, (0, 0), path, &[]),
            Entry::File { path, mode, data } => member(&mut out, ino, S_IFREG | mode, 1, (0, 0), path, data),
            Entry::Symlink { path, target } => member(&mut out, ino, S_IFLNK | 0o777, 1, (0, 0), path, target.as_bytes()),
            Entry::CharDev { path, mode, major, minor } => member(&mut out, ino, S_IFCHR | mode, 1, (*major, *minor), path, &[]),
        }
    }
    member(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
    out
}

pub(crate) async fn write(path: &Path, entries: &[Entry]) -> Result<u64, ImageError> {
    let data = archive(entries);
    tokio::fs::write(path, &data).await.map_err(ImageError::io("write", path))?;
    Ok(data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout() {
        let a = archive(&[
            Entry::Dir { path: "dev".into(), mode: 0o755 },
            Entry::CharDev { path: "dev/console".into(), mode: 0o600, major: 5, minor: 1 },
            Entry::File { path: "init".into(), mode: 0o755, data: b"#!/bin/sh\n".to_vec() },
        ]);
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        let text = String::from_utf8_lossy(&a);
        assert!(text.contains("dev/console\0"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!\0"));
        // The console node: mode 020600, rdev 5:1.
        let at = text.find("dev/console").unwrap() - 110;
        let header = &text[at..at + 110];
        assert_eq!(&header[14..22], "00002180");
        assert_eq!(&header[78..86], "00000005");
        assert_eq!(&header[86..94], "00000001");
    }
}
