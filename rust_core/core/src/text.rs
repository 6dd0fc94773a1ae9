//! Text cleaner: control characters, data URIs, base64 blobs, whitespace, sensitive words.
//!
//! The rules are specified in `server.native.text` (Python module
//! docstring) and must give byte-identical output to the reference in
//! `server/native/reference/text.py`. Character sets are spelled out by code
//! point; the only regex (data URIs) is ASCII-only and identical to the
//! reference's `DATA_URI_PATTERN`.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use regex::{NoExpand, Regex};

use crate::Error;

/// Same string as `DATA_URI_PATTERN` in server/native/reference/text.py.
pub const DATA_URI_PATTERN: &str = concat!(
    "[Dd][Aa][Tt][Aa]:(?:[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+",
    "(?:;[A-Za-z0-9!#$&^_.+-]+(?:=[A-Za-z0-9!#$&^_.+%-]*)?)*",
    "|(?:;[A-Za-z0-9!#$&^_.+-]+(?:=[A-Za-z0-9!#$&^_.+%-]*)?)+)",
    ",[A-Za-z0-9+/=%._~-]*"
);
pub const MIN_BASE64_LEN_FLOOR: i64 = 8;

#[inline]
fn is_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0E..=0x1F | 0x7F..=0x84 | 0x86..=0x9F
        | 0x200B | 0x200E | 0x200F | 0x202A..=0x202E | 0x2060 | 0x2066..=0x2069 | 0xFEFF)
}

#[inline]
fn is_whitespace(c: char) -> bool {
    matches!(c as u32,
        0x09..=0x0D | 0x20 | 0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A
        | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000)
}

#[inline]
fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

const B64: u8 = 1;
const UPPER: u8 = 2;
const LOWER: u8 = 4;
const DIGIT: u8 = 8;
const ALL_CLASSES: u8 = UPPER | LOWER | DIGIT;

/// Byte classes for the base64 scan: in the alphabet, and which kind of character.
static BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_uppercase() {
            B64 | UPPER
        } else if c.is_ascii_lowercase() {
            B64 | LOWER
        } else if c.is_ascii_digit() {
            B64 | DIGIT
        } else if c == b'+' || c == b'/' {
            B64
        } else {
            0
        };
        b += 1;
    }
    table
};

/// A reusable cleaner; immutable after construction, so shareable across threads.
pub struct TextCleaner {
    words: Option<AhoCorasick>,
    mask: String,
    min_base64_len: usize,
    keep_newlines: bool,
    data_uri: Regex,
}

