//! The one rule for a file name in a job's `/input` and `/output`, and for printing text that
//! came from a stranger.
//!
//! Input names come from a buyer, output names from a provider; both end up as file names on
//! someone else's disk and in someone else's terminal. A name is **flat** (no directory part),
//! **bounded** and **printable**: [`check_file_name`] says which part of the rule a name breaks.
//! The sandbox refuses to create a file whose name breaks it, the API refuses such an input, the
//! buyer refuses a result carrying one, and the CLI writes only names that pass.
//!
//! [`printable`] escapes what a terminal would act on (control characters, escape sequences,
//! bidirectional overrides) in any text from a peer (job notes, refusal messages, file names)
//! before it is shown.

use std::fmt::Write as _;

/// The longest name, in bytes (a common file-system limit).
pub const MAX_FILE_NAME: usize = 255;

/// Why a name is not a valid job file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The empty string.
    #[error("the name is empty")]
    Empty,
    /// Over [`MAX_FILE_NAME`] bytes.
    #[error("the name is {0} bytes, over the limit of {MAX_FILE_NAME}")]
    TooLong(usize),
    /// `.` or `..`.
    #[error("`.` and `..` are not file names")]
    Dots,
    /// It has a `/` or `\`: a path, not a name.
    #[error("the name has a path separator (`/` or `\\`)")]
    Separator,
    /// It has a character a terminal acts on or that hides what follows.
    #[error("the name has a control or direction-changing character (U+{0:04X})")]
    Unprintable(u32),
}

/// Checks `name` against the rule: not empty, at most [`MAX_FILE_NAME`] bytes, not `.` or
/// `..`, no `/` or `\`, no control character (NUL and escape included) and no bidirectional
/// override or isolate.
pub fn check_file_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_FILE_NAME {
        return Err(NameError::TooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(NameError::Dots);
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::Separator);
    }
    match name.chars().find(|&c| unprintable(c)) {
        Some(c) => Err(NameError::Unprintable(u32::from(c))),
        None => Ok(()),
    }
}

/// Control characters (C0, DEL, C1) and the bidirectional embeddings, overrides and isolates
/// (U+202A..U+202E, U+2066..U+2069), which reorder how the rest of a line is shown.
fn unprintable(c: char) -> bool {
    c.is_control()
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `text` with every character [`check_file_name`] calls unprintable written as `\u{…}`
/// (and `\` as `\\`, so the escaping is unambiguous): safe to print to a terminal.
/// Newlines and tabs are escaped too: a peer's text stays on its line.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if unprintable(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_refuses_paths_dots_controls_and_overrides() {
        for ok in [
            "out.bin",
            ".bashrc",
            "日本語.txt",
            "a b",
            "x".repeat(255).as_str(),
        ] {
            assert_eq!(check_file_name(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(check_file_name(""), Err(NameError::Empty));
        assert_eq!(
            check_file_name(&"x".repeat(256)),
            Err(NameError::TooLong(256))
        );
        assert_eq!(check_file_name(".."), Err(NameError::Dots));
        assert_eq!(check_file_name("."), Err(NameError::Dots));
        for sep in ["../../etc/passwd", "a/b", "a\\b", "/abs"] {
            assert_eq!(check_file_name(sep), Err(NameError::Separator), "{sep:?}");
        }
        assert_eq!(check_file_name("a\0b"), Err(NameError::Unprintable(0)));
        assert_eq!(
            check_file_name("\x1b[2J"),
            Err(NameError::Unprintable(0x1b))
        );
        assert_eq!(check_file_name("a\nb"), Err(NameError::Unprintable(0x0a)));
        assert_eq!(
            check_file_name("\u{9b}c"),
            Err(NameError::Unprintable(0x9b))
        );
        assert_eq!(
            check_file_name("gpj.\u{202e}exe"),
            Err(NameError::Unprintable(0x202e))
        );
    }

    #[test]
    fn printable_escapes_what_a_terminal_acts_on() {
        assert_eq!(printable("plain text"), "plain text");
        assert_eq!(printable("\x1b]0;title\x07"), "\\u{1b}]0;title\\u{7}");
        assert_eq!(printable("a\r\nb"), "a\\u{d}\\u{a}b");
        assert_eq!(printable("back\\slash"), "back\\\\slash");
        assert_eq!(printable("\u{202e}txt"), "\\u{202e}txt");
        // The escaped form is itself printable and never shorter.
        let nasty = "\x1b[2J\x1b]0;pwned\x07\u{9b}31m";
        assert!(printable(nasty).chars().all(|c| !unprintable(c)));
    }
}
