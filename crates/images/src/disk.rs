//! Root disks: an ext4 file system made from a directory (`mkfs.ext4 -d`) in a sparse raw file,
//! converted to qcow2 with `qemu-img`, and read back with `qemu-img info` to check it.

use std::path::Path;

use crate::ImageError;

/// A UUID (RFC 4122 form, version 4 bits set) derived from `seed` (hex), so a recipe always
/// makes the same file-system UUID.
pub(crate) fn uuid_from_hex(seed: &str) -> String {
    let mut b: Vec<u8> = (0..16).map(|i| u8::from_str_radix(seed.get(i * 2..i * 2 + 2).unwrap_or("00"), 16).unwrap_or(0)).collect();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Makes `raw` (sparse, `size` bytes) an ext4 file system holding the contents of `tree`.
pub(crate) async fn make_ext4(tree: &Path, raw: &Path, size: u64, label: &str, uuid: &str) -> Result<(), ImageError> {
    let f = tokio::fs::File::create(raw).await.map_err(ImageError::io("create", raw))?;
    f.set_len(size).await.map_err(ImageError::io("size", raw))?;
    drop(f);
    let tree_arg = tree.to_string_lossy();
    let raw_arg = raw.to_string_lossy();
    // Initialise inode tables and journal now: otherwise the guest kernel zeroes them on first
    // mount (ext4lazyinit), slow under TCG and growing every instance's overlay.
    let args = [
        "-q",
        "-F",
        "-t",
        "ext4",
        "-L",
        label,
        "-U",
        uuid,
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0",
        "-d",
        tree_arg.as_ref(),
        raw_arg.as_ref(),
    ];
    corral_exec::run("mkfs.ext4", &args)
        .await
        .map_err(ImageError::command(format!("making the ext4 root file system from {}", tree.display())))?;
    Ok(())
}

/// `qemu-img convert -O qcow2`, then checks the result with `qemu-img info`; returns the
/// virtual size.
pub(crate) async fn to_qcow2(raw: &Path, qcow2: &Path) -> Result<u64, ImageError> {
    corral_exec::run(
        "qemu-img",
        &[
            "convert".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "raw".as_ref(),
            "-O".as_ref(),
            "qcow2".as_ref(),
            raw.as_os_str(),
            qcow2.as_os_str(),
        ] as &[&std::ffi::OsStr],
    )
    .await
    .map_err(ImageError::command(format!("converting {} to qcow2", raw.display())))?;
    let (format, size) = info(qcow2).await?;
    if format != "qcow2" {
        return Err(ImageError::Output {
            command: format!("qemu-img info {}", qcow2.display()),
            reason: format!("format is {format}, not qcow2"),
        });
    }
    Ok(size)
}

/// (format, virtual size) from `qemu-img info --output=json`.
pub(crate) async fn info(path: &Path) -> Result<(String, u64), ImageError> {
    let out = corral_exec::run("qemu-img", &["info".as_ref(), "--output=json".as_ref(), path.as_os_str()] as &[&std::ffi::OsStr])
        .await
        .map_err(ImageError::command(format!("reading {}", path.display())))?;
    let command = format!("qemu-img info --output=json {}", path.display());
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| ImageError::Output { command: command.clone(), reason: e.to_string() })?;
    let format = v["format"].as_str().unwrap_or_default().to_string();
    let size = v["virtual-size"].as_u64().ok_or_else(|| ImageError::Output { command, reason: "no virtual-size".into() })?;
    Ok((format, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_rfc4122_shaped_and_stable() {
        let u = uuid_from_hex(&"ab".repeat(32));
        assert_eq!(u, uuid_from_hex(&"ab".repeat(32)));
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(u, "abababab-abab-4bab-abab-abababababab");
    }
}
