//! Turns a Debian `vmlinuz` (bzImage) into the uncompressed `vmlinux` that `-M microvm` boots
//! through its PVH entry.
//!
//! The bzImage setup header says where the compressed payload is (`payload_offset`,
//! `payload_length`); its magic says how it is compressed. Debian's 6.1 cloud kernel uses LZ4
//! (legacy frame format), decoded here in Rust so the build host needs no `lz4` binary; gzip,
//! xz, lzma, bzip2, lzo and zstd payloads are handed to the matching host tool. Every payload
//! except gzip ends with the uncompressed size (4 bytes, little-endian), which is checked.

use std::path::Path;

use crate::elf::{Elf, EM_X86_64};
use crate::ImageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Gzip,
    Xz,
    Lzma,
    Bzip2,
    Lzo,
    Lz4,
    Zstd,
    None,
}

impl Compression {
    pub(crate) fn detect(payload: &[u8]) -> Option<Self> {
        const MAGICS: &[(&[u8], Compression)] = &[
            (b"\x1f\x8b", Compression::Gzip),
            (b"\xfd7zXZ\x00", Compression::Xz),
            (b"\x5d\x00\x00", Compression::Lzma),
            (b"BZh", Compression::Bzip2),
            (b"\x89LZO", Compression::Lzo),
            (b"\x02\x21\x4c\x18", Compression::Lz4),
            (b"\x28\xb5\x2f\xfd", Compression::Zstd),
            (b"\x7fELF", Compression::None),
        ];
        MAGICS.iter().find(|(m, _)| payload.starts_with(m)).map(|(_, c)| *c)
    }
}

