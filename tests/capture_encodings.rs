//! The code-page tables netcarve reads captures with, held against an independent implementation:
//! Python's `codecs` (its own tables, generated from the Unicode consortium's mapping files), byte
//! by byte for all 256 values of every single-byte page. A young crate's table is evidence's
//! dictionary: one wrong entry misreads every file in that page.
mod support;

use netcarve::capture::CODE_PAGES;
use std::process::Command;

#[test]
fn single_byte_tables_agree_with_python_codecs() {
    let pages: Vec<&str> = CODE_PAGES
        .iter()
        .filter(|p| p.is_single_byte())
        .map(|p| p.name)
        .collect();
    // One line per page: the code point of each byte, or -1 where the page leaves it undefined.
    let script = "import sys\n\
        for name in sys.argv[1:]:\n\
        \x20   out = []\n\
        \x20   for b in range(256):\n\
        \x20       try:\n\
        \x20           out.append(str(ord(bytes([b]).decode(name))))\n\
        \x20       except UnicodeDecodeError:\n\
        \x20           out.append('-1')\n\
        \x20   print(name, ' '.join(out))\n";
    let output = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&pages)
        .output()
    {
        Ok(o) if o.status.success() => o,
        other => {
            support::skip_or_fail(&format!("python3 could not run: {other:?}"));
            return;
        }
    };
    let text = String::from_utf8(output.stdout).unwrap();
    let mut checked = 0;
    for line in text.lines() {
        let mut parts = line.split(' ');
        let name = parts.next().unwrap();
        let page = CODE_PAGES.iter().find(|p| p.name == name).unwrap();
        let python: Vec<i64> = parts.map(|p| p.parse().unwrap()).collect();
        assert_eq!(python.len(), 256, "{name}");
        for (b, want) in python.iter().enumerate() {
            let ours = page.single_byte(b as u8).map(|c| c as i64);
            match (*want, ours) {
                (w, Some(o)) if w == o => {}
                // Bytes Windows leaves undefined (cp1252's 0x81, ...): the WHATWG decoders
                // encoding_rs implements map them to the C1 control of the same number, Python
                // refuses them; neither is a letter, and neither can be mistaken for one.
                (-1, Some(o)) if o == b as i64 && (0x80..0xA0).contains(&b) => {}
                (-1, None) => {}
                (w, o) => panic!("{name} byte 0x{b:02x}: python {w}, netcarve {o:?}"),
            }
        }
        checked += 1;
    }
    assert_eq!(checked, pages.len(), "python checked every page: {text}");
    assert!(pages.contains(&"cp437") && pages.contains(&"cp850") && pages.contains(&"cp852"));
}
