//! Capture bytes to text: UTF-8 (with or without a BOM), UTF-16 (LE/BE, with or without a BOM),
//! and the Windows code pages that `cmd.exe` redirects (the console's OEM page: 437, 850, 852,
//! 866, ...) and Windows PowerShell's `-Encoding Default` (the ANSI page: 1250-1252; 932, 936 and
//! 949 on CJK systems) write. A code page is told from the content: the one whose decoding makes
//! the non-ASCII words known netstat words ([`super::words`]); when none does, the file is refused
//! with the flag that says it, unless the undecided bytes lie outside every row.
use super::words;
use crate::error::Fault;
use encoding_rs::Encoding as Whatwg;

/// How a code page's bytes above 0x7F become characters.
enum Table {
    /// The DOS OEM pages (oem_cp): every byte defined.
    Oem(&'static [char; 128]),
    /// OEM pages with holes (857): an undefined byte is U+FFFD.
    OemPartial(&'static [Option<char>; 128]),
    /// The WHATWG set (encoding_rs): ANSI pages, 866 and the CJK double-byte pages.
    Whatwg(&'static Whatwg),
}

/// A Windows code page netstat or PowerShell may have written.
pub struct CodePage {
    /// The name reported (`cp850`) and accepted by `--capture-encoding`.
    pub name: &'static str,
    /// Other names `--capture-encoding` accepts.
    aliases: &'static [&'static str],
    table: Table,
    /// Tried when detecting; the others are only read when named.
    detect: bool,
}

impl CodePage {
    /// The text of `bytes` and how many byte sequences were not of this page (shown as U+FFFD).
    fn decode(&self, bytes: &[u8]) -> (String, usize) {
        match &self.table {
            Table::Oem(t) => (
                bytes
                    .iter()
                    .map(|&b| {
                        if b < 0x80 {
                            b as char
                        } else {
                            t[(b - 0x80) as usize]
                        }
                    })
                    .collect(),
                0,
            ),
            Table::OemPartial(t) => {
                let mut bad = 0;
                let text = bytes
                    .iter()
                    .map(|&b| {
                        if b < 0x80 {
                            b as char
                        } else {
                            t[(b - 0x80) as usize].unwrap_or_else(|| {
                                bad += 1;
                                char::REPLACEMENT_CHARACTER
                            })
                        }
                    })
                    .collect();
                (text, bad)
            }
            Table::Whatwg(e) => {
                let (text, had_errors) = e.decode_without_bom_handling(bytes);
                let bad = if had_errors {
                    text.chars()
                        .filter(|c| *c == char::REPLACEMENT_CHARACTER)
                        .count()
                } else {
                    0
                };
                (text.into_owned(), bad)
            }
        }
    }

    /// The character byte `b` (0x80-0xFF) stands for, for single-byte pages (the independent
    /// check of the tables, tests/capture_encodings.rs).
    pub fn single_byte(&self, b: u8) -> Option<char> {
        if b < 0x80 {
            return Some(b as char);
        }
        match &self.table {
            Table::Oem(t) => Some(t[(b - 0x80) as usize]),
            Table::OemPartial(t) => t[(b - 0x80) as usize],
            Table::Whatwg(e) if e.is_single_byte() => {
                let (text, bad) = self.decode(&[b]);
                (bad == 0).then(|| text.chars().next()).flatten()
            }
            Table::Whatwg(_) => None,
        }
    }

    pub fn is_single_byte(&self) -> bool {
        match &self.table {
            Table::Whatwg(e) => e.is_single_byte(),
            _ => true,
        }
    }
}

use oem_cp::code_table as oem;

/// Every code page read, in the order detection prefers when several decode a file to the same
/// text: OEM pages first (a `cmd.exe` redirect writes them), then ANSI, then CJK.
pub static CODE_PAGES: &[CodePage] = &[
    CodePage {
        name: "cp850",
        aliases: &["850", "ibm850", "oem850"],
        table: Table::Oem(&oem::DECODING_TABLE_CP850),
        detect: true,
    },
    CodePage {
        name: "cp437",
        aliases: &["437", "ibm437", "oem437"],
        table: Table::Oem(&oem::DECODING_TABLE_CP437),
        detect: true,
    },
    CodePage {
        name: "cp852",
        aliases: &["852", "ibm852", "oem852"],
        table: Table::Oem(&oem::DECODING_TABLE_CP852),
        detect: true,
    },
    CodePage {
        name: "cp866",
        aliases: &["866", "ibm866", "oem866"],
        table: Table::Whatwg(&encoding_rs::IBM866_INIT),
        detect: true,
    },
    CodePage {
        name: "cp1252",
        aliases: &["1252", "windows-1252", "ansi"],
        table: Table::Whatwg(&encoding_rs::WINDOWS_1252_INIT),
        detect: true,
    },
    CodePage {
        name: "cp1250",
        aliases: &["1250", "windows-1250"],
        table: Table::Whatwg(&encoding_rs::WINDOWS_1250_INIT),
        detect: true,
    },
    CodePage {
        name: "cp1251",
        aliases: &["1251", "windows-1251"],
        table: Table::Whatwg(&encoding_rs::WINDOWS_1251_INIT),
        detect: true,
    },
    CodePage {
        name: "cp932",
        aliases: &["932", "shift_jis", "shift-jis", "sjis", "windows-31j"],
        table: Table::Whatwg(&encoding_rs::SHIFT_JIS_INIT),
        detect: true,
    },
    CodePage {
        name: "cp936",
        aliases: &["936", "gbk", "gb2312"],
        table: Table::Whatwg(&encoding_rs::GBK_INIT),
        detect: true,
    },
    CodePage {
        name: "cp949",
        aliases: &["949", "euc-kr", "uhc", "ks_c_5601-1987"],
        table: Table::Whatwg(&encoding_rs::EUC_KR_INIT),
        detect: true,
    },
    // Read when named: OEM pages of languages whose netstat words we do not know.
    CodePage {
        name: "cp737",
        aliases: &["737", "ibm737"],
        table: Table::Oem(&oem::DECODING_TABLE_CP737),
        detect: false,
    },
    CodePage {
        name: "cp775",
        aliases: &["775", "ibm775"],
        table: Table::Oem(&oem::DECODING_TABLE_CP775),
        detect: false,
    },
    CodePage {
        name: "cp855",
        aliases: &["855", "ibm855"],
        table: Table::Oem(&oem::DECODING_TABLE_CP855),
        detect: false,
    },
    CodePage {
        name: "cp857",
        aliases: &["857", "ibm857"],
        table: Table::OemPartial(&oem::DECODING_TABLE_CP857),
        detect: false,
    },
    CodePage {
        name: "cp858",
        aliases: &["858", "ibm858"],
        table: Table::Oem(&oem::DECODING_TABLE_CP858),
        detect: false,
    },
    CodePage {
        name: "cp860",
        aliases: &["860", "ibm860"],
        table: Table::Oem(&oem::DECODING_TABLE_CP860),
        detect: false,
    },
    CodePage {
        name: "cp861",
        aliases: &["861", "ibm861"],
        table: Table::Oem(&oem::DECODING_TABLE_CP861),
        detect: false,
    },
    CodePage {
        name: "cp863",
        aliases: &["863", "ibm863"],
        table: Table::Oem(&oem::DECODING_TABLE_CP863),
        detect: false,
    },
    CodePage {
        name: "cp865",
        aliases: &["865", "ibm865"],
        table: Table::Oem(&oem::DECODING_TABLE_CP865),
        detect: false,
    },
    CodePage {
        name: "cp869",
        aliases: &["869", "ibm869"],
        table: Table::Oem(&oem::DECODING_TABLE_CP869),
        detect: false,
    },
];

/// What `--capture-encoding` names.
#[derive(Copy, Clone)]
pub enum TextEncoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Page(&'static CodePage),
}

impl std::fmt::Debug for TextEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TextEncoding {
    pub fn name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "utf-8",
            TextEncoding::Utf16Le => "utf-16le",
            TextEncoding::Utf16Be => "utf-16be",
            TextEncoding::Page(p) => p.name,
        }
    }

