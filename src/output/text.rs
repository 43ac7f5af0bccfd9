//! Evidence text made safe to show: the one escaping every text rendering (tables, CSV, bodyfile
//! names, warnings and errors on stderr) goes through. Process names and capture fields are
//! attacker-controlled; raw, an ESC sequence reprograms the analyst's terminal, a CR or newline
//! forges a report line and an RTL override reverses what is read. JSON keeps the raw values.
use std::borrow::Cow;

/// The marker a cut value ends with (the whole value is in the JSON output).
const CUT_MARKER: char = '…';

/// Characters that change how text around them reads without being visible themselves: bidi
/// embeddings, overrides, isolates and marks, zero-width characters, line and paragraph separators.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn needs_escape(c: char, extra: &[char]) -> bool {
    c == '\\' || c.is_control() || is_invisible_format(c) || extra.contains(&c)
}

/// `text` with `\` as `\\`, C0 controls and DEL as `\x1b`-style escapes, and C1 controls and
/// invisible format characters (U+202E ...) as `\u{202e}`: visible, and reversible (every `\` in
/// the result starts an escape). Borrowed when nothing needed escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_also(text, &[])
}

/// [`escape`], and the characters of `extra` as `\x..`/`\u{..}` too (a format's own separators,
/// like bodyfile's `|`).
pub fn escape_also<'a>(text: &'a str, extra: &[char]) -> Cow<'a, str> {
    if !text.chars().any(|c| needs_escape(c, extra)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if !needs_escape(c, extra) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// `text` cut to at most `max_chars` characters, the last one [`CUT_MARKER`], when longer.
pub fn cut(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some(_) => {
            let keep = max_chars.saturating_sub(1);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            let mut s = text.get(..end).unwrap_or("").to_string();
            s.push(CUT_MARKER);
            Cow::Owned(s)
        }
    }
}

/// A value as a text cell shows it: cut to `max_chars` of the raw value (so that no escape is
/// split), then escaped.
pub fn cell(text: &str, max_chars: usize) -> String {
    escape(&cut(text, max_chars)).into_owned()
}

/// A CSV cell of evidence text: escaped like every text rendering, and prefixed with `'` when a
/// spreadsheet would run it as a formula (`=`, `+`, `-`, `@`; tab and CR are escaped already).
pub fn csv_cell(text: &str) -> String {
    let escaped = escape(text);
    match escaped.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{escaped}"),
        _ => escaped.into_owned(),
    }
}

/// Appends `cell` to `line` padded with spaces to `width` characters (by hand: `format!`'s
/// `{:<width$}` panics on widths above 65,535).
pub fn pad_into(line: &mut String, cell: &str, width: usize) {
    line.push_str(cell);
    let len = cell.chars().count();
    line.extend(std::iter::repeat_n(' ', width.saturating_sub(len)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_visible_and_reversible() {
        assert!(matches!(escape("svchost.exe"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b]0;x\x07b"), "a\\x1b]0;x\\x07b");
        assert_eq!(escape("r\r\nn\t"), "r\\x0d\\x0an\\x09");
        assert_eq!(escape("\u{202e}exe.gpj"), "\\u{202e}exe.gpj");
        assert_eq!(escape("\u{85}\u{7f}"), "\\u{85}\\x7f");
        assert_eq!(escape("c:\\x1b"), "c:\\\\x1b");
        assert_eq!(escape("é…名"), "é…名");
        assert_eq!(escape_also("a|b", &['|']), "a\\x7cb");
    }

    #[test]
    fn cuts_keep_whole_characters() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "ab…");
        assert_eq!(cut("ééééé", 2), "é…");
        assert_eq!(cut("abc", 0), "…");
        assert_eq!(cell("\x1b\x1b\x1b", 2), "\\x1b…");
    }

    #[test]
    fn formulas_are_neutralised() {
        for f in ["=1+1", "+1", "-1", "@SUM(A1)"] {
            assert_eq!(csv_cell(f), format!("'{f}"));
        }
        assert_eq!(csv_cell("\tx"), "\\x09x");
        assert_eq!(csv_cell("evil.exe"), "evil.exe");
    }

    #[test]
    fn pads_past_the_format_width_limit() {
        let mut line = String::new();
        pad_into(&mut line, "x", 70_000);
        assert_eq!(line.len(), 70_000);
        pad_into(&mut line, "long", 2);
        assert!(line.ends_with("long"));
    }
}