/// Where the payload sits in a bzImage, from its setup header.
fn payload(image: &[u8]) -> Result<&[u8], String> {
    if image.get(0x202..0x206) != Some(b"HdrS") {
        return Err("no bzImage setup header (HdrS magic)".into());
    }
    let version = u16::from_le_bytes([image[0x206], image[0x207]]);
    if version < 0x0208 {
        return Err(format!("boot protocol {version:#x} has no payload fields (needs 2.08)"));
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let word = |off: usize| u32::from_le_bytes(image[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
    let start = (setup_sects + 1) * 512 + word(0x248);
    let len = word(0x24c);
    image.get(start..start + len).ok_or_else(|| format!("payload {start}+{len} lies outside the file"))
}

/// Reads `vmlinuz`, writes the uncompressed kernel to `out` and checks it is an x86-64 ELF with
/// a PVH entry note. Returns the compression that was found.
pub(crate) async fn extract_vmlinux(vmlinuz: &Path, out: &Path) -> Result<Compression, ImageError> {
    let image = tokio::fs::read(vmlinuz).await.map_err(ImageError::io("read", vmlinuz))?;
    let bad = |reason: String| ImageError::Kernel { path: vmlinuz.to_path_buf(), reason };
    let payload = payload(&image).map_err(bad)?;
    let compression =
        Compression::detect(payload).ok_or_else(|| bad(format!("unknown payload magic {:02x?}", &payload[..payload.len().min(6)])))?;
    let (body, expected) = match compression {
        Compression::Gzip | Compression::None => (payload, None),
        _ if payload.len() >= 4 => {
            let (body, size) = payload.split_at(payload.len() - 4);
            (body, Some(u32::from_le_bytes(size.try_into().unwrap_or([0; 4])) as usize))
        }
        _ => return Err(bad("payload too short".into())),
    };
    let vmlinux = match compression {
        Compression::None => body.to_vec(),
        Compression::Lz4 => {
            let body = body.to_vec();
            tokio::task::spawn_blocking(move || lz4_legacy_decode(&body))
                .await
                .map_err(|e| bad(format!("decoder stopped: {e}")))?
                .map_err(|e| bad(format!("LZ4 payload: {e}")))?
        }
        other => {
            let (tool, args): (&str, &[&str]) = match other {
                Compression::Gzip => ("gzip", &["-dc"]),
                Compression::Xz => ("xz", &["-dc", "--single-stream"]),
                Compression::Lzma => ("xz", &["-dc", "--format=lzma"]),
                Compression::Bzip2 => ("bzip2", &["-dc"]),
                Compression::Lzo => ("lzop", &["-dc"]),
                _ => ("zstd", &["-dc"]),
            };
            corral_exec::run_with_stdin(tool, args, Some(body))
                .await
                .map_err(ImageError::command(format!("decompressing {} ({other:?})", vmlinuz.display())))?
                .stdout
        }
    };
    if let Some(expected) = expected {
        if vmlinux.len() != expected {
            return Err(bad(format!("decompressed {} bytes, the trailer says {expected}", vmlinux.len())));
        }
    }
    check_vmlinux(&vmlinux).map_err(bad)?;
    tokio::fs::write(out, &vmlinux).await.map_err(ImageError::io("write", out))?;
    Ok(compression)
}

/// An x86-64 ELF with the PVH entry note.
pub(crate) fn check_vmlinux(data: &[u8]) -> Result<(), String> {
    let elf = Elf::parse(data).map_err(|e| format!("decompressed kernel: {e}"))?;
    if elf.machine != EM_X86_64 {
        return Err(format!("decompressed kernel is for ELF machine {}, not x86-64", elf.machine));
    }
    if !elf.has_pvh_entry() {
        return Err("decompressed kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); \
                    microvm cannot boot it"
            .into());
    }
    Ok(())
}

const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;

/// Decodes LZ4's legacy frame format (what `lz4 -l` and the kernel's build write): the magic,
/// then blocks of `u32 size` + LZ4 block data, each decoding to at most 8 MiB.
pub(crate) fn lz4_legacy_decode(data: &[u8]) -> Result<Vec<u8>, String> {
    let word = |p: usize| data.get(p..p + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
    if word(0) != Some(LZ4_LEGACY_MAGIC) {
        return Err("no LZ4 legacy magic".into());
    }
    let mut out = Vec::with_capacity(data.len() * 4);
    let mut pos = 4;
    while pos < data.len() {
        let size = word(pos).ok_or("truncated block header")?;
        pos += 4;
        if size == LZ4_LEGACY_MAGIC {
            continue; // concatenated frames
        }
        let block = data.get(pos..pos + size as usize).ok_or("block runs past the end of the data")?;
        lz4_block_decode(block, &mut out)?;
        pos += size as usize;
    }
    Ok(out)
}

/// Appends the decoding of one LZ4 block to `out` (matches may reach back into earlier output,
/// up to 64 KiB).
fn lz4_block_decode(block: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let mut p = 0;
    let byte = |p: usize| block.get(p).copied().ok_or("truncated block");
    let extended = |p: &mut usize, mut len: usize| -> Result<usize, String> {
        loop {
            let b = byte(*p)?;
            *p += 1;
            len += usize::from(b);
            if b != 255 {
                return Ok(len);
            }
        }
    };
    while p < block.len() {
        let token = byte(p)?;
        p += 1;
        let mut lit = usize::from(token >> 4);
        if lit == 15 {
            lit = extended(&mut p, lit)?;
        }
        let literals = block.get(p..p + lit).ok_or("literals run past the block")?;
        out.extend_from_slice(literals);
        p += lit;
        if p == block.len() {
            break; // the last sequence has literals only
        }
        let offset = usize::from(byte(p)?) | usize::from(byte(p + 1)?) << 8;
        p += 2;
        let mut len = usize::from(token & 15);
        if len == 15 {
            len = extended(&mut p, len)?;
        }
        len += 4;
        if offset == 0 || offset > out.len() {
            return Err(format!("match offset {offset} outside the {} bytes decoded", out.len()));
        }
        let start = out.len() - offset;
        if offset >= len {
            out.extend_from_within(start..start + len);
        } else {
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_hand_made_lz4_block() {
        // "abcabcabcabc!": literals "abc", match offset 3 length 9, then final literal "!".
        let block = [0x35, b'a', b'b', b'c', 3, 0, 0x10, b'!'];
        let mut frame = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        frame.extend_from_slice(&(block.len() as u32).to_le_bytes());
        frame.extend_from_slice(&block);
        assert_eq!(lz4_legacy_decode(&frame).unwrap(), b"abcabcabcabc!");
    }

    #[test]
    fn rejects_bad_offsets_and_magic() {
        let block = [0x10, b'a', 9, 0];
        let mut frame = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        frame.extend_from_slice(&(block.len() as u32).to_le_bytes());
        frame.extend_from_slice(&block);
        assert!(lz4_legacy_decode(&frame).is_err());
        assert!(lz4_legacy_decode(b"nope").is_err());
    }

    #[test]
    fn detects_compressions() {
        assert_eq!(Compression::detect(b"\x02\x21\x4c\x18xx"), Some(Compression::Lz4));
        assert_eq!(Compression::detect(b"\xfd7zXZ\x00.."), Some(Compression::Xz));
        assert_eq!(Compression::detect(b"\x28\xb5\x2f\xfd"), Some(Compression::Zstd));
        assert_eq!(Compression::detect(b"\x1f\x8b\x08"), Some(Compression::Gzip));
        assert_eq!(Compression::detect(b"what"), None);
    }

    #[test]
    fn refuses_a_file_without_setup_header() {
        assert!(payload(&[0u8; 4096]).is_err());
    }
}