    /// `utf-8`, `utf-16le`, `cp850`, `850`, `windows-1252`, `shift_jis`, ... (case-insensitive).
    pub fn from_name(name: &str) -> Option<TextEncoding> {
        let n = name.trim().to_ascii_lowercase();
        match n.as_str() {
            "utf-8" | "utf8" | "65001" => return Some(TextEncoding::Utf8),
            "utf-16le" | "utf-16" | "utf16" | "unicode" | "1200" => {
                return Some(TextEncoding::Utf16Le)
            }
            "utf-16be" | "bigendianunicode" | "1201" => return Some(TextEncoding::Utf16Be),
            _ => {}
        }
        CODE_PAGES
            .iter()
            .find(|p| p.name == n || p.aliases.contains(&n.as_str()))
            .map(TextEncoding::Page)
    }

    /// Every name reported, for messages.
    pub fn names() -> Vec<&'static str> {
        let mut names = vec!["utf-8", "utf-16le", "utf-16be"];
        names.extend(CODE_PAGES.iter().map(|p| p.name));
        names
    }
}

/// Decoded capture text, the encoding it was read in, and what is worth saying about that.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub text: String,
    /// `utf-8`, `utf-16le`, `cp850`, ...; `utf-8+cp850` when lines differ.
    pub encoding: String,
    pub warnings: Vec<String>,
}

