//! Text helpers for messages built from untrusted input: truncation at a
//! character boundary, and the character set RFC 6749 §5.2 allows in an
//! OAuth `error_description`.

/// The first `max_chars` characters of `s` (all of it if shorter), cut at a
/// character boundary; borrows, never allocates.
///
/// ```
/// assert_eq!(jwks_jose::text::truncate("héllo", 2), "hé");
/// ```
pub fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((end, _)) => s.get(..end).unwrap_or(s),
        None => s,
    }
}

/// Whether `c` may appear in an RFC 6749 §5.2 `error_description`:
/// `%x20-21 / %x23-5B / %x5D-7E` (printable ASCII but `"` and `\`).
pub const fn is_error_description_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{21}' | '\u{23}'..='\u{5B}' | '\u{5D}'..='\u{7E}')
}

/// `s` made fit for an RFC 6749 §5.2 `error_description` (and so for a
/// quoted `WWW-Authenticate` parameter, RFC 6750 §3): at most `max_chars`
/// characters, each one outside `%x20-21 / %x23-5B / %x5D-7E` (a quote, a
/// backslash, a control character, anything not ASCII) replaced by `?`.
///
/// ```
/// use jwks_jose::text::error_description;
/// assert_eq!(error_description("bad \"alg\" \\ ü\r\n", 64), "bad ?alg? ? ???");
/// ```
pub fn error_description(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).map(|c| if is_error_description_char(c) { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_and_cuts_at_a_boundary() {
        assert_eq!(truncate("", 3), "");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc");
        assert_eq!(truncate("ééé", 2), "éé");
        assert_eq!(truncate("日本語テキスト", 3), "日本語");
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn error_description_keeps_only_rfc6749_5_2_characters() {
        for b in 0u8..=0x7f {
            let c = char::from(b);
            let allowed = (0x20..=0x21).contains(&b) || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
            assert_eq!(is_error_description_char(c), allowed, "{b:#x}");
            let expected = if allowed { c.to_string() } else { "?".into() };
            assert_eq!(error_description(&c.to_string(), 8), expected, "{b:#x}");
        }
        assert_eq!(error_description("é\u{7f}\u{0}\t", 8), "????");
        assert_eq!(error_description("abcdef", 3), "abc");
        let out = error_description("x\"y\\z\u{2028}", 64);
        assert!(out.chars().all(is_error_description_char), "{out}");
    }
}
