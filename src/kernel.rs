//! Kernel identification: DTB discovery, the kernel image and its CodeView id, NT version and build,
//! KUSER_SHARED_DATA facts (acquisition time, boot time, time-zone bias).
use crate::container::PhysicalSpace;
use crate::error::{Error, Result};
use crate::paging::PagingMode;
use crate::profile::Arch;
use crate::record::{NtVersion, PdbId};

/// What `identify` learned about the kernel in an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    pub arch: Arch,
    pub mode: PagingMode,
    pub dtb: u64,
    /// `crashdump-header`, `low-stub`, `self-map-scan`, `user`.
    pub dtb_source: String,
    pub kernel_base: Option<u64>,
    pub pdb: Option<PdbId>,
    pub nt: NtVersion,
    /// KUSER_SHARED_DATA SystemTime: the acquisition time (FILETIME).
    pub system_time: Option<u64>,
    /// KUSER_SHARED_DATA InterruptTime: 100 ns since boot.
    pub interrupt_time: Option<u64>,
    /// UTC = local + bias; in minutes.
    pub timezone_bias_minutes: Option<i64>,
    /// tcpip.sys FileVersion (dotted), when it was looked for and found.
    pub tcpip_version: Option<String>,
    pub warnings: Vec<String>,
}

impl KernelInfo {
    /// Boot time = acquisition time − interrupt time.
    pub fn boot_time(&self) -> Option<u64> {
        Some(self.system_time?.saturating_sub(self.interrupt_time?))
    }
}

/// Identifies the kernel of an image. `dtb_override` is `--dtb`.
pub fn identify(_phys: &PhysicalSpace, _dtb_override: Option<u64>) -> Result<KernelInfo> {
    Err(Error::usage("kernel identification is being written"))
}

/// The image facts `info`, `scan` and `compare` report.
pub fn image_facts(phys: &PhysicalSpace, k: &KernelInfo) -> crate::record::ImageFacts {
    use crate::filetime::to_iso;
    let boot = k.boot_time();
    let mut warnings = phys.warnings.clone();
    warnings.extend(k.warnings.iter().cloned());
    crate::record::ImageFacts {
        file: Some(phys.path.display().to_string()),
        container: phys.kind.to_string(),
        arch: k.arch.name().to_string(),
        paging: k.mode.name().to_string(),
        dtb: crate::record::Hex(k.dtb),
        dtb_source: k.dtb_source.clone(),
        kernel_base: k.kernel_base.map(crate::record::Hex),
        kernel_pdb: k.pdb.clone(),
        nt: k.nt.clone(),
        system_time: k.system_time.and_then(to_iso),
        system_time_raw: k.system_time,
        boot_time: boot.and_then(to_iso),
        boot_time_raw: boot,
        timezone_bias_minutes: k.timezone_bias_minutes,
        physical: crate::record::PhysicalSummary {
            size: phys.present_size(),
            ranges: phys.runs().len() as u64,
            end: phys.end(),
        },
        sha256: None,
        warnings,
    }
}