/// Decodes UTF-8 (BOM optional), UTF-16LE/BE with a BOM, and UTF-16LE without one (PowerShell 5.1's
/// `>` redirection writes UTF-16LE; some copies lose the BOM). Code pages are not tried: see
/// [`decode`].
pub fn decode_text(bytes: &[u8]) -> std::result::Result<String, Fault> {
    decode_unicode(bytes).unwrap_or_else(|| {
        std::str::from_utf8(bytes).map(str::to_string).map_err(|e| {
            fault!(
                Encoding,
                "not UTF-8 or UTF-16 text (invalid byte at {})",
                e.valid_up_to()
            )
        })
    })
}

fn utf16(body: &[u8], big_endian: bool) -> String {
    let units = body.chunks_exact(2).map(|c| match (c, big_endian) {
        ([a, b], false) => u16::from_le_bytes([*a, *b]),
        ([a, b], true) => u16::from_be_bytes([*a, *b]),
        _ => 0xFFFD,
    });
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// The Unicode encodings a BOM or the zero bytes of UTF-16 tell; `None` for anything else.
fn decode_unicode(bytes: &[u8]) -> Option<std::result::Result<String, Fault>> {
    Some(Ok(match unicode_form(bytes)? {
        (TextEncoding::Utf8, body) => {
            return Some(
                std::str::from_utf8(body)
                    .map(str::to_string)
                    .map_err(|e| fault!(Encoding, "invalid UTF-8 at byte {}", e.valid_up_to() + 3)),
            )
        }
        (TextEncoding::Utf16Be, body) => utf16(body, true),
        (_, body) => utf16(body, false),
    }))
}

/// The BOM's (or UTF-16's zero bytes') encoding and the bytes after the BOM.
fn unicode_form(bytes: &[u8]) -> Option<(TextEncoding, &[u8])> {
    if let Some(body) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return Some((TextEncoding::Utf8, body));
    }
    if let Some(body) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return Some((TextEncoding::Utf16Le, body));
    }
    if let Some(body) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return Some((TextEncoding::Utf16Be, body));
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
        return Some((TextEncoding::Utf16Le, bytes));
    }
    if pairs > 0 && zeros_at(0) * 10 >= pairs * 9 && zeros_at(1) == 0 {
        return Some((TextEncoding::Utf16Be, bytes));
    }
    None
}

