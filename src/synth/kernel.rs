//! The synthetic kernel: a PE image (MZ/PE headers, CodeView RSDS, version resource) with the data
//! the readers look for (KdVersionBlock, KDBG, PsActiveProcessHead), KUSER_SHARED_DATA, a tcpip.sys
//! image where the profile depends on its version, and the Volatility 3 symbol file (ISF).
use crate::profile::{Arch, Profile};

/// RVAs inside the synthetic kernel image.
pub const RVA_TEXT: u64 = 0x1000;
const RVA_RDATA: u64 = 0x2000;
const RVA_DATA: u64 = 0x3000;
pub const IMAGE_SIZE: u64 = 0x5000;
pub const RVA_KD_VERSION_BLOCK: u64 = RVA_DATA;
pub const RVA_PS_ACTIVE_PROCESS_HEAD: u64 = RVA_DATA + 0x40;
pub const RVA_PS_LOADED_MODULE_LIST: u64 = RVA_DATA + 0x60;
pub const RVA_OB_HEADER_COOKIE: u64 = RVA_DATA + 0x80;
pub const RVA_KDBG: u64 = RVA_DATA + 0xC0;
pub const RVA_OB_TYPE_INDEX_TABLE: u64 = RVA_DATA + 0x800;
const DEBUG_DIR_OFF: u64 = 0x100; // inside .rdata
const EXPORT_DIR_OFF: u64 = 0x800; // inside .rdata
pub const RVA_NT_BUILD_NUMBER: u64 = RVA_DATA + 0x30;
pub const RVA_NT_BUILD_LAB: u64 = RVA_DATA + 0x400;

pub fn le16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn le32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn le64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The 16 GUID bytes as stored in an RSDS record and the 32-digit upper-case text form.
pub fn guid_text(g: &[u8; 16]) -> String {
    let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
    let d2 = u16::from_le_bytes([g[4], g[5]]);
    let d3 = u16::from_le_bytes([g[6], g[7]]);
    let mut s = format!("{d1:08X}{d2:04X}{d3:04X}");
    for b in &g[8..] {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

pub struct PeSpec<'a> {
    pub arch: Arch,
    pub image_base: u64,
    pub pdb_name: Option<&'a str>,
    pub guid: [u8; 16],
    pub age: u32,
    pub file_version: [u16; 4],
    /// `false`: the version resource's bytes are zero, as when its page was paged out.
    pub version_resource: bool,
    pub original_filename: &'a str,
    pub timestamp: u32,
    /// VirtualSize of `.data` (a multiple of 0x1000; the kernel's is one page). `.rsrc` follows
    /// it, so a driver whose globals lie far into the image gets a `SizeOfImage` covering them.
    pub data_size: u64,
    /// Exported names and their RVAs (an export directory in `.rdata`, names sorted as the
    /// loader's binary search needs).
    pub exports: &'a [(&'a str, u64)],
}

