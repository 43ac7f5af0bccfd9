//! The processor architecture of an image: what the container, paging and kernel readers and the
//! profiles all need to agree on, and nothing Windows-specific (that lives in `profile`).
use serde::{Deserialize, Serialize};

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86,
    X64,
}

impl Arch {
    pub fn pointer_size(self) -> u64 {
        match self {
            Arch::X86 => 4,
            Arch::X64 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86 => "x86",
            Arch::X64 => "x64",
        }
    }
}