/// Decodes capture bytes in `forced`, else in the encoding their content tells (see the module
/// doc). Errors are one line, without the file name (the caller adds it).
pub fn decode(bytes: &[u8], forced: Option<TextEncoding>) -> std::result::Result<Decoded, Fault> {
    let done = |text: String, encoding: &str, warnings: Vec<String>| Decoded {
        text,
        encoding: encoding.to_string(),
        warnings,
    };
    match forced {
        Some(TextEncoding::Utf8) => {
            let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
            let text = std::str::from_utf8(body).map_err(|e| {
                fault!(
                    Encoding,
                    "not UTF-8 (invalid byte at {}), though --capture-encoding says so",
                    e.valid_up_to() + (bytes.len() - body.len())
                )
            })?;
            return Ok(done(text.to_string(), "utf-8", vec![]));
        }
        Some(TextEncoding::Utf16Le) => {
            let body = bytes.strip_prefix(&[0xFF, 0xFE]).unwrap_or(bytes);
            return Ok(done(utf16(body, false), "utf-16le", vec![]));
        }
        Some(TextEncoding::Utf16Be) => {
            let body = bytes.strip_prefix(&[0xFE, 0xFF]).unwrap_or(bytes);
            return Ok(done(utf16(body, true), "utf-16be", vec![]));
        }
        Some(TextEncoding::Page(page)) => {
            let (text, bad) = page.decode(bytes);
            let warnings = undecodable_warning(page, bad).into_iter().collect();
            return Ok(done(text, page.name, warnings));
        }
        None => {}
    }
    if let Some((encoding, body)) = unicode_form(bytes) {
        return match decode_unicode(bytes).unwrap_or_else(|| Ok(String::new())) {
            Ok(text) => Ok(done(text, encoding.name(), vec![])),
            // A UTF-8 file that `cmd.exe` appended to in its OEM page: the lines are told apart.
            Err(_) if matches!(encoding, TextEncoding::Utf8) => decode_code_page(body),
            Err(e) => Err(e),
        };
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(done(text.to_string(), "utf-8", vec![]));
    }
    decode_code_page(bytes)
}

fn undecodable_warning(page: &CodePage, bad: usize) -> Option<String> {
    (bad > 0).then(|| {
        format!(
            "{bad} byte sequence(s) are not {}: shown as U+FFFD",
            page.name
        )
    })
}

/// One line of the file, by how it reads.
enum LineKind {
    Ascii,
    /// Valid UTF-8 with non-ASCII characters.
    Utf8,
    /// Neither: a code page's bytes.
    Other,
}

