//! The few fields of a qcow2 header the pool reads: a layer's virtual size and backing file,
//! straight from the file, which works while a VM has the layer open (QEMU keeps the header
//! current, `block_resize` included) and costs no process.

use std::path::Path;

/// A qcow2 header's fixed fields we read (version 2 and 3 share them).
const QCOW2_MAGIC: u32 = 0x5146_49fb;
const QCOW2_HEADER_BYTES: usize = 32;
/// qcow2 limits a backing file name to 1023 bytes.
const MAX_BACKING_NAME: u32 = 1023;

/// What a layer's qcow2 header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerHeader {
    pub virtual_size: u64,
    /// The backing file named in the header (as written: an absolute path for our layers).
    pub backing_file: Option<String>,
}

/// Reads a qcow2 file's virtual size and backing file name from its header.
pub fn read_qcow2_header(path: &Path) -> std::io::Result<LayerHeader> {
    use std::io::{Read, Seek, SeekFrom};
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut f = std::fs::File::open(path)?;
    let mut h = [0u8; QCOW2_HEADER_BYTES];
    f.read_exact(&mut h).map_err(|e| invalid(format!("{}: too short for a qcow2 header ({e})", path.display())))?;
    let be32 = |o: usize| u32::from_be_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let be64 = |o: usize| u64::from_be_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    if be32(0) != QCOW2_MAGIC {
        return Err(invalid(format!("{}: not a qcow2 file", path.display())));
    }
    if !matches!(be32(4), 2 | 3) {
        return Err(invalid(format!("{}: unsupported qcow2 version {}", path.display(), be32(4))));
    }
    let (backing_offset, backing_len, virtual_size) = (be64(8), be32(16), be64(24));
    let backing_file = if backing_offset == 0 || backing_len == 0 {
        None
    } else {
        if backing_len > MAX_BACKING_NAME {
            return Err(invalid(format!("{}: backing file name of {backing_len} bytes", path.display())));
        }
        let mut name = vec![0u8; backing_len as usize];
        f.seek(SeekFrom::Start(backing_offset))?;
        f.read_exact(&mut name)?;
        Some(String::from_utf8(name).map_err(|_| invalid(format!("{}: backing file name is not UTF-8", path.display())))?)
    };
    Ok(LayerHeader { virtual_size, backing_file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_non_qcow2_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"short").unwrap();
        assert_eq!(read_qcow2_header(&f).unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        std::fs::write(&f, [0u8; 512]).unwrap();
        assert!(read_qcow2_header(&f).unwrap_err().to_string().contains("not a qcow2"));
    }
}
