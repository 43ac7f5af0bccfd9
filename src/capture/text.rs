//! Capture bytes to text: UTF-8 (with or without a BOM) and UTF-16 (LE/BE, with or without a BOM).

/// Decodes UTF-8 (BOM optional), UTF-16LE/BE with a BOM, and UTF-16LE without one (PowerShell 5.1's
/// `>` redirection writes UTF-16LE; some copies lose the BOM).
pub fn decode_text(bytes: &[u8]) -> std::result::Result<String, String> {
    let utf16 = |body: &[u8], big_endian: bool| -> String {
        let units = body.chunks_exact(2).map(|c| match (c, big_endian) {
            ([a, b], false) => u16::from_le_bytes([*a, *b]),
            ([a, b], true) => u16::from_be_bytes([*a, *b]),
            _ => 0xFFFD,
        });
        char::decode_utf16(units)
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    };
    if let Some(body) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return std::str::from_utf8(body)
            .map(str::to_string)
            .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to() + 3));
    }
    if let Some(body) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return Ok(utf16(body, false));
    }
    if let Some(body) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return Ok(utf16(body, true));
    }
    // Without a BOM, ASCII text in UTF-16 has a zero in every other byte.
    let sample = bytes.get(..bytes.len().min(512)).unwrap_or(bytes);
    let zeros_at = |parity: usize| {
        sample
            .iter()
            .enumerate()
            .filter(|(i, b)| i % 2 == parity && **b == 0)
            .count()
    };
    let pairs = sample.len() / 2;
    if pairs > 0 && zeros_at(1) * 10 >= pairs * 9 && zeros_at(0) == 0 {
        return Ok(utf16(bytes, false));
    }
    if pairs > 0 && zeros_at(0) * 10 >= pairs * 9 && zeros_at(1) == 0 {
        return Ok(utf16(bytes, true));
    }
    std::str::from_utf8(bytes).map(str::to_string).map_err(|e| {
        format!(
            "not UTF-8 or UTF-16 text (invalid byte at {})",
            e.valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_encodings() {
        let s = "[{\"a\":1}]";
        let le: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        let be: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
        let mut le_bom = vec![0xFF, 0xFE];
        le_bom.extend(&le);
        let mut be_bom = vec![0xFE, 0xFF];
        be_bom.extend(&be);
        let mut utf8_bom = vec![0xEF, 0xBB, 0xBF];
        utf8_bom.extend(s.as_bytes());
        for bytes in [le.clone(), le_bom, be_bom, utf8_bom, s.as_bytes().to_vec()] {
            assert_eq!(decode_text(&bytes).unwrap(), s);
        }
        assert!(decode_text(&[0x80, 0x81, 0x41]).is_err());
        // An odd trailing byte does not panic.
        let mut odd = vec![0xFF, 0xFE, 0x41];
        odd.push(0);
        odd.push(0x42);
        assert_eq!(decode_text(&odd).unwrap(), "A");
    }
}
