//! Text a scenario controls — its name, exception messages, tracebacks, captured output, the
//! type and file names of a diagnosis — made safe for each place it is shown.
//!
//! Each format has its own hazards: a terminal obeys escape sequences (ESC, OSC, CSI, BEL) and
//! bidirectional overrides; the GitHub Actions runner reads a log line that starts with `::`
//! (after spaces) as a workflow command (`::error`, `::add-mask::`, `::stop-commands::`), and
//! one containing `##[` as a legacy one; XML 1.0 forbids most C0 controls and U+FFFE/U+FFFF,
//! even as character references, so one such character makes a whole junit.xml unreadable; HTML
//! treats C0 and C1 controls and noncharacters as parse errors. Everything is shown, never
//! dropped: a forbidden character becomes a visible escape in Python's notation (`\x1b`,
//! `\uffff`), which is also how the scenario's author would write it.

use std::borrow::Cow;
use std::fmt::Write;

/// `c` as a visible escape: `\x1b` below U+0100, `\uffff` above.
fn escape(c: char, out: &mut String) {
    let code = u32::from(c);
    if code < 0x100 {
        let _ = write!(out, "\\x{code:02x}");
    } else {
        let _ = write!(out, "\\u{code:04x}");
    }
}

/// `text` with every character `forbidden` says escaped; borrowed when there is none.
fn escape_where(text: &str, forbidden: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&forbidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if forbidden(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Controls a terminal acts on: C0 (line breaks included: a fragment is one line), DEL, C1
/// (U+009B is CSI on 8-bit terminals), and the bidirectional embeddings, overrides and isolates
/// that reorder what is shown.
fn terminal_forbidden(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        && c != '\t'
}

/// One fragment of a terminal line, from a scenario: controls escaped, and a start the Actions
/// runner would read as a workflow command (`::`, after spaces) or any legacy `##[` command
/// marker defused by escaping its first character.
pub fn terminal(text: &str) -> Cow<'_, str> {
    let escaped = escape_where(text, terminal_forbidden);
    let trimmed = escaped.trim_start();
    let command_start = trimmed.starts_with("::");
    if !command_start && !escaped.contains("##[") {
        return escaped;
    }
    let mut out = String::with_capacity(escaped.len() + 8);
    let indent = escaped.len() - trimmed.len();
    out.push_str(&escaped[..indent]);
    let mut rest = trimmed;
    if command_start {
        escape(':', &mut out);
        rest = &rest[1..];
    }
    out.push_str(&rest.replace("##[", "\\x23#["));
    Cow::Owned(out)
}

/// Text for the message of a workflow command leakcheck prints itself: terminal controls
/// escaped, except line breaks, which the command's own escaping (`%0A`) keeps.
pub fn annotation(text: &str) -> Cow<'_, str> {
    escape_where(text, |c| terminal_forbidden(c) && c != '\n' && c != '\r')
}

/// Characters XML 1.0 does not allow in a document, as text or as a reference: C0 controls but
/// tab, line feed and carriage return, and U+FFFE and U+FFFF (surrogates cannot be in a `str`).
fn xml_forbidden(c: char) -> bool {
    matches!(c, '\0'..='\x08' | '\x0b' | '\x0c' | '\x0e'..='\x1f' | '\u{fffe}' | '\u{ffff}')
}

/// Text for an XML document (junit.xml): what XML forbids escaped visibly.
pub fn xml(text: &str) -> Cow<'_, str> {
    escape_where(text, xml_forbidden)
}

/// Characters HTML parses as errors: C0 controls but tab, line feed, form feed and carriage
/// return; DEL and C1; and the noncharacters (U+FDD0–U+FDEF and the last two of every plane).
fn html_forbidden(c: char) -> bool {
    let code = u32::from(c);
    (matches!(c, '\0'..='\x08' | '\x0b' | '\x0e'..='\x1f' | '\x7f'..='\u{9f}')
        || (0xfdd0..=0xfdef).contains(&code)
        || code & 0xfffe == 0xfffe)
        && c != '\t'
}

/// A whole rendered HTML document with what HTML forbids escaped visibly. The templates hold no
/// such character, so every one found came from scenario text, already HTML-escaped.
pub fn html(document: &str) -> Cow<'_, str> {
    escape_where(document, html_forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_and_osc_sequences_become_visible_text() {
        assert_eq!(
            terminal("a\x1b]0;pwned\x07b\x1b[2J\0\r\u{9b}c\td"),
            "a\\x1b]0;pwned\\x07b\\x1b[2J\\x00\\x0d\\x9bc\td"
        );
        assert_eq!(terminal("abc\u{202e}def"), "abc\\u202edef");
        assert!(matches!(terminal("plain ünïcode"), Cow::Borrowed(_)));
    }

    #[test]
    fn workflow_commands_from_scenarios_are_defused() {
        assert_eq!(terminal("::error::forged"), "\\x3a:error::forged");
        assert_eq!(terminal("   ::add-mask::x"), "   \\x3a:add-mask::x");
        assert_eq!(terminal("see ##[error]x"), "see \\x23#[error]x");
        // `::` elsewhere in a line is not a command.
        assert!(matches!(terminal("a::b"), Cow::Borrowed(_)));
    }

    #[test]
    fn annotations_keep_their_line_breaks() {
        assert_eq!(annotation("a\x1b[31m\nb"), "a\\x1b[31m\nb");
    }

    #[test]
    fn xml_keeps_what_it_allows_and_escapes_the_rest() {
        assert_eq!(
            xml("a\u{ffff}b\u{fffe}c\x01\td\n"),
            "a\\uffffb\\ufffec\\x01\td\n"
        );
        assert_eq!(xml("\u{1b}"), "\\x1b");
        assert!(matches!(xml("ok \u{fffd} \u{10ffff}"), Cow::Borrowed(_)));
    }

    #[test]
    fn html_escapes_controls_and_noncharacters() {
        assert_eq!(
            html("<p>a\x01b\u{85}c\u{fdd0}\u{1fffe}\n</p>"),
            "<p>a\\x01b\\x85c\\ufdd0\\u1fffe\n</p>"
        );
    }
}
