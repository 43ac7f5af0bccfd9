//! What a container found odd, one line per kind. A hostile header can make a format warn once
//! per entry (an ELF core with 65,535 overlapping `PT_LOAD`s), so warnings that differ only in
//! their numbers are one kind: the first is kept, the others counted ("… and 57,336 more like
//! it"). Every format pushes its warnings here; nothing else is needed per format.
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct Warnings {
    /// Kinds in the order their first warning came.
    kinds: Vec<Kind>,
    /// Shape → index into `kinds`.
    by_shape: HashMap<String, usize>,
}

#[derive(Clone, Debug)]
struct Kind {
    first: String,
    more: u64,
}

impl Warnings {
    pub fn push(&mut self, warning: impl Into<String>) {
        let warning = warning.into();
        let shape = shape(&warning);
        match self.by_shape.get(&shape) {
            Some(&i) => self.kinds[i].more += 1,
            None => {
                self.by_shape.insert(shape, self.kinds.len());
                self.kinds.push(Kind {
                    first: warning,
                    more: 0,
                });
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// One line per kind.
    pub fn iter(&self) -> impl Iterator<Item = String> + '_ {
        self.kinds.iter().map(|k| match k.more {
            0 => k.first.clone(),
            n => format!("{} … and {} more like it", k.first, thousands(n)),
        })
    }

    pub fn lines(&self) -> Vec<String> {
        self.iter().collect()
    }
}

impl Extend<String> for Warnings {
    fn extend<I: IntoIterator<Item = String>>(&mut self, warnings: I) {
        for w in warnings {
            self.push(w);
        }
    }
}

/// The warning with every number (a word starting with a digit: `0x1f000`, `57`) as `#`.
fn shape(warning: &str) -> String {
    let mut out = String::with_capacity(warning.len());
    let mut in_word = false;
    let mut in_number = false;
    for c in warning.chars() {
        let word = c.is_ascii_alphanumeric() || c == '_';
        if !word {
            in_word = false;
            in_number = false;
            out.push(c);
            continue;
        }
        if !in_word {
            in_word = true;
            in_number = c.is_ascii_digit();
            if in_number {
                out.push('#');
            }
        }
        if !in_number {
            out.push(c);
        }
    }
    out
}

/// `57336` → `57,336`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_differing_in_numbers_only_are_one_line() {
        let mut w = Warnings::default();
        for i in 0..57_337u64 {
            w.push(format!(
                "overlapping physical range at {:#x} ignored",
                i * 0x1000
            ));
        }
        w.push("segment file mem.E02 is missing: the media after segment 1 is absent");
        w.push("segment file mem.E03 is missing: the media after segment 2 is absent");
        w.push("a bad header");
        assert_eq!(
            w.lines(),
            [
                "overlapping physical range at 0x0 ignored … and 57,336 more like it",
                "segment file mem.E02 is missing: the media after segment 1 is absent",
                "segment file mem.E03 is missing: the media after segment 2 is absent",
                "a bad header",
            ]
        );
        assert_eq!(shape("0x1f at 12, E01 x2"), "# at #, E01 x2");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
