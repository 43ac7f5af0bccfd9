//! Hand-built machines for the foundation tests: page tables on scattered frames (x64, PAE,
//! non-PAE) that a test can bend (any self-map slot, 1 GiB pages, loops, entries past the end of
//! memory), a KUSER_SHARED_DATA page, and a tiny PE kernel with a CodeView record, a version
//! resource and a KDBG block. Written byte by byte from the format descriptions; nothing here
//! calls netcarve's reader.
use netcarve::synth::builder::{le16, le32, le64};
use std::collections::BTreeSet;

pub const PAGE: u64 = 0x1000;
/// Legacy hole (no RAM) that full dumps, ELF and LiME leave out: 0xA0000..0x100000.
pub const HOLE: std::ops::Range<u64> = 0xA0000..0x100000;
pub const KUSER_X64: u64 = 0xFFFF_F780_0000_0000;
pub const KUSER_X86: u64 = 0xFFDF_0000;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    X64,
    Pae,
    NonPae,
}

/// Physical memory plus the kernel page tables being built in it.
pub struct Machine {
    pub mem: Vec<u8>,
    pub mode: Mode,
    /// CR3 value.
    pub dtb: u64,
    used: BTreeSet<u64>,
    cursor: u64,
}

impl Machine {
    /// `size` bytes of physical memory, empty page tables with the self-map Windows uses
    /// (x64 PML4 slot `self_slot`, PAE PD at VA 0xC0600000, non-PAE PD at VA 0xC0300000).
    pub fn new(mode: Mode, size: u64, self_slot: u64) -> Machine {
        let mut m = Machine {
            mem: vec![0; size as usize],
            mode,
            dtb: 0,
            used: BTreeSet::new(),
            cursor: 0x2000,
        };
        match mode {
            Mode::X64 => {
                let pml4 = m.alloc();
                m.set_entry(pml4, self_slot, pml4 | 0x63 | (1 << 63));
                m.dtb = pml4;
            }
            Mode::NonPae => {
                let pd = m.alloc();
                m.set_entry(pd, 0x300, pd | 0x63);
                m.dtb = pd;
            }
            Mode::Pae => {
                // The PDPT is 32 bytes in the middle of a page, as in an EPROCESS-adjacent block.
                let pdpt_page = m.alloc();
                let pdpt = pdpt_page + 0x60;
                let pds: Vec<u64> = (0..4).map(|_| m.alloc()).collect();
                for (i, pd) in pds.iter().enumerate() {
                    le64(&mut m.mem, (pdpt + i as u64 * 8) as usize, pd | 1);
                    // PD3 maps the four PDs at 0xC0000000..0xC0800000 (self-map).
                    m.set_entry(pds[3], i as u64, pd | 0x63);
                }
                m.dtb = pdpt;
            }
        }
        m
    }

    /// A free frame outside the hole, scattered through memory (steps of 37 frames).
    pub fn alloc(&mut self) -> u64 {
        let frames = self.mem.len() as u64 / PAGE;
        for _ in 0..frames {
            self.cursor = (self.cursor / PAGE + 37) % frames * PAGE;
            let pa = self.cursor;
            if pa >= 0x2000 && !HOLE.contains(&pa) && !self.used.contains(&pa) {
                self.used.insert(pa);
                return pa;
            }
        }
        panic!("test machine out of frames");
    }

    /// Marks `len` bytes at `pa` as used (for large pages placed by hand).
    pub fn reserve(&mut self, pa: u64, len: u64) {
        for p in (pa..pa + len).step_by(PAGE as usize) {
            self.used.insert(p);
        }
    }

    fn esize(&self) -> u64 {
        if self.mode == Mode::NonPae {
            4
        } else {
            8
        }
    }

    pub fn entry(&self, table: u64, index: u64) -> u64 {
        let at = (table + index * self.esize()) as usize;
        if self.esize() == 4 {
            u32::from_le_bytes(self.mem[at..at + 4].try_into().unwrap()) as u64
        } else {
            u64::from_le_bytes(self.mem[at..at + 8].try_into().unwrap())
        }
    }

