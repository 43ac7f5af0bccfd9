//! The one little-endian reader for untrusted bytes: a file's bytes, physical memory, kernel
//! virtual memory. Every read says `None` when a byte is absent (out of bounds, a page the image
//! does not hold) instead of panicking or reading as 0, so a short header is an error at its
//! parser, never a plausible number.
//!
//! Fixed headers are read field by field into typed structs once, where they are parsed; the
//! reads here carry no layout knowledge.

/// Reads at an address in some space of bytes. Only [`read_into`](Self::read_into) is required;
/// a space with a faster path for small fixed reads overrides the others.
pub trait ReadBytes {
    /// Copies `buf.len()` bytes at `at` into `buf`; false if any of them is absent.
    fn read_into(&self, at: u64, buf: &mut [u8]) -> bool;

    fn read_u8(&self, at: u64) -> Option<u8> {
        let mut b = [0u8; 1];
        self.read_into(at, &mut b).then_some(b[0])
    }
    fn read_u16(&self, at: u64) -> Option<u16> {
        let mut b = [0u8; 2];
        self.read_into(at, &mut b).then(|| u16::from_le_bytes(b))
    }
    fn read_u32(&self, at: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read_into(at, &mut b).then(|| u32::from_le_bytes(b))
    }
    fn read_u64(&self, at: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_into(at, &mut b).then(|| u64::from_le_bytes(b))
    }
    /// A `width`-byte word (8, else 4: a pointer of that size), zero-extended.
    fn read_word(&self, at: u64, width: u64) -> Option<u64> {
        if width == 8 {
            self.read_u64(at)
        } else {
            self.read_u32(at).map(u64::from)
        }
    }
}

/// `N` bytes of `bytes` at `at`, or `None` when they run past its end.
pub fn array_at<const N: usize>(bytes: &[u8], at: u64) -> Option<[u8; N]> {
    let start = usize::try_from(at).ok()?;
    bytes.get(start..)?.first_chunk::<N>().copied()
}

impl ReadBytes for [u8] {
    fn read_into(&self, at: u64, buf: &mut [u8]) -> bool {
        let Some(src) = usize::try_from(at)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
        else {
            return false;
        };
        buf.copy_from_slice(src);
        true
    }
    // Slices are read in the carve's hot loop: a fixed-size copy instead of the generic one.
    fn read_u8(&self, at: u64) -> Option<u8> {
        self.get(usize::try_from(at).ok()?).copied()
    }
    fn read_u16(&self, at: u64) -> Option<u16> {
        array_at(self, at).map(u16::from_le_bytes)
    }
    fn read_u32(&self, at: u64) -> Option<u32> {
        array_at(self, at).map(u32::from_le_bytes)
    }
    fn read_u64(&self, at: u64) -> Option<u64> {
        array_at(self, at).map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_little_endian_and_none_past_the_end() {
        let b: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(b.read_u8(8), Some(9));
        assert_eq!(b.read_u16(0), Some(0x0201));
        assert_eq!(b.read_u32(5), Some(0x0908_0706));
        assert_eq!(b.read_u64(1), Some(0x0908_0706_0504_0302));
        assert_eq!(b.read_word(0, 4), Some(0x0403_0201));
        assert_eq!(b.read_u8(9), None);
        assert_eq!(b.read_u32(6), None);
        assert_eq!(b.read_u64(2), None);
        assert_eq!(b.read_u64(u64::MAX), None);
        assert_eq!(array_at::<2>(b, 7), Some([8, 9]));
        assert_eq!(array_at::<2>(b, 8), None);
        let mut buf = [0u8; 3];
        assert!(!b.read_into(usize::MAX as u64, &mut buf));
        assert!(b.read_into(6, &mut buf) && buf == [7, 8, 9]);
    }
}
