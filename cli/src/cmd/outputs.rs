//! Writing a job's `/output` files into a directory of the buyer's disk.
//!
//! The names are a provider's choice (or, for `job run --local`, a module's), so each must
//! pass the protocol's one rule (`sietch_market::check_file_name`: flat, at most 255 bytes,
//! printable) before anything is written. A file is created only where nothing is: an existing
//! file (a `.bashrc`) or symbolic link is left as it is, unless `--overwrite` is given; then
//! the new file is written beside it and renamed over it, which replaces a symbolic link
//! rather than following it. Every file not written is named, escaped, with why.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

use super::client::show;

/// What happened to one output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Written.
    Written,
    /// Not written: something is already there (`--overwrite` replaces it).
    Skipped(String),
    /// Not written: its name breaks the rule, its bytes are unreadable, or writing failed.
    Refused(String),
}

/// What happened to each output file, by name (as received).
#[derive(Debug, Default)]
pub(crate) struct Report {
    files: Vec<(String, Fate)>,
}

impl Report {
    /// How many files were written.
    pub(crate) fn written(&self) -> usize {
        self.files
            .iter()
            .filter(|(_, f)| *f == Fate::Written)
            .count()
    }

    /// One line per file not written, its name escaped.
    pub(crate) fn problems(&self) -> Vec<String> {
        self.files
            .iter()
            .filter_map(|(name, fate)| match fate {
                Fate::Written => None,
                Fate::Skipped(why) => Some(format!("skipped \"{}\": {why}", show(name))),
                Fate::Refused(why) => Some(format!("refused \"{}\": {why}", show(name))),
            })
            .collect()
    }

    /// Prints the files not written to stderr.
    pub(crate) fn print_problems(&self) {
        for p in self.problems() {
            eprintln!("{p}");
        }
    }

    /// An error when any file was not written (after the rest was), so that scripts notice.
    pub(crate) fn check(&self, dir: &Path) -> anyhow::Result<()> {
        let missing = self.files.len() - self.written();
        anyhow::ensure!(
            missing == 0,
            "{missing} of the job's {} /output files not written to {} (listed above)",
            self.files.len(),
            dir.display()
        );
        Ok(())
    }
}

/// Writes `files` (name, bytes — or why the bytes are unreadable) into `dir`, which is
/// created if missing. Only an unusable `dir` is an error; each file's fate is in the report.
pub(crate) fn write_all<'a>(
    dir: &Path,
    files: impl IntoIterator<Item = (&'a str, Result<Vec<u8>, String>)>,
    overwrite: bool,
) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut report = Report::default();
    for (name, bytes) in files {
        let fate = match (sietch_market::check_file_name(name), bytes) {
            (Err(e), _) => Fate::Refused(format!("not a valid file name: {e}")),
            (Ok(()), Err(why)) => Fate::Refused(why),
            (Ok(()), Ok(bytes)) => write_one(dir, name, &bytes, overwrite),
        };
        report.files.push((name.to_owned(), fate));
    }
    Ok(report)
}

/// Writes one file whose name passed the rule.
fn write_one(dir: &Path, name: &str, bytes: &[u8], overwrite: bool) -> Fate {
    let path = dir.join(name);
    if !overwrite {
        // `create_new` is O_CREAT|O_EXCL: it fails on anything already there, a symbolic
        // link included (dangling or not), and never follows one.
        return match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => fill(f, bytes, &path),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let link =
                    std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
                Fate::Skipped(if link {
                    "a symbolic link is there (not followed; --overwrite replaces the link)".into()
                } else {
                    "a file is already there (--overwrite replaces it)".into()
                })
            }
            Err(e) => Fate::Refused(format!("cannot create it: {e}")),
        };
    }
    // Overwrite: a new file beside it, renamed over it (atomic; a symbolic link there is
    // replaced, not followed; a directory there is refused by `rename`).
    let (tmp, file) = match temp_file(dir) {
        Ok(t) => t,
        Err(e) => return Fate::Refused(format!("cannot create a file in the directory: {e}")),
    };
    match fill(file, bytes, &tmp) {
        Fate::Written => {}
        other => return other,
    }
    match std::fs::rename(&tmp, &path) {
        Ok(()) => Fate::Written,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Fate::Refused(format!("cannot replace what is there: {e}"))
        }
    }
}

/// Writes `bytes` into the new file `f` at `path`; removes it when that fails.
fn fill(mut f: File, bytes: &[u8], path: &Path) -> Fate {
    match f.write_all(bytes).and_then(|()| f.sync_all()) {
        Ok(()) => Fate::Written,
        Err(e) => {
            drop(f);
            let _ = std::fs::remove_file(path);
            Fate::Refused(format!("cannot write it: {e}"))
        }
    }
}

/// A new, empty file in `dir` with a name no job output can take by accident.
fn temp_file(dir: &Path) -> std::io::Result<(std::path::PathBuf, File)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut last = None;
    for _ in 0..16 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = dir.join(format!(
            ".sietch-output-{}-{nanos}-{n}.part",
            std::process::id()
        ));
        match OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(b: &[u8]) -> Result<Vec<u8>, String> {
        Ok(b.to_vec())
    }

    #[test]
    fn names_are_checked_and_nothing_is_overwritten_or_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".bashrc"), "mine").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        let files = [
            ("good", ok(b"1")),
            (".bashrc", ok(b"theirs")),
            ("link", ok(b"theirs")),
            ("../x", ok(b"x")),
            ("a\\b", ok(b"x")),
            ("\x1b[2J", ok(b"x")),
            ("nul\0", ok(b"x")),
            ("bad64", Err("not base64".into())),
        ];
        let r = write_all(&dir, files.clone(), false).unwrap();
        assert_eq!(r.written(), 1);
        assert_eq!(std::fs::read(dir.join("good")).unwrap(), b"1");
        assert_eq!(std::fs::read(dir.join(".bashrc")).unwrap(), b"mine");
        assert!(!outside.exists());
        assert!(!tmp.path().join("x").exists());
        let p = r.problems().join("\n");
        assert!(
            p.contains("skipped \".bashrc\": a file is already there"),
            "{p}"
        );
        assert!(p.contains("skipped \"link\": a symbolic link"), "{p}");
        assert!(p.contains("refused \"\\u{1b}[2J\""), "{p}");
        assert!(
            p.contains("refused \"a\\\\b\": not a valid file name"),
            "{p}"
        );
        assert!(!p.contains('\x1b') && !p.contains('\0'), "{p}");
        assert!(r.check(&dir).is_err());

        // --overwrite: the file replaced, the link replaced by a file, its target untouched.
        let r = write_all(&dir, files, true).unwrap();
        assert_eq!(r.written(), 3);
        assert_eq!(std::fs::read(dir.join(".bashrc")).unwrap(), b"theirs");
        assert!(
            !std::fs::symlink_metadata(dir.join("link"))
                .unwrap()
                .is_symlink()
        );
        assert!(!outside.exists());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".part"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