    pub fn set_entry(&mut self, table: u64, index: u64, value: u64) {
        let at = (table + index * self.esize()) as usize;
        if self.esize() == 4 {
            le32(&mut self.mem, at, value as u32);
        } else {
            le64(&mut self.mem, at, value);
        }
    }

    fn child(&mut self, table: u64, index: u64) -> u64 {
        let e = self.entry(table, index);
        if e & 1 != 0 {
            return e & 0x000F_FFFF_FFFF_F000;
        }
        let t = self.alloc();
        self.set_entry(table, index, t | 0x63);
        t
    }

    /// (table, index) of the entry that maps `va` at `level` (0 = last level, 1 = PD, 2 = PDPT).
    pub fn slot(&mut self, va: u64, level: u32) -> (u64, u64) {
        match self.mode {
            Mode::X64 => {
                let mut table = self.dtb;
                for shift in [39u32, 30, 21, 12] {
                    let index = (va >> shift) & 0x1FF;
                    if shift == 12 + 9 * level {
                        return (table, index);
                    }
                    table = self.child(table, index);
                }
                unreachable!()
            }
            Mode::Pae => {
                let pd = u64::from_le_bytes(
                    self.mem[(self.dtb + ((va >> 30) & 3) * 8) as usize..][..8]
                        .try_into()
                        .unwrap(),
                ) & !0xFFF;
                if level == 1 {
                    return (pd, (va >> 21) & 0x1FF);
                }
                let pt = self.child(pd, (va >> 21) & 0x1FF);
                (pt, (va >> 12) & 0x1FF)
            }
            Mode::NonPae => {
                if level == 1 {
                    return (self.dtb, va >> 22);
                }
                let pt = self.child(self.dtb, va >> 22);
                (pt, (va >> 12) & 0x3FF)
            }
        }
    }

    /// Maps one 4 KiB page.
    pub fn map(&mut self, va: u64, pa: u64) {
        let (t, i) = self.slot(va, 0);
        self.set_entry(t, i, pa | 0x63);
    }

    /// Maps a large page: 2 MiB (x64/PAE), 4 MiB (non-PAE), or 1 GiB with `gib` on x64.
    pub fn map_large(&mut self, va: u64, pa: u64, gib: bool) {
        let level = if gib { 2 } else { 1 };
        let (t, i) = self.slot(va, level);
        self.set_entry(t, i, pa | 0xE3);
    }

    /// Maps `len` bytes at `va` onto fresh scattered frames and returns them.
    pub fn map_fresh(&mut self, va: u64, len: u64) -> Vec<u64> {
        (0..len.div_ceil(PAGE))
            .map(|i| {
                let pa = self.alloc();
                self.map(va + i * PAGE, pa);
                pa
            })
            .collect()
    }

    /// Test-side translation (4 KiB mappings made by `map`/`map_fresh`, and large pages).
    pub fn pa_of(&mut self, va: u64) -> u64 {
        let (pd, pdi) = self.slot(va, 1);
        let pde = self.entry(pd, pdi);
        if pde & 0x80 != 0 {
            let size = if self.mode == Mode::NonPae {
                1u64 << 22
            } else {
                1 << 21
            };
            return (pde & !0xFFF & !(size - 1) & 0x000F_FFFF_FFFF_FFFF) | (va & (size - 1));
        }
        let (t, i) = self.slot(va, 0);
        (self.entry(t, i) & 0x000F_FFFF_FFFF_F000) | (va & 0xFFF)
    }

    pub fn write_virt(&mut self, va: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let pa = self.pa_of(va + i as u64) as usize;
            self.mem[pa] = *b;
        }
    }

    pub fn is_x64(&self) -> bool {
        self.mode == Mode::X64
    }
}

/// What the Windows-like test image holds, for assertions.
#[derive(Clone, Debug)]
pub struct Truth {
    pub dtb: u64,
    pub kernel_base: u64,
    pub guid: String,
    pub age: u32,
    pub pdb_name: &'static str,
    pub major: u32,
    pub minor: u32,
    pub build: u32,
    pub system_time: u64,
    pub interrupt_time: u64,
    pub bias_minutes: i64,
    pub kdbg_va: u64,
}