/// Bytes that are not UTF-8: each line that is UTF-8 is read so (a file two tools appended to);
/// the other lines in the code page that makes their non-ASCII words netstat's.
fn decode_code_page(bytes: &[u8]) -> std::result::Result<Decoded, Fault> {
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    let kinds: Vec<LineKind> = lines
        .iter()
        .map(|l| {
            if l.is_ascii() {
                LineKind::Ascii
            } else if std::str::from_utf8(l).is_ok() {
                LineKind::Utf8
            } else {
                LineKind::Other
            }
        })
        .collect();
    let other: Vec<usize> = (0..lines.len())
        .filter(|&i| matches!(kinds[i], LineKind::Other))
        .collect();
    let utf8_lines: Vec<usize> = (0..lines.len())
        .filter(|&i| matches!(kinds[i], LineKind::Utf8))
        .collect();
    let first_bad = bytes.iter().position(|&b| b >= 0x80).unwrap_or(0);
    let utf8_error = std::str::from_utf8(bytes)
        .err()
        .map_or(first_bad, |e| e.valid_up_to());

    // Each detectable page's reading of the non-UTF-8 lines: the known words it makes, and bytes
    // that are not of the page.
    let readings: Vec<(&'static CodePage, Vec<String>, usize, usize)> = CODE_PAGES
        .iter()
        .filter(|p| p.detect)
        .map(|page| {
            let mut known = 0;
            let mut bad = 0;
            let texts: Vec<String> = other
                .iter()
                .map(|&i| {
                    let (text, b) = page.decode(lines[i]);
                    bad += b;
                    known += text
                        .split_whitespace()
                        .filter(|t| !t.is_ascii() && words::is_known(t))
                        .count();
                    text
                })
                .collect();
            (page, texts, known, bad)
        })
        .collect();
    let best = readings
        .iter()
        .filter(|r| r.3 == 0)
        .map(|r| r.2)
        .max()
        .unwrap_or(0);
    let page = if best > 0 {
        let winners: Vec<_> = readings
            .iter()
            .filter(|r| r.3 == 0 && r.2 == best)
            .collect();
        // Pages that read these bytes as the same text are the same evidence: the first is named.
        if winners.iter().any(|w| w.1 != winners[0].1) {
            let names: Vec<&str> = winners.iter().map(|w| w.0.name).collect();
            return Err(fault!(Encoding,
                "not UTF-8 or UTF-16 text, and its code page cannot be decided: {} read its netstat words alike but its other bytes differently; --capture-encoding NAME says which",
                names.join(" and ")
            ));
        }
        winners[0].0
    } else {
        let rows_affected = other.iter().any(|&i| is_row_line(lines[i]));
        let any_row = lines.iter().any(|l| is_row_line(l));
        if rows_affected || !any_row {
            return Err(fault!(Encoding,
                "not UTF-8 or UTF-16 text (invalid byte at {utf8_error}), and no netstat word tells its code page; --capture-encoding NAME reads it as one ({})",
                TextEncoding::names().join(", ")
            ));
        }
        // The undecided bytes are outside every row (a translated header of a language we do not
        // know): the rows read the same in any page.
        let mut text = String::new();
        for (line, kind) in lines.iter().zip(&kinds) {
            match kind {
                LineKind::Other => text.extend(line.iter().map(|&b| {
                    if b < 0x80 {
                        b as char
                    } else {
                        char::REPLACEMENT_CHARACTER
                    }
                })),
                _ => text.push_str(&String::from_utf8_lossy(line)),
            }
        }
        let numbers: Vec<usize> = other.iter().map(|i| i + 1).collect();
        return Ok(Decoded {
            text,
            encoding: "undecided".into(),
            warnings: vec![format!(
                "{}: bytes in a code page no netstat word tells (not UTF-8), shown as U+FFFD; no row holds any; --capture-encoding NAME reads them",
                line_list("line", &numbers)
            )],
        });
    };
    let mut text = String::new();
    let mut bad = 0;
    for (line, kind) in lines.iter().zip(&kinds) {
        match kind {
            LineKind::Other => {
                let (t, b) = page.decode(line);
                bad += b;
                text.push_str(&t);
            }
            _ => text.push_str(&String::from_utf8_lossy(line)),
        }
    }
    let mut warnings: Vec<String> = undecodable_warning(page, bad).into_iter().collect();
    let encoding = if utf8_lines.is_empty() {
        page.name.to_string()
    } else {
        let u: Vec<usize> = utf8_lines.iter().map(|i| i + 1).collect();
        let o: Vec<usize> = other.iter().map(|i| i + 1).collect();
        warnings.push(format!(
            "mixed encodings: {} UTF-8, {} {}; each line read in its own",
            line_list("line", &u),
            line_list("line", &o),
            page.name
        ));
        format!("utf-8+{}", page.name)
    };
    Ok(Decoded {
        text,
        encoding,
        warnings,
    })
}

/// Whether a line has a netstat row's start: `TCP`/`UDP` and an endpoint.
fn is_row_line(line: &[u8]) -> bool {
    let mut tokens = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty());
    let proto = tokens.next().unwrap_or(b"");
    let endpoint = tokens.next().unwrap_or(b"");
    let is_proto = [&b"TCP"[..], b"UDP", b"TCPV6", b"UDPV6"]
        .iter()
        .any(|p| proto.eq_ignore_ascii_case(p));
    is_proto && endpoint.contains(&b':')
}

