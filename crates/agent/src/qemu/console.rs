//! A VM's serial console on disk (`console.log`, which QEMU appends to), kept bounded: a guest
//! that writes without end would otherwise fill the host's disk. When the file passes
//! [`MAX_BYTES`] its last [`KEEP_BYTES`] are kept and the rest dropped, in place: QEMU opened
//! it with `append=on` (O_APPEND), so its next write lands after what was kept. Reads take the
//! tail only, whatever the file holds.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The most a console log holds on disk before it is cut.
pub(crate) const MAX_BYTES: u64 = 1024 * 1024;
/// What a cut keeps (GetConsoleOutput shows the last 64 KiB of it).
pub(crate) const KEEP_BYTES: u64 = 256 * 1024;

/// The last `max` bytes of the file at `path` (empty when there is none).
pub(crate) fn tail(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut out = Vec::with_capacity(len.min(max) as usize);
    f.take(max).read_to_end(&mut out)?;
    Ok(out)
}

/// Cuts the file at `path` to its last `keep` bytes when it holds more than `over`; says
/// whether it did. What the writer appends between the read and the cut is lost, a few bytes
/// of console at most.
pub(crate) fn trim(path: &Path, over: u64, keep: u64) -> std::io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > over => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let kept = tail(path, keep)?;
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.set_len(0)?;
    f.write_all(&kept)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reads_only_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.log");
        assert_eq!(tail(&p, 10).unwrap(), b"");
        std::fs::write(&p, b"0123456789abcdef").unwrap();
        assert_eq!(tail(&p, 4).unwrap(), b"cdef");
        assert_eq!(tail(&p, 100).unwrap(), b"0123456789abcdef");
    }

    /// A writer holding the file open in append mode (as QEMU does) goes on after a cut, right
    /// after what was kept: no hole, no growth past the bound.
    #[test]
    fn a_cut_keeps_the_end_and_the_writer_appends_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.log");
        let mut qemu = std::fs::OpenOptions::new().create(true).append(true).open(&p).unwrap();
        let line = |i: usize| format!("line {i:06} of a chatty guest\n");
        let mut written = String::new();
        for i in 0..2_000 {
            let l = line(i);
            qemu.write_all(l.as_bytes()).unwrap();
            written.push_str(&l);
            trim(&p, 4096, 1024).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() <= 4096 + l.len() as u64);
        }
        qemu.write_all(b"last\n").unwrap();
        written.push_str("last\n");
        let now = std::fs::read(&p).unwrap();
        assert!(!now.contains(&0), "no hole of zeros");
        assert!(written.as_bytes().ends_with(&now), "what is left is the end of what was written");
        assert!(now.len() >= 1024, "at least what a cut keeps");
        assert!(!trim(&p, 1 << 20, 1024).unwrap(), "a small file is left alone");
    }
}