/// Builds the whole image (`SizeOfImage` bytes: IMAGE_SIZE for a one-page `.data`; section
/// alignment = file alignment = 0x1000, so RVAs equal file offsets and the in-memory image is the
/// file).
pub fn build_pe(spec: &PeSpec, text_noise: &[u8]) -> Vec<u8> {
    let data_size = spec.data_size.max(0x1000).div_ceil(0x1000) * 0x1000;
    let rva_rsrc = RVA_DATA + data_size;
    let size_of_image = rva_rsrc + 0x1000;
    let mut img = vec![0u8; size_of_image as usize];
    let pe32plus = spec.arch == Arch::X64;
    // DOS header and stub.
    img[0..2].copy_from_slice(b"MZ");
    le16(&mut img, 2, 0x90);
    le16(&mut img, 4, 3);
    le16(&mut img, 8, 4);
    le16(&mut img, 0x18, 0x40);
    let lfanew = 0x100usize;
    le32(&mut img, 0x3C, lfanew as u32);
    let stub = b"This program cannot be run in DOS mode.\r\r\n$";
    img[0x4E..0x4E + stub.len()].copy_from_slice(stub);
    img[lfanew..lfanew + 4].copy_from_slice(b"PE\0\0");
    let coff = lfanew + 4;
    le16(&mut img, coff, if pe32plus { 0x8664 } else { 0x14C });
    let sections: [(&[u8; 8], u64, u64, u32); 4] = [
        (b".text\0\0\0", RVA_TEXT, 0x1000, 0x6000_0020),
        (b".rdata\0\0", RVA_RDATA, 0x1000, 0x4000_0040),
        (b".data\0\0\0", RVA_DATA, data_size, 0xC800_0040), // non-paged, writable
        (b".rsrc\0\0\0", rva_rsrc, 0x1000, 0x4000_0040),
    ];
    le16(&mut img, coff + 2, sections.len() as u16);
    le32(&mut img, coff + 4, spec.timestamp);
    let opt_size: usize = if pe32plus { 0xF0 } else { 0xE0 };
    le16(&mut img, coff + 16, opt_size as u16);
    le16(&mut img, coff + 18, if pe32plus { 0x22 } else { 0x122 });
    let opt = coff + 20;
    le16(&mut img, opt, if pe32plus { 0x20B } else { 0x10B });
    img[opt + 2] = 14; // linker version
    le32(&mut img, opt + 4, 0x1000); // SizeOfCode
    le32(&mut img, opt + 8, (0x2000 + data_size) as u32); // SizeOfInitializedData
    le32(&mut img, opt + 16, RVA_TEXT as u32 + 0x10); // AddressOfEntryPoint
    le32(&mut img, opt + 20, RVA_TEXT as u32); // BaseOfCode
    let mut o = if pe32plus {
        le64(&mut img, opt + 24, spec.image_base);
        opt + 32
    } else {
        le32(&mut img, opt + 24, RVA_RDATA as u32); // BaseOfData
        le32(&mut img, opt + 28, spec.image_base as u32);
        opt + 32
    };
    le32(&mut img, o, 0x1000); // SectionAlignment
    le32(&mut img, o + 4, 0x1000); // FileAlignment
    le16(&mut img, o + 8, spec.file_version[0]); // OS version
    le16(&mut img, o + 10, spec.file_version[1]);
    le16(&mut img, o + 12, spec.file_version[0]); // image version
    le16(&mut img, o + 14, spec.file_version[1]);
    le16(&mut img, o + 16, spec.file_version[0]); // subsystem version
    le16(&mut img, o + 18, spec.file_version[1]);
    le32(&mut img, o + 24, size_of_image as u32); // SizeOfImage
    le32(&mut img, o + 28, 0x1000); // SizeOfHeaders
    le16(&mut img, o + 36, 1); // Subsystem: native
    le16(&mut img, o + 38, 0x160); // DllCharacteristics
    o += 40;
    if pe32plus {
        le64(&mut img, o, 0x80000);
        le64(&mut img, o + 8, 0x1000);
        le64(&mut img, o + 16, 0x100000);
        le64(&mut img, o + 24, 0x1000);
        o += 32;
    } else {
        le32(&mut img, o, 0x80000);
        le32(&mut img, o + 4, 0x1000);
        le32(&mut img, o + 8, 0x100000);
        le32(&mut img, o + 12, 0x1000);
        o += 16;
    }
    le32(&mut img, o + 4, 16); // NumberOfRvaAndSizes
    let dirs = o + 8;
    let mut version = version_info(spec.file_version, spec.original_filename);
    if !spec.version_resource {
        version.fill(0);
    }
    let rsrc = resource_section(&version, rva_rsrc);
    // [2] resource, [6] debug
    le32(&mut img, dirs + 2 * 8, rva_rsrc as u32);
    le32(&mut img, dirs + 2 * 8 + 4, rsrc.len() as u32);
    let sect = opt + opt_size;
    for (i, (name, rva, size, chars)) in sections.iter().enumerate() {
        let s = sect + i * 40;
        img[s..s + 8].copy_from_slice(*name);
        le32(&mut img, s + 8, *size as u32); // VirtualSize
        le32(&mut img, s + 12, *rva as u32);
        le32(&mut img, s + 16, *size as u32); // SizeOfRawData
        le32(&mut img, s + 20, *rva as u32); // PointerToRawData
        le32(&mut img, s + 36, *chars);
    }
    let n = text_noise.len().min(0x1000);
    img[RVA_TEXT as usize..RVA_TEXT as usize + n].copy_from_slice(&text_noise[..n]);
    if let Some(pdb) = spec.pdb_name {
        let dd = (RVA_RDATA + DEBUG_DIR_OFF) as usize;
        let cv_rva = RVA_RDATA as usize + 0x200;
        let mut cv = b"RSDS".to_vec();
        cv.extend_from_slice(&spec.guid);
        cv.extend_from_slice(&spec.age.to_le_bytes());
        cv.extend_from_slice(pdb.as_bytes());
        cv.push(0);
        img[cv_rva..cv_rva + cv.len()].copy_from_slice(&cv);
        le32(&mut img, dd + 4, spec.timestamp);
        le32(&mut img, dd + 12, 2); // IMAGE_DEBUG_TYPE_CODEVIEW
        le32(&mut img, dd + 16, cv.len() as u32);
        le32(&mut img, dd + 20, cv_rva as u32);
        le32(&mut img, dd + 24, cv_rva as u32);
        le32(&mut img, dirs + 6 * 8, dd as u32);
        le32(&mut img, dirs + 6 * 8 + 4, 28);
    }
    if !spec.exports.is_empty() {
        let dir = export_directory(spec.exports, RVA_RDATA + EXPORT_DIR_OFF);
        let at = (RVA_RDATA + EXPORT_DIR_OFF) as usize;
        img[at..at + dir.len()].copy_from_slice(&dir);
        le32(&mut img, dirs, at as u32);
        le32(&mut img, dirs + 4, dir.len() as u32);
    }
    img[rva_rsrc as usize..rva_rsrc as usize + rsrc.len()].copy_from_slice(&rsrc);
    img
}