/// `lines 3, 5, 9` (at most 5 named, then how many more).
pub(super) fn line_list(word: &str, numbers: &[usize]) -> String {
    let shown: Vec<String> = numbers.iter().take(5).map(usize::to_string).collect();
    let more = numbers.len().saturating_sub(5);
    let plural = if numbers.len() == 1 { "" } else { "s" };
    if more > 0 {
        format!("{word}{plural} {} and {more} more", shown.join(", "))
    } else {
        format!("{word}{plural} {}", shown.join(", "))
    }
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

    #[test]
    fn code_pages_from_netstat_words() {
        // "Dirección" in CP850 (ó = 0xA2); cp437 and cp852 read it alike, so cp850 is named.
        let es = b"Conexiones activas\r\n  Proto  Direcci\xa2n local  Direcci\xa2n remota  Estado  PID\r\n  TCP    0.0.0.0:135   0.0.0.0:0   LISTENING   780\r\n";
        let d = decode(es, None).unwrap();
        assert_eq!(d.encoding, "cp850");
        assert!(d.text.contains("Dirección local"), "{}", d.text);
        // German ABHÖREN (Ö = 0x99 in CP850).
        let de = b"  TCP    0.0.0.0:135   0.0.0.0:0   ABH\x99REN   780\r\n";
        let d = decode(de, None).unwrap();
        assert!(d.text.contains("ABHÖREN"), "{}", d.text);
        // Japanese in CP932.
        let (ja, _, _) = encoding_rs::SHIFT_JIS
            .encode("アクティブな接続\r\n  TCP    0.0.0.0:135   0.0.0.0:0   LISTENING   780\r\n");
        let d = decode(&ja, None).unwrap();
        assert_eq!(d.encoding, "cp932");
        // Russian in CP866 versus CP1251.
        let (ru, _, _) = encoding_rs::IBM866.encode("Активные подключения\r\n");
        assert_eq!(decode(&ru, None).unwrap().encoding, "cp866");
        let (ru, _, _) = encoding_rs::WINDOWS_1251.encode("Активные подключения\r\n");
        assert_eq!(decode(&ru, None).unwrap().encoding, "cp1251");
        // Forced.
        let d = decode(b"caf\x82", TextEncoding::from_name("437")).unwrap();
        assert_eq!(d.text, "café");
    }

    #[test]
    fn undecided_and_mixed() {
        // No known word, but only a header line holds the bytes: rows unaffected, a warning.
        let head = b"Xyz \xa2\xa3\r\n  TCP    0.0.0.0:135   0.0.0.0:0   LISTENING   780\r\n";
        let d = decode(head, None).unwrap();
        assert_eq!(d.encoding, "undecided");
        assert!(d.warnings[0].starts_with("line 1: "), "{:?}", d.warnings);
        // A row holds them: refused, naming the flag.
        let row = b"  TCP    0.0.0.0:135   0.0.0.0:0   \xa2\xa3   780\r\n";
        let e = decode(row, None).unwrap_err();
        assert!(
            matches!(&e, Fault::Encoding(m) if m.contains("--capture-encoding")),
            "{e}"
        );
        assert_eq!(e.to_string().lines().count(), 1);
        // UTF-8 lines and CP850 lines in one file.
        let mixed = "Conexiones activas\r\n  Proto  Dirección local\r\n"
            .as_bytes()
            .iter()
            .chain(b"  Proto  Direcci\xa2n local\r\n".iter())
            .copied()
            .collect::<Vec<u8>>();
        let d = decode(&mixed, None).unwrap();
        assert_eq!(d.encoding, "utf-8+cp850");
        assert!(d.warnings[0].starts_with("mixed encodings: line 2 UTF-8, line 3 cp850"));
        assert_eq!(d.text.matches("Dirección").count(), 2);
        // The same behind a UTF-8 BOM (PowerShell wrote the file, `netstat >>` added to it).
        let with_bom: Vec<u8> = [0xEF, 0xBB, 0xBF].iter().chain(&mixed).copied().collect();
        let d = decode(&with_bom, None).unwrap();
        assert_eq!(d.encoding, "utf-8+cp850");
        assert!(!d.text.starts_with('\u{feff}'));
    }
}
