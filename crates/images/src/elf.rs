//! Just enough ELF64 (little-endian) reading for three checks: a kernel module's `.modinfo`
//! strings (its dependencies), a `vmlinux`'s notes (the PVH entry point microvm boots) and a
//! dynamically linked program's `DT_NEEDED` libraries, run path and interpreter (what
//! corral-minimal must carry to run dropbear and sudo).

/// ELF machine number of x86-64.
pub(crate) const EM_X86_64: u16 = 62;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit PVH entry point, in a note named "Xen".
pub(crate) const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

fn u16_at(d: &[u8], off: usize) -> Option<u16> {
    d.get(off..off + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}
fn u32_at(d: &[u8], off: usize) -> Option<u32> {
    d.get(off..off + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
}
fn u64_at(d: &[u8], off: usize) -> Option<u64> {
    d.get(off..off + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

/// A parsed ELF64 little-endian header, borrowed over the file's bytes.
pub(crate) struct Elf<'a> {
    data: &'a [u8],
    pub machine: u16,
}

impl<'a> Elf<'a> {
    /// `Err` says why the bytes are not an ELF64 little-endian file.
    pub(crate) fn parse(data: &'a [u8]) -> Result<Self, String> {
        if data.len() < 64 || &data[..4] != b"\x7fELF" {
            return Err("no ELF magic".into());
        }
        if data[4] != 2 || data[5] != 1 {
            return Err("not a 64-bit little-endian ELF file".into());
        }
        let machine = u16_at(data, 0x12).unwrap_or(0);
        Ok(Elf { data, machine })
    }

    /// The contents of the section called `name`, if any.
    pub(crate) fn section(&self, name: &str) -> Option<&'a [u8]> {
        let d = self.data;
        let shoff = usize::try_from(u64_at(d, 0x28)?).ok()?;
        let shentsize = usize::from(u16_at(d, 0x3a)?);
        let shnum = usize::from(u16_at(d, 0x3c)?);
        let shstrndx = usize::from(u16_at(d, 0x3e)?);
        let header = |i: usize| -> Option<(u32, usize, usize)> {
            let base = shoff.checked_add(i.checked_mul(shentsize)?)?;
            let name = u32_at(d, base)?;
            let off = usize::try_from(u64_at(d, base + 24)?).ok()?;
            let size = usize::try_from(u64_at(d, base + 32)?).ok()?;
            Some((name, off, size))
        };
        let (_, stroff, strsize) = header(shstrndx)?;
        let strtab = d.get(stroff..stroff.checked_add(strsize)?)?;
        (0..shnum).find_map(|i| {
            let (n, off, size) = header(i)?;
            let rest = strtab.get(n as usize..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            if &rest[..end] == name.as_bytes() {
                d.get(off..off.checked_add(size)?)
            } else {
                None
            }
        })
    }

    /// All notes in `PT_NOTE` segments, as (name, type, descriptor).
    pub(crate) fn notes(&self) -> Vec<(&'a [u8], u32, &'a [u8])> {
        let d = self.data;
        let mut out = Vec::new();
        let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(d, 0x20), u16_at(d, 0x36), u16_at(d, 0x38)) else {
            return out;
        };
        for i in 0..usize::from(phnum) {
            let Some(base) = usize::try_from(phoff).ok().and_then(|o| o.checked_add(i * usize::from(phentsize))) else {
                break;
            };
            if u32_at(d, base) != Some(4) {
                continue; // not PT_NOTE
            }
            let (Some(off), Some(size)) = (u64_at(d, base + 8), u64_at(d, base + 32)) else { continue };
            let Some(end) = off.checked_add(size) else { continue };
            let Some(seg) = d.get(off as usize..end as usize) else { continue };
            let mut p = 0usize;
            let align4 = |x: usize| (x + 3) & !3;
            while p + 12 <= seg.len() {
                let namesz = u32_at(seg, p).unwrap_or(0) as usize;
                let descsz = u32_at(seg, p + 4).unwrap_or(0) as usize;
                let ty = u32_at(seg, p + 8).unwrap_or(0);
                let name_start = p + 12;
                let desc_start = name_start + align4(namesz);
                let next = desc_start + align4(descsz);
                let (Some(name), Some(desc)) = (seg.get(name_start..name_start + namesz), seg.get(desc_start..desc_start + descsz)) else {
                    break;
                };
                let name = name.strip_suffix(&[0]).unwrap_or(name);
                out.push((name, ty, desc));
                p = next;
            }
        }
        out
    }

    /// The strings of the `.dynamic` entries tagged `tag` (offsets into `.dynstr`), in order.
    fn dynamic_strings(&self, tag: u64) -> Vec<String> {
        const DT_NULL: u64 = 0;
        let (Some(dynamic), Some(dynstr)) = (self.section(".dynamic"), self.section(".dynstr")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in dynamic.chunks_exact(16) {
            let t = u64_at(entry, 0).unwrap_or(DT_NULL);
            if t == DT_NULL {
                break;
            }
            if t != tag {
                continue;
            }
            let Some(rest) = u64_at(entry, 8).and_then(|off| usize::try_from(off).ok()).and_then(|off| dynstr.get(off..)) else {
                continue;
            };
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
        out
    }

    /// The sonames in `DT_NEEDED` entries of the `.dynamic` section, in order; empty for a
    /// static program.
    pub(crate) fn needed(&self) -> Vec<String> {
        const DT_NEEDED: u64 = 1;
        self.dynamic_strings(DT_NEEDED)
    }

    /// The directories of its `DT_RUNPATH` (else `DT_RPATH`) entry, where the loader looks for
    /// this object's own `DT_NEEDED` libraries before the system directories (sudo finds
    /// `libsudo_util.so.0` in `/usr/libexec/sudo` so).
    pub(crate) fn runpath(&self) -> Vec<String> {
        const DT_RPATH: u64 = 15;
        const DT_RUNPATH: u64 = 29;
        let mut paths = self.dynamic_strings(DT_RUNPATH);
        if paths.is_empty() {
            paths = self.dynamic_strings(DT_RPATH);
        }
        paths.iter().flat_map(|p| p.split(':')).filter(|d| !d.is_empty()).map(str::to_string).collect()
    }

    /// The program interpreter (`.interp`, e.g. `/lib64/ld-linux-x86-64.so.2`), if any.
    pub(crate) fn interpreter(&self) -> Option<String> {
        let interp = self.section(".interp")?;
        let end = interp.iter().position(|&b| b == 0).unwrap_or(interp.len());
        Some(String::from_utf8_lossy(&interp[..end]).into_owned())
    }

    /// Whether the kernel has the PVH entry note that `-M microvm -kernel vmlinux` needs.
    pub(crate) fn has_pvh_entry(&self) -> bool {
        self.notes().iter().any(|(name, ty, _)| *name == b"Xen" && *ty == XEN_ELFNOTE_PHYS32_ENTRY)
    }
}

/// `key=value` pairs of a module's `.modinfo` section.
pub(crate) fn modinfo(module: &[u8]) -> Result<Vec<(String, String)>, String> {
    let elf = Elf::parse(module)?;
    let section = elf.section(".modinfo").ok_or("no .modinfo section")?;
    Ok(section
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let s = String::from_utf8_lossy(s);
            s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect())
}

/// Builds ELF64 files for tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::EM_X86_64;

    /// An x86-64 ELF64 file with the named sections (and a section header string table).
    pub(crate) fn with_sections(sections: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut d = vec![0u8; 64];
        d[..4].copy_from_slice(b"\x7fELF");
        d[4] = 2;
        d[5] = 1;
        d[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
        let mut shstr = vec![0u8];
        let mut headers = vec![(0u32, 0usize, 0usize)];
        for (name, content) in sections {
            let name_off = shstr.len() as u32;
            shstr.extend_from_slice(name.as_bytes());
            shstr.push(0);
            headers.push((name_off, d.len(), content.len()));
            d.extend_from_slice(content);
        }
        let name_off = shstr.len() as u32;
        shstr.extend_from_slice(b".shstrtab\0");
        headers.push((name_off, d.len(), shstr.len()));
        d.extend_from_slice(&shstr);
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        let sh_off = d.len();
        for (name, off, size) in &headers {
            let mut sh = [0u8; 64];
            sh[..4].copy_from_slice(&name.to_le_bytes());
            sh[24..32].copy_from_slice(&(*off as u64).to_le_bytes());
            sh[32..40].copy_from_slice(&(*size as u64).to_le_bytes());
            d.extend_from_slice(&sh);
        }
        d[0x28..0x30].copy_from_slice(&(sh_off as u64).to_le_bytes());
        d[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        d[0x3c..0x3e].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        d[0x3e..0x40].copy_from_slice(&((headers.len() - 1) as u16).to_le_bytes());
        d
    }

    /// A shared object (no interpreter) with these `DT_NEEDED` entries and `DT_RUNPATH`.
    pub(crate) fn shared_object(needed: &[&str], runpath: Option<&str>) -> Vec<u8> {
        let mut dynstr = vec![0u8];
        let mut dynamic = Vec::new();
        let entries = needed.iter().map(|n| (1u64, *n)).chain(runpath.map(|r| (29u64, r)));
        for (tag, value) in entries {
            dynamic.extend_from_slice(&tag.to_le_bytes());
            dynamic.extend_from_slice(&(dynstr.len() as u64).to_le_bytes());
            dynstr.extend_from_slice(value.as_bytes());
            dynstr.push(0);
        }
        dynamic.extend_from_slice(&[0u8; 16]);
        with_sections(&[(".dynstr", dynstr), (".dynamic", dynamic)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with a `.modinfo` section and a PT_NOTE segment holding a Xen note.
    fn sample() -> Vec<u8> {
        let modinfo = b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_blk\0";
        let shstr = b"\0.modinfo\0.shstrtab\0";
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
        note.extend_from_slice(b"Xen\0");
        note.extend_from_slice(&0x100_0000u32.to_le_bytes());
        let mut d = vec![0u8; 64];
        d[..4].copy_from_slice(b"\x7fELF");
        d[4] = 2;
        d[5] = 1;
        d[0x12..0x14].copy_from_slice(&EM_X86_64.to_le_bytes());
        let modinfo_off = d.len();
        d.extend_from_slice(modinfo);
        let shstr_off = d.len();
        d.extend_from_slice(shstr);
        let note_off = d.len();
        d.extend_from_slice(&note);
        while !d.len().is_multiple_of(8) {
            d.push(0);
        }
        let ph_off = d.len();
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&4u32.to_le_bytes());
        ph[8..16].copy_from_slice(&(note_off as u64).to_le_bytes());
        ph[32..40].copy_from_slice(&(note.len() as u64).to_le_bytes());
        d.extend_from_slice(&ph);
        let sh_off = d.len();
        let mut sh = vec![0u8; 64 * 3];
        let mut set = |i: usize, name: u32, off: usize, size: usize| {
            let b = i * 64;
            sh[b..b + 4].copy_from_slice(&name.to_le_bytes());
            sh[b + 24..b + 32].copy_from_slice(&(off as u64).to_le_bytes());
            sh[b + 32..b + 40].copy_from_slice(&(size as u64).to_le_bytes());
        };
        set(1, 1, modinfo_off, modinfo.len());
        set(2, 10, shstr_off, shstr.len());
        d.extend_from_slice(&sh);
        d[0x20..0x28].copy_from_slice(&(ph_off as u64).to_le_bytes());
        d[0x28..0x30].copy_from_slice(&(sh_off as u64).to_le_bytes());
        d[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        d[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        d[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        d[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        d[0x3e..0x40].copy_from_slice(&2u16.to_le_bytes());
        d
    }

    #[test]
    fn reads_modinfo_and_notes() {
        let d = sample();
        let info = modinfo(&d).unwrap();
        assert!(info.contains(&("depends".into(), "virtio,virtio_ring".into())));
        let elf = Elf::parse(&d).unwrap();
        assert_eq!(elf.machine, EM_X86_64);
        assert!(elf.has_pvh_entry());
    }

    #[test]
    fn a_file_without_dynamic_section_needs_nothing() {
        let d = sample();
        let elf = Elf::parse(&d).unwrap();
        assert!(elf.needed().is_empty());
        assert!(elf.runpath().is_empty());
        assert_eq!(elf.interpreter(), None);
    }

    /// The host's own `/bin/sh` is dynamically linked against libc on every Debian system.
    #[test]
    fn reads_needed_libraries_of_a_real_program() {
        let Ok(d) = std::fs::read("/bin/sh") else { return };
        let elf = Elf::parse(&d).unwrap();
        if elf.interpreter().is_none() {
            return; // a static shell: nothing to check
        }
        assert!(elf.needed().iter().any(|n| n.starts_with("libc.so")), "{:?}", elf.needed());
        assert!(elf.interpreter().unwrap().contains("ld-linux"));
    }

    #[test]
    fn reads_needed_libraries_and_run_path() {
        let d = testing::shared_object(&["libsudo_util.so.0", "libc.so.6"], Some("/usr/libexec/sudo:/opt/x"));
        let elf = Elf::parse(&d).unwrap();
        assert_eq!(elf.needed(), ["libsudo_util.so.0", "libc.so.6"]);
        assert_eq!(elf.runpath(), ["/usr/libexec/sudo", "/opt/x"]);
        assert_eq!(elf.interpreter(), None);
        let plain = testing::shared_object(&["libc.so.6"], None);
        assert!(Elf::parse(&plain).unwrap().runpath().is_empty());
    }

    #[test]
    fn rejects_non_elf() {
        assert!(Elf::parse(b"MZ not an elf file at all, definitely not, no no no no no no no no no").is_err());
        assert!(modinfo(&[0u8; 10]).is_err());
    }
}