/// IMAGE_EXPORT_DIRECTORY at `rva` with its function, name and ordinal arrays and the names.
fn export_directory(exports: &[(&str, u64)], rva: u64) -> Vec<u8> {
    let mut sorted = exports.to_vec();
    sorted.sort_unstable_by_key(|&(name, _)| name);
    let n = sorted.len();
    let functions = 0x28;
    let names = functions + 4 * n;
    let ordinals = names + 4 * n;
    let strings = ordinals + 2 * n;
    let mut b = vec![0u8; strings];
    le32(&mut b, 0x10, 1); // Base
    le32(&mut b, 0x14, n as u32);
    le32(&mut b, 0x18, n as u32);
    le32(&mut b, 0x1C, (rva + functions as u64) as u32);
    le32(&mut b, 0x20, (rva + names as u64) as u32);
    le32(&mut b, 0x24, (rva + ordinals as u64) as u32);
    for (i, (name, target)) in sorted.iter().enumerate() {
        le32(&mut b, functions + 4 * i, *target as u32);
        let name_rva = (rva + b.len() as u64) as u32;
        le32(&mut b, names + 4 * i, name_rva);
        le16(&mut b, ordinals + 2 * i, i as u16);
        b.extend_from_slice(name.as_bytes());
        b.push(0);
    }
    b
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

fn pad4(v: &mut Vec<u8>) {
    while v.len() & 3 != 0 {
        v.push(0);
    }
}

/// One VS_VERSIONINFO-style node: wLength, wValueLength, wType, key, value, children.
fn vnode(key: &str, value: &[u8], value_len: u16, text: bool, children: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![0u8; 6];
    le16(&mut v, 2, value_len);
    le16(&mut v, 4, u16::from(text));
    v.extend(utf16z(key));
    pad4(&mut v);
    v.extend_from_slice(value);
    for c in children {
        pad4(&mut v);
        v.extend_from_slice(c);
    }
    let len = v.len() as u16;
    le16(&mut v, 0, len);
    v
}

/// VS_VERSIONINFO with VS_FIXEDFILEINFO and a StringFileInfo naming the file and its version.
fn version_info(ver: [u16; 4], original_filename: &str) -> Vec<u8> {
    let mut fixed = vec![0u8; 52];
    le32(&mut fixed, 0, 0xFEEF_04BD);
    le32(&mut fixed, 4, 0x0001_0000);
    let ms = (u32::from(ver[0]) << 16) | u32::from(ver[1]);
    let ls = (u32::from(ver[2]) << 16) | u32::from(ver[3]);
    le32(&mut fixed, 8, ms);
    le32(&mut fixed, 12, ls);
    le32(&mut fixed, 16, ms);
    le32(&mut fixed, 20, ls);
    le32(&mut fixed, 24, 0x3F);
    le32(&mut fixed, 32, 0x0004_0004); // VOS_NT_WINDOWS32
    le32(&mut fixed, 36, 3); // VFT_DRV
    le32(&mut fixed, 40, 7); // VFT2_DRV_SYSTEM
    let dotted = format!("{}.{}.{}.{}", ver[0], ver[1], ver[2], ver[3]);
    let string = |k: &str, val: &str| {
        let data = utf16z(val);
        vnode(k, &data, (data.len() / 2) as u16, true, &[])
    };
    let table = vnode(
        "040904B0",
        &[],
        0,
        true,
        &[
            string("CompanyName", "Microsoft Corporation"),
            string("FileVersion", &format!("{dotted} (WinBuild.160101.0800)")),
            string("OriginalFilename", original_filename),
            string("ProductVersion", &dotted),
        ],
    );
    let sfi = vnode("StringFileInfo", &[], 0, true, &[table]);
    vnode("VS_VERSION_INFO", &fixed, 52, false, &[sfi])
}

/// A resource section holding one RT_VERSION resource (type 16, id 1, language 0x409).
fn resource_section(version: &[u8], rva_rsrc: u64) -> Vec<u8> {
    let mut r = vec![0u8; 0x80];
    let dir = |r: &mut Vec<u8>, at: usize, id: u32, target: u32, subdir: bool| {
        le16(r, at + 14, 1); // NumberOfIdEntries
        le32(r, at + 16, id);
        le32(r, at + 20, target | if subdir { 0x8000_0000 } else { 0 });
    };
    dir(&mut r, 0x00, 16, 0x18, true);
    dir(&mut r, 0x18, 1, 0x30, true);
    dir(&mut r, 0x30, 0x409, 0x48, false);
    le32(&mut r, 0x48, (rva_rsrc + 0x80) as u32);
    le32(&mut r, 0x4C, version.len() as u32);
    le32(&mut r, 0x50, 1252);
    r.extend_from_slice(version);
    r
}

/// `_KSYSTEM_TIME` bytes: LowPart, High1Time, High2Time (equal when consistent).
fn ksystem_time(v: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    le32(&mut b, 0, v as u32);
    le32(&mut b, 4, (v >> 32) as u32);
    le32(&mut b, 8, (v >> 32) as u32);
    b
}

/// KUSER_SHARED_DATA page content.
pub fn kuser_page(
    p: &Profile,
    interrupt: u64,
    system: u64,
    bias_100ns: i64,
    build: u32,
) -> Vec<u8> {
    let mut page = vec![0u8; 0x1000];
    let k = &p.nt.kuser_shared_data;
    let put = |page: &mut Vec<u8>, f: &crate::profile::Field, bytes: &[u8]| {
        if let Some(o) = f.off() {
            let o = o as usize;
            if o + bytes.len() <= page.len() {
                page[o..o + bytes.len()].copy_from_slice(bytes);
            }
        }
    };
    put(&mut page, &k.interrupt_time, &ksystem_time(interrupt));
    put(&mut page, &k.system_time, &ksystem_time(system));
    put(
        &mut page,
        &k.time_zone_bias,
        &ksystem_time(bias_100ns as u64),
    );
    put(&mut page, &k.nt_build_number, &build.to_le_bytes());
    put(&mut page, &k.nt_product_type, &1u32.to_le_bytes());
    put(
        &mut page,
        &k.nt_major_version,
        &p.matches.nt_major.to_le_bytes(),
    );
    put(
        &mut page,
        &k.nt_minor_version,
        &p.matches.nt_minor.to_le_bytes(),
    );
    // TickCountMultiplier and ImageNumberLow/High, as a real page has them.
    le32(&mut page, 0x4, 0x0FA0_0000);
    let machine: u16 = if p.arch == Arch::X64 { 0x8664 } else { 0x14C };
    le16(&mut page, 0x2C, machine);
    le16(&mut page, 0x2E, machine);
    page
}

/// `_DBGKD_GET_VERSION64` bytes.
pub fn kd_version_block(arch: Arch, build: u32, kernel_base: u64, module_list: u64) -> Vec<u8> {
    let mut b = vec![0u8; 0x28];
    le16(&mut b, 0, 0xF);
    le16(&mut b, 2, build as u16);
    b[4] = 6;
    le16(&mut b, 6, if arch == Arch::X64 { 0x5 } else { 0x1 });
    le16(&mut b, 8, if arch == Arch::X64 { 0x8664 } else { 0x14C });
    b[10] = 0xC;
    b[11] = 3;
    b[12] = 0x31;
    le64(&mut b, 0x10, sign_extend(arch, kernel_base));
    le64(&mut b, 0x18, sign_extend(arch, module_list));
    b
}

/// `_KDDEBUGGER_DATA64` (KDBG) prefix: OwnerTag, Size, KernBase, module and process lists, and
/// the NtBuildLab string's address where the kernel has one in plaintext.
pub fn kdbg(
    arch: Arch,
    kernel_base: u64,
    module_list: u64,
    process_head: u64,
    build_lab: Option<u64>,
) -> Vec<u8> {
    let mut b = vec![0u8; 0x340];
    b[0x10..0x14].copy_from_slice(b"KDBG");
    le32(&mut b, 0x14, 0x340);
    le64(&mut b, 0x18, sign_extend(arch, kernel_base));
    le64(&mut b, 0x48, sign_extend(arch, module_list));
    le64(&mut b, 0x50, sign_extend(arch, process_head));
    if let Some(lab) = build_lab {
        le64(&mut b, 0x208, sign_extend(arch, lab));
    }
    b
}

/// x86 pointers in 64-bit debugger structures are sign-extended.
fn sign_extend(arch: Arch, v: u64) -> u64 {
    if arch == Arch::X86 {
        v as u32 as i32 as i64 as u64
    } else {
        v
    }
}

/// A dotted four-part version (`6.3.9600.19935`).
pub(super) fn parse_dotted(v: &str) -> Option<[u16; 4]> {
    let parts: Vec<u16> = v
        .split('.')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (parts.len() == 4).then(|| [parts[0], parts[1], parts[2], parts[3]])
}
