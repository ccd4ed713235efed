//! What the agent needs to know about its host: which accelerator really works, the TSC
//! frequency a TCG guest must be told, and the figures `host_info` reports.
//!
//! `/dev/kvm` existing proves nothing (see HOST-NOTES.md: the development machines have a
//! `/dev/kvm` from the `kvm_pvm` software hypervisor, on which stock guest kernels fail), so
//! the decision is a pure function of three observed facts, [`decide_accel`], and
//! [`detect_accel`] only gathers them. Parsers take text so tests can feed them any host.

use std::path::Path;

/// How guests execute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm` (`-accel kvm -cpu host`).
    Kvm,
    /// QEMU's binary translator (`-accel tcg -cpu max`): works everywhere, much slower.
    Tcg,
}

impl Accel {
    /// The name `host_info` reports and QEMU's `-accel` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The facts [`decide_accel`] weighs, gathered from the host by [`detect_accel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelFacts {
    /// `vmx` (Intel) or `svm` (AMD) among the CPU flags in `/proc/cpuinfo`.
    pub cpu_has_virt: bool,
    /// `/sys/module/kvm_pvm` exists: `/dev/kvm` is PVM, a software hypervisor.
    pub kvm_is_pvm: bool,
    /// `/dev/kvm` can be opened for writing.
    pub dev_kvm_writable: bool,
}

/// Real KVM only when the CPU has hardware virtualisation, `/dev/kvm` is not PVM, and we may
/// use `/dev/kvm`; otherwise TCG.
pub fn decide_accel(facts: &AccelFacts) -> Accel {
    if facts.cpu_has_virt && !facts.kvm_is_pvm && facts.dev_kvm_writable {
        Accel::Kvm
    } else {
        Accel::Tcg
    }
}

/// `vmx` or `svm` in any `flags` line of `/proc/cpuinfo` text.
pub fn cpuinfo_has_virt(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == "flags").map(|(_, v)| v))
        .any(|flags| flags.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// Looks at this host and picks the accelerator, logging a warning when it has to be TCG.
pub fn detect_accel() -> Accel {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let facts = AccelFacts {
        cpu_has_virt: cpuinfo_has_virt(&cpuinfo),
        kvm_is_pvm: Path::new("/sys/module/kvm_pvm").exists(),
        dev_kvm_writable: std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok(),
    };
    let accel = decide_accel(&facts);
    if accel == Accel::Tcg {
        tracing::warn!(
            cpu_has_virt = facts.cpu_has_virt,
            kvm_is_pvm = facts.kvm_is_pvm,
            dev_kvm_writable = facts.dev_kvm_writable,
            "no usable hardware KVM on this host: guests run under TCG (software emulation, much slower)"
        );
    }
    accel
}

/// The host's TSC frequency in kHz, from the first `cpu MHz` line (`2100.000` gives 2100000).
/// A TCG guest on `-M microvm` needs it as `tsc_early_khz=`, or about one boot in five hangs.
pub fn cpuinfo_tsc_khz(cpuinfo: &str) -> Option<u64> {
    let mhz: f64 =
        cpuinfo.lines().filter_map(|l| l.split_once(':')).find(|(k, _)| k.trim() == "cpu MHz").and_then(|(_, v)| v.trim().parse().ok())?;
    (mhz.is_finite() && mhz > 0.0).then(|| (mhz * 1000.0).round() as u64)
}

/// Logical CPUs: the `processor` lines of `/proc/cpuinfo` text.
pub fn cpuinfo_vcpus(cpuinfo: &str) -> u32 {
    cpuinfo.lines().filter(|l| l.split_once(':').is_some_and(|(k, _)| k.trim() == "processor")).count() as u32
}

/// `MemTotal` of `/proc/meminfo` text, in MiB.
pub fn meminfo_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.trim_start_matches("MemTotal:").split_whitespace().next()?.parse().ok()?;
    Some(kib / 1024)
}

pub(crate) fn read_cpuinfo() -> String {
    std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

pub(crate) fn total_memory_mib() -> Result<u64, std::io::Error> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    meminfo_total_mib(&text).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no MemTotal line in /proc/meminfo"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PVM_HOST: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu MHz\t\t: 2100.000\n\
        flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep hypervisor lahf_lm\n\n\
        processor\t: 1\ncpu MHz\t\t: 2100.000\nflags\t\t: fpu vme hypervisor\n";
    const VMX_HOST: &str = "processor\t: 0\ncpu MHz\t\t: 3400.123\nflags\t\t: fpu vme vmx ept\n";
    const SVM_HOST: &str = "processor\t: 0\nflags\t\t: fpu svm npt\n";

    fn facts(cpuinfo: &str, kvm_is_pvm: bool, dev_kvm_writable: bool) -> AccelFacts {
        AccelFacts { cpu_has_virt: cpuinfo_has_virt(cpuinfo), kvm_is_pvm, dev_kvm_writable }
    }

    #[test]
    fn kvm_only_with_hardware_virt_no_pvm_and_writable_dev_kvm() {
        assert_eq!(decide_accel(&facts(VMX_HOST, false, true)), Accel::Kvm);
        assert_eq!(decide_accel(&facts(SVM_HOST, false, true)), Accel::Kvm);
        // The development machines: /dev/kvm from kvm_pvm, no vmx/svm.
        assert_eq!(decide_accel(&facts(PVM_HOST, true, true)), Accel::Tcg);
        assert_eq!(decide_accel(&facts(PVM_HOST, false, true)), Accel::Tcg);
        assert_eq!(decide_accel(&facts(VMX_HOST, true, true)), Accel::Tcg);
        assert_eq!(decide_accel(&facts(VMX_HOST, false, false)), Accel::Tcg);
    }

    #[test]
    fn flags_are_matched_as_whole_words_on_flags_lines_only() {
        assert!(!cpuinfo_has_virt("flags\t: vmxnet svmx\n"));
        assert!(!cpuinfo_has_virt("model name\t: vmx svm\nflags\t: fpu\n"));
        assert!(cpuinfo_has_virt("flags : fpu vmx\n"));
    }

    #[test]
    fn tsc_khz_comes_from_the_first_cpu_mhz_line() {
        assert_eq!(cpuinfo_tsc_khz(PVM_HOST), Some(2_100_000));
        assert_eq!(cpuinfo_tsc_khz(VMX_HOST), Some(3_400_123));
        assert_eq!(cpuinfo_tsc_khz(SVM_HOST), None);
        assert_eq!(cpuinfo_tsc_khz("cpu MHz : garbage\n"), None);
    }

    #[test]
    fn host_figures_parse() {
        assert_eq!(cpuinfo_vcpus(PVM_HOST), 2);
        assert_eq!(meminfo_total_mib("MemTotal:       24589412 kB\nMemFree: 1 kB\n"), Some(24013));
        assert_eq!(meminfo_total_mib("MemFree: 1 kB\n"), None);
    }
}