impl TextCleaner {
    pub fn new(
        words: &[String],
        mask: &str,
        min_base64_len: i64,
        keep_newlines: bool,
    ) -> Result<Self, Error> {
        if min_base64_len < MIN_BASE64_LEN_FLOOR {
            return Err(Error::invalid(format!(
                "min_base64_len must be >= {}, got {}",
                MIN_BASE64_LEN_FLOOR, min_base64_len
            )));
        }
        let words: Vec<&str> = words
            .iter()
            .map(String::as_str)
            .filter(|w| !w.is_empty())
            .collect();
        let automaton = if words.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .dfa(true)
                    .build(&words),
            )
        };
        Ok(TextCleaner {
            words: automaton,
            mask: mask.to_owned(),
            min_base64_len: usize::try_from(min_base64_len).unwrap_or(usize::MAX),
            keep_newlines,
            data_uri: Regex::new(DATA_URI_PATTERN).expect("DATA_URI_PATTERN compiles"),
        })
    }

    pub fn clean(&self, text: &str) -> String {
        let text: Cow<str> = if text.chars().any(is_control) {
            Cow::Owned(text.chars().filter(|&c| !is_control(c)).collect())
        } else {
            Cow::Borrowed(text)
        };
        let text = self.data_uri.replace_all(&text, NoExpand(""));
        let text = self.strip_base64(&text);
        let text = self.collapse_whitespace(&text);
        self.mask_words(&text)
    }

    /// Remove maximal base64 runs (>= min length, plus up to two `=`) that mix
    /// upper case, lower case and digits.
    fn strip_base64<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let bytes = text.as_bytes();
        let mut out: Option<String> = None;
        let mut kept_from = 0;
        let mut i = 0;
        while i < bytes.len() {
            if BYTE_CLASS[bytes[i] as usize] & B64 == 0 {
                i += 1;
                continue;
            }
            let start = i;
            let mut classes = 0u8;
            while i < bytes.len() && BYTE_CLASS[bytes[i] as usize] & B64 != 0 {
                classes |= BYTE_CLASS[bytes[i] as usize];
                i += 1;
            }
            if i - start < self.min_base64_len {
                continue;
            }
            let mut end = i;
            while end < bytes.len() && end - i < 2 && bytes[end] == b'=' {
                end += 1;
            }
            if classes & ALL_CLASSES == ALL_CLASSES {
                // Run boundaries are ASCII bytes, hence char boundaries.
                let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
                buf.push_str(&text[kept_from..start]);
                kept_from = end;
            }
            i = end;
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut buf) => {
                buf.push_str(&text[kept_from..]);
                Cow::Owned(buf)
            }
        }
    }

    /// Each whitespace run becomes "\n" (if it holds a line break and newlines are
    /// kept) or " "; leading and trailing " "/"\n" are dropped.
    fn collapse_whitespace(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut kept_from = 0;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if !is_whitespace(c) {
                continue;
            }
            out.push_str(&text[kept_from..i]);
            let mut newline = is_line_break(c);
            let mut end = i + c.len_utf8();
            while let Some(&(j, next)) = chars.peek() {
                if !is_whitespace(next) {
                    break;
                }
                newline |= is_line_break(next);
                end = j + next.len_utf8();
                chars.next();
            }
            out.push(if newline && self.keep_newlines { '\n' } else { ' ' });
            kept_from = end;
        }
        out.push_str(&text[kept_from..]);
        let trimmed = out.trim_matches(|c| c == ' ' || c == '\n');
        if trimmed.len() == out.len() {
            out
        } else {
            trimmed.to_owned()
        }
    }

    /// Replace every character covered by any (overlapping) word match with the mask.
    fn mask_words(&self, text: &str) -> String {
        let automaton = match &self.words {
            Some(a) if !text.is_empty() => a,
            _ => return text.to_owned(),
        };
        let mut depth = vec![0i32; text.len() + 1];
        let mut any = false;
        for m in automaton.find_overlapping_iter(text) {
            depth[m.start()] += 1;
            depth[m.end()] -= 1;
            any = true;
        }
        if !any {
            return text.to_owned();
        }
        // Matches of whole UTF-8 words start and end on char boundaries.
        let mut out = String::with_capacity(text.len());
        let mut covered = 0i32;
        for (i, c) in text.char_indices() {
            covered += depth[i];
            if covered > 0 {
                out.push_str(&self.mask);
            } else {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cleaner(words: &[&str]) -> TextCleaner {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        TextCleaner::new(&words, "*", 64, true).unwrap()
    }

    const BLOB: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

    #[test]
    fn strips_base64_blobs_and_data_uris() {
        let c = cleaner(&[]);
        assert_eq!(c.clean(&format!("图片 {} 结束", BLOB)), "图片 结束");
        assert_eq!(c.clean(&format!("图片{}结束", BLOB)), "图片结束");
        assert_eq!(
            c.clean("see ![x](data:image/png;base64,AAAA+/==) ok"),
            "see ![x]() ok"
        );
        assert_eq!(c.clean("DATA:text/plain;charset=utf-8,hello%20world!"), "!");
        // Long hex digests and plain words are not blobs.
        let hex = "a".repeat(40) + &"0123456789".repeat(3);
        assert_eq!(c.clean(&hex), hex);
        assert_eq!(c.clean(&"abc".repeat(30)), "abc".repeat(30));
    }

    #[test]
    fn removes_controls_and_collapses_whitespace() {
        let c = cleaner(&[]);
        assert_eq!(
            c.clean("  a\u{0}b\u{200B}c \t d\u{3000}\u{3000}e \r\n\n f  "),
            "abc d e\nf"
        );
        let flat = TextCleaner::new(&[], "*", 64, false).unwrap();
        assert_eq!(flat.clean("a\n\nb"), "a b");
        assert_eq!(c.clean(" \n\t "), "");
        // Zero-width joiner stays (emoji sequences).
        assert_eq!(c.clean("👨\u{200D}👩"), "👨\u{200D}👩");
    }

    #[test]
    fn masks_overlapping_words_case_insensitively() {
        let c = cleaner(&["abc", "BCD", "密码", "码是"]);
        assert_eq!(c.clean("xAbCdy"), "x****y");
        assert_eq!(c.clean("我的密码是1234"), "我的***1234");
        let m = TextCleaner::new(&["秘密".to_string()], "[x]", 64, true).unwrap();
        assert_eq!(m.clean("这是秘密"), "这是[x][x]");
    }

    #[test]
    fn min_length_is_validated() {
        assert!(TextCleaner::new(&[], "*", 7, true).is_err());
        assert!(TextCleaner::new(&[], "*", 8, true).is_ok());
    }
}