pub const GUID_BYTES: [u8; 16] = [
    0x78, 0x56, 0x34, 0x12, 0xBC, 0x9A, 0xF0, 0xDE, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
];

/// A Windows-like machine: KUSER_SHARED_DATA, a kernel PE at a 2 MiB-aligned base (x64) or
/// 4 MiB-aligned (x86) with a CodeView record, a version resource and a KDBG block.
pub fn windows(mode: Mode, size: u64, major: u32, minor: u32, build: u32) -> (Machine, Truth) {
    let mut m = Machine::new(mode, size, 0x1ED);
    let x64 = m.is_x64();
    let kuser = if x64 { KUSER_X64 } else { KUSER_X86 };
    m.map_fresh(kuser, PAGE);
    let system_time: u64 = 133_590_404_967_890_123;
    let interrupt_time: u64 = 36_000_000_000 * 5 + 1234567; // about 5 hours
    let bias_minutes: i64 = -120;
    let mut ks = vec![0u8; PAGE as usize];
    let kst = |b: &mut [u8], at: usize, v: u64| {
        le32(b, at, v as u32);
        le32(b, at + 4, (v >> 32) as u32);
        le32(b, at + 8, (v >> 32) as u32);
    };
    kst(&mut ks, 0x8, interrupt_time);
    kst(&mut ks, 0x14, system_time);
    kst(&mut ks, 0x20, (bias_minutes * 600_000_000) as u64);
    if major >= 10 {
        le32(&mut ks, 0x260, 0xF000_0000 | build);
    }
    le32(&mut ks, 0x26C, major);
    le32(&mut ks, 0x270, minor);
    m.write_virt(kuser, &ks);

    let (base, pdb_name) = if x64 {
        (0xFFFF_F800_1220_0000u64, "ntkrnlmp.pdb")
    } else {
        (0x8280_0000u64, "ntkrpamp.pdb")
    };
    let image = tiny_kernel_pe(x64, pdb_name, &GUID_BYTES, 3, (major, minor, build, 1234));
    m.map_fresh(base, image.len() as u64);
    m.write_virt(base, &image);
    // Some MZ decoys before the kernel: a driver with no CodeView record.
    let decoy = 0xFFFF_F800_1200_0000u64;
    if x64 {
        m.map_fresh(decoy, PAGE);
        m.write_virt(decoy, b"MZ");
    }
    // KDBG block in a data page of the kernel.
    let kdbg_va = base + 0x3000;
    let mut kdbg = vec![0u8; 0x40];
    kdbg[0x10..0x14].copy_from_slice(b"KDBG");
    if x64 {
        le64(&mut kdbg, 0x18, base);
    } else {
        le32(&mut kdbg, 0x18, base as u32);
    }
    m.write_virt(kdbg_va, &kdbg);
    let truth = Truth {
        dtb: m.dtb,
        kernel_base: base,
        guid: "12345678 9ABC DEF0 0123456789ABCDEF".replace(' ', ""),
        age: 3,
        pdb_name,
        major,
        minor,
        build,
        system_time,
        interrupt_time,
        bias_minutes,
        kdbg_va,
    };
    (m, truth)
}

