//! The keystore's password: from a file, `$SIETCH_KEYSTORE_PASSWORD` or the terminal, in
//! that order; wiped from memory when dropped.

use std::fmt;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::files::{Bounded, read_bounded};
use super::{KeyError, MIN_PASSWORD_CHARS, PASSWORD_ENV};
use crate::config::KeysConfig;

/// A password file larger than this is not a password file.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

/// A password: wiped from memory when dropped, never printed.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: String) -> Self {
        Self(Zeroizing::new(password))
    }

    pub(super) fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<secret>)")
    }
}

/// Where a password came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordSource {
    /// A file (`keys.password_file`, `--password-file`).
    File(PathBuf),
    /// `$SIETCH_KEYSTORE_PASSWORD`.
    Env,
    /// A prompt on the terminal.
    Prompt,
}

impl fmt::Display for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "the password file {}", p.display()),
            Self::Env => write!(f, "${PASSWORD_ENV}"),
            Self::Prompt => f.write_str("the terminal"),
        }
    }
}

/// What a password is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordUse {
    /// Opening an existing keystore.
    Unlock,
    /// Making a new keystore: at least [`MIN_PASSWORD_CHARS`], asked twice on a terminal.
    New,
}

/// The password for `keystore`: from `cfg.password_file` if set, else from
/// `$SIETCH_KEYSTORE_PASSWORD`, else asked on the terminal (twice for a new keystore); an
/// error when none of them is there.
pub fn password(
    cfg: &KeysConfig,
    keystore: &Path,
    usage: PasswordUse,
) -> Result<(Password, PasswordSource), KeyError> {
    let env = std::env::var_os(PASSWORD_ENV);
    let terminal = std::io::stdin().is_terminal();
    password_from(cfg, keystore, usage, env, terminal)
}

pub(super) fn password_from(
    cfg: &KeysConfig,
    keystore: &Path,
    usage: PasswordUse,
    env: Option<std::ffi::OsString>,
    terminal: bool,
) -> Result<(Password, PasswordSource), KeyError> {
    let (pw, from) = if let Some(path) = &cfg.password_file {
        let from = PasswordSource::File(path.clone());
        (read_password_file(path, &from)?, from)
    } else if let Some(v) = env {
        let text = v.into_string().map_err(|_| KeyError::BadPassword {
            from: PasswordSource::Env,
            why: "not UTF-8 text",
        })?;
        (Password::new(text), PasswordSource::Env)
    } else if terminal {
        (prompt(keystore, usage)?, PasswordSource::Prompt)
    } else {
        return Err(KeyError::NoPassword {
            keystore: keystore.to_owned(),
        });
    };
    if pw.0.is_empty() {
        return Err(KeyError::BadPassword { from, why: "empty" });
    }
    if usage == PasswordUse::New && pw.0.chars().count() < MIN_PASSWORD_CHARS {
        return Err(KeyError::WeakPassword { from });
    }
    Ok((pw, from))
}

/// A warning when the password file (if one is set) can be read by other users than its
/// owner: the password is as good as the file's permissions.
pub fn password_file_warning(cfg: &KeysConfig) -> Option<String> {
    let path = cfg.password_file.as_ref()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "the keystore's password file {} can be read by other users (mode {mode:o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

/// The first line of a password file, without its line ending.
fn read_password_file(path: &Path, from: &PasswordSource) -> Result<Password, KeyError> {
    let err = |source| KeyError::PasswordFile {
        path: path.to_owned(),
        source,
    };
    let bytes = Zeroizing::new(read_bounded(path, MAX_PASSWORD_FILE_BYTES).map_err(
        |e| match e {
            Bounded::Io(source) => err(source),
            Bounded::TooLarge => KeyError::BadPassword {
                from: from.clone(),
                why: "in a file over 4 KiB",
            },
        },
    )?);
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyError::BadPassword {
        from: from.clone(),
        why: "not UTF-8 text",
    })?;
    let line = text.lines().next().unwrap_or("");
    Ok(Password::new(line.to_owned()))
}

fn prompt(keystore: &Path, usage: PasswordUse) -> Result<Password, KeyError> {
    let ask = |p: String| {
        rpassword::prompt_password(p)
            .map(Password::new)
            .map_err(KeyError::Prompt)
    };
    match usage {
        PasswordUse::Unlock => ask(format!(
            "Password for the keystore {}: ",
            keystore.display()
        )),
        PasswordUse::New => {
            let first = ask(format!(
                "New password for the keystore {} (at least {MIN_PASSWORD_CHARS} characters): ",
                keystore.display()
            ))?;
            let again = ask("The same password again: ".into())?;
            if first.bytes() != again.bytes() {
                return Err(KeyError::PasswordsDiffer);
            }
            Ok(first)
        }
    }
}
