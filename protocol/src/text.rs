//! Text from a homeserver made safe to show a person: a PDU's strings reach
//! askpass, D-Bus prompters, `confirm.pending` and terminals, where a control
//! sequence could rewrite the screen and a bidi override could make
//! `@mallory` read as `@yrollam`. [`sanitize`] escapes those characters
//! visibly (`\u001b`) and shortens very long strings with `…`.

use std::borrow::Cow;
use std::fmt::Write;

/// Longest string shown whole, in characters, by [`sanitize_default`].
pub const SHOWN_CHARS: usize = 200;

/// Whether `c` must not reach a display as it is: C0 and C1 controls, DEL,
/// and the characters that reorder text (bidi embeddings, overrides,
/// isolates and marks).
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        // C0, DEL, C1
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        // bidi marks, embeddings, overrides, isolates
        | '\u{200e}' | '\u{200f}' | '\u{061c}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        // line and paragraph separators
        | '\u{2028}' | '\u{2029}'
        // invisible: zero-width space/joiners, word joiner and invisible
        // operators, BOM, Mongolian vowel separator, Hangul fillers,
        // interlinear annotation, tag characters
        | '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{180e}'
        | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}' | '\u{e0000}'..='\u{e007f}')
}

/// `s` with every unsafe character written as `\uXXXX`, cut after
/// `max_chars` characters with `…`. Borrowed when nothing changes.
pub fn sanitize(s: &str, max_chars: usize) -> Cow<'_, str> {
    let long = s.chars().nth(max_chars).is_some();
    if !long && !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max_chars * 4) + 8);
    for c in s.chars().take(max_chars) {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    if long {
        out.push('…');
    }
    Cow::Owned(out)
}

/// [`sanitize`] with the default length, [`SHOWN_CHARS`]; for a whole prompt
/// use [`sanitize`] with a larger limit.
pub fn sanitize_default(s: &str) -> String {
    sanitize(s, SHOWN_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_bidi_and_shortens() {
        for (input, want) in [
            ("plain @bob:example.org", "plain @bob:example.org"),
            ("\u{1b}[2Jwiped", "\\u001b[2Jwiped"),
            ("a\nb\tc\rd", "a\\u000ab\\u0009c\\u000dd"),
            ("del\u{7f}c1\u{9b}", "del\\u007fc1\\u009b"),
            ("@\u{202e}yrollam", "@\\u202eyrollam"),
            ("iso\u{2066}x\u{2069}", "iso\\u2066x\\u2069"),
            ("mark\u{200f}", "mark\\u200f"),
            ("line\u{2028}sep", "line\\u2028sep"),
            ("@bob\u{200b}:x", "@bob\\u200b:x"),
            ("tag\u{e0041}", "tag\\ue0041"),
            ("é ü 日本", "é ü 日本"),
        ] {
            assert_eq!(sanitize(input, 100), want, "{input:?}");
        }
        assert!(matches!(sanitize("clean", 100), Cow::Borrowed(_)));
        assert_eq!(sanitize("abcdef", 3), "abc…");
        assert_eq!(sanitize("abc", 3), "abc");
        assert_eq!(sanitize(&"x".repeat(1000), SHOWN_CHARS).chars().count(), SHOWN_CHARS + 1);
    }
}