/// A tiny mapped PE image (RVA = offset): headers, a debug directory with an RSDS record, a
/// version resource with VS_FIXEDFILEINFO, and room for a KDBG block at 0x3000.
pub fn tiny_kernel_pe(
    x64: bool,
    pdb: &str,
    guid: &[u8; 16],
    age: u32,
    version: (u32, u32, u32, u32),
) -> Vec<u8> {
    let size = 0x4000usize;
    let mut b = vec![0u8; size];
    b[0..2].copy_from_slice(b"MZ");
    let pe = 0x80usize;
    le32(&mut b, 0x3C, pe as u32);
    b[pe..pe + 4].copy_from_slice(b"PE\0\0");
    let coff = pe + 4;
    le16(&mut b, coff, if x64 { 0x8664 } else { 0x14C });
    le16(&mut b, coff + 2, 1); // sections
    let opt_size: u16 = if x64 { 0xF0 } else { 0xE0 };
    le16(&mut b, coff + 16, opt_size);
    le16(&mut b, coff + 18, 0x22);
    let opt = coff + 20;
    le16(&mut b, opt, if x64 { 0x20B } else { 0x10B });
    // Windows-specific fields: section/file alignment, SizeOfImage, SizeOfHeaders, NumberOfRvaAndSizes.
    let (align_at, image_at, headers_at, nrva_at, dd_at) = if x64 {
        (opt + 32, opt + 56, opt + 60, opt + 108, opt + 112)
    } else {
        (opt + 32, opt + 56, opt + 60, opt + 92, opt + 96)
    };
    le32(&mut b, align_at, 0x1000);
    le32(&mut b, align_at + 4, 0x200);
    le32(&mut b, image_at, size as u32);
    le32(&mut b, headers_at, 0x400);
    le32(&mut b, nrva_at, 16);
    // Data directory 6: debug, at RVA 0x1000, one 28-byte entry.
    le32(&mut b, dd_at + 6 * 8, 0x1000);
    le32(&mut b, dd_at + 6 * 8 + 4, 28);
    let sect = opt + opt_size as usize;
    b[sect..sect + 5].copy_from_slice(b".text");
    le32(&mut b, sect + 8, 0x3000);
    le32(&mut b, sect + 12, 0x1000);
    le32(&mut b, sect + 16, 0x3000);
    le32(&mut b, sect + 20, 0x1000);
    // IMAGE_DEBUG_DIRECTORY {Characteristics, TimeDateStamp, Major, Minor, Type, SizeOfData, AddressOfRawData, PointerToRawData}
    let rsds = 0x1100usize;
    let name_len = pdb.len() + 1;
    le32(&mut b, 0x1000 + 12, 2);
    le32(&mut b, 0x1000 + 16, (24 + name_len) as u32);
    le32(&mut b, 0x1000 + 20, rsds as u32);
    le32(&mut b, 0x1000 + 24, rsds as u32);
    b[rsds..rsds + 4].copy_from_slice(b"RSDS");
    b[rsds + 4..rsds + 20].copy_from_slice(guid);
    le32(&mut b, rsds + 20, age);
    b[rsds + 24..rsds + 24 + pdb.len()].copy_from_slice(pdb.as_bytes());
    // Version resource: "VS_VERSION_INFO" key then VS_FIXEDFILEINFO.
    let vs = 0x2000usize;
    let key: Vec<u8> = "VS_VERSION_INFO\0"
        .encode_utf16()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    b[vs + 6..vs + 6 + key.len()].copy_from_slice(&key);
    let ffi = vs + 0x28;
    le32(&mut b, ffi, 0xFEEF_04BD);
    le32(&mut b, ffi + 4, 0x0001_0000);
    le32(&mut b, ffi + 8, (version.0 << 16) | version.1);
    le32(&mut b, ffi + 12, (version.2 << 16) | version.3);
    le32(&mut b, ffi + 16, (version.0 << 16) | version.1);
    le32(&mut b, ffi + 20, (version.2 << 16) | version.3);
    b
}

/// A version resource naming `tcpip.sys` with the given FileVersion, as found in tcpip.sys.
pub fn tcpip_version_resource(version: (u32, u32, u32, u32)) -> Vec<u8> {
    let mut b = vec![0u8; 0x200];
    let ffi = 0x28;
    le32(&mut b, ffi, 0xFEEF_04BD);
    le32(&mut b, ffi + 8, (version.0 << 16) | version.1);
    le32(&mut b, ffi + 12, (version.2 << 16) | version.3);
    let s: Vec<u8> = "OriginalFilename\0tcpip.sys\0"
        .encode_utf16()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    b[0x100..0x100 + s.len()].copy_from_slice(&s);
    b
}
