//! What an app's line may hold once it leaves berth: no control characters.
//!
//! An app's bytes reach a log file, the console copy and the in-memory tail that
//! `berth logs` and status reports print to someone's terminal. A raw `\r` would let an
//! app rewrite the start of its own line on that terminal (`... stdout \rberth: ...`
//! shows as a line of berth's), an ESC sequence would clear the screen, move the
//! cursor or retitle the window. So every C0 control character (0x00 to 0x1f) but tab,
//! DEL (0x7f) and the C1 controls (U+0080 to U+009F, which some terminals take as
//! 8-bit CSI and friends) become `\xHH`, one escape per byte of their UTF-8 encoding,
//! lower-case hex: ESC is `\x1b`, CR `\x0d`, NUL `\x00`, U+009B `\xc2\x9b`.
//!
//! The backslash itself is not escaped. Then a line without control characters, which
//! is nearly every line, is written byte for byte: JSON lines (which escape their own
//! control characters), Windows paths and regular expressions stay as the app wrote
//! them, and whoever greps or parses a log sees the app's text. The price is that
//! `\x1b` in a log may be either an escaped ESC or those four characters as the app
//! printed them; neither can reach a terminal as a control, which is the point.
//!
//! Invalid UTF-8 becomes U+FFFD, one per maximal invalid sequence, exactly as
//! `String::from_utf8_lossy` did here before.

/// Appends `text` to `out` with its control characters escaped and its invalid UTF-8
/// replaced. Allocates nothing but the growth of `out`: clean runs are copied whole.
pub fn push_escaped(out: &mut String, text: &[u8]) {
    for chunk in text.utf8_chunks() {
        push_valid(out, chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// The byte length of the escaped character starting at `bytes[0]`, if it is one:
/// 1 for C0 (not tab) and DEL, 2 for C1 (`\xc2` then 0x80 to 0x9f). Valid UTF-8 is
/// assumed, so 0xc2 is a lead byte here.
fn control_at(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [b'\t', ..] => None,
        [0x00..=0x1f | 0x7f, ..] => Some(1),
        [0xc2, 0x80..=0x9f, ..] => Some(2),
        _ => None,
    }
}

fn push_valid(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut clean = 0; // start of the run not yet copied
    let mut at = 0;
    while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
        let Some(len) = control_at(rest) else {
            at += 1;
            continue;
        };
        // Both ends are character boundaries: a control is a whole character.
        out.push_str(text.get(clean..at).unwrap_or_default());
        for &byte in rest.get(..len).unwrap_or_default() {
            push_hex(out, byte);
        }
        at += len;
        clean = at;
    }
    out.push_str(text.get(clean..).unwrap_or_default());
}

fn push_hex(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push('x');
    for nibble in [byte >> 4, byte & 0xf] {
        out.push(char::from(
            HEX.get(usize::from(nibble)).copied().unwrap_or(b'?'),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escape(text: &[u8]) -> String {
        let mut out = String::new();
        push_escaped(&mut out, text);
        out
    }

    #[test]
    fn escapes_controls_and_keeps_the_rest() {
        for (input, want) in [
            (&b"plain text"[..], "plain text"),
            (b"", ""),
            (b"\x1b[2J", "\\x1b[2J"),
            (b"\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
            (
                b"ok\rberth: all apps stopped",
                "ok\\x0dberth: all apps stopped",
            ),
            (b"nul\x00end", "nul\\x00end"),
            (b"del\x7f", "del\\x7f"),
            (b"\x01\x1f", "\\x01\\x1f"),
            (b"\x0b\x0c\x08", "\\x0b\\x0c\\x08"),
            (b"tab\tkept", "tab\tkept"),
            (b" ~", " ~"),
            // The backslash is the app's own: not doubled.
            (b"C:\\dir \\x1b", "C:\\dir \\x1b"),
            (br#"{"msg":"a \"b\"\n"}"#, r#"{"msg":"a \"b\"\n"}"#),
            // UTF-8 passes through; C1 controls are escaped byte by byte.
            ("café € 😀 ü".as_bytes(), "café € 😀 ü"),
            ("csi\u{9b}2J".as_bytes(), "csi\\xc2\\x9b2J"),
            ("\u{85}\u{a0}".as_bytes(), "\\xc2\\x85\u{a0}"),
            // Invalid UTF-8 as from_utf8_lossy: one U+FFFD per maximal invalid sequence.
            (b"bad \xff\xfe end", "bad \u{fffd}\u{fffd} end"),
            (b"\x9b2J", "\u{fffd}2J"),
            (b"cut \xe2\x82", "cut \u{fffd}"),
            (b"\xc3\x1b", "\u{fffd}\\x1b"),
        ] {
            assert_eq!(escape(input), want, "{input:?}");
        }
    }

    #[test]
    fn every_byte_value_leaves_no_control_behind() {
        let all: Vec<u8> = (0..=255).collect();
        let out = escape(&all);
        assert!(!out.chars().any(|c| c.is_control() && c != '\t'), "{out:?}");
        for b in (0u8..0x20).filter(|&b| b != b'\t').chain([0x7f]) {
            assert!(out.contains(&format!("\\x{b:02x}")), "{b:#x}: {out:?}");
        }
    }

    #[test]
    fn appends_to_what_is_there() {
        let mut out = String::from("2025 stdout ");
        push_escaped(&mut out, b"a\rb");
        assert_eq!(out, "2025 stdout a\\x0db");
    }
}
