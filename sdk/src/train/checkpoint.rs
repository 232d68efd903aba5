//! The directory a run stops and resumes from, written after every round:
//!
//! - `weights-NNNN.swt`: the weights after round `NNNN` (`SWT1`, the guest's format);
//! - `checkpoint.json`: the round, that weights file and its blake3 hash, the data set's
//!   hash, the configuration and every round's report. It is written last, to a temporary
//!   file renamed over the old one, so a run stopped at any moment leaves a checkpoint that
//!   names a complete weights file; older weights files are removed after it;
//! - `history.json`: the rounds' reports alone, for plots and scripts.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::driver::RoundReport;
use super::weights::Weights;
use super::{Result, TrainError, io_error};

/// The checkpoint's file name.
pub const FILE: &str = "checkpoint.json";
/// The history's file name.
pub const HISTORY: &str = "history.json";
/// The format's version.
const VERSION: u32 = 1;
/// The largest checkpoint file read.
const MAX_JSON: u64 = 64 << 20;

/// A run's state after a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Rounds done.
    pub round: u32,
    /// blake3 of the data set's file.
    pub data: String,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The weights after `round` rounds.
    pub weights: Weights,
    /// Every round's report.
    pub history: Vec<RoundReport>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    round: u32,
    weights_file: String,
    weights_hash: String,
    data: String,
    config: TrainConfig,
    history: Vec<RoundReport>,
}

fn weights_file(round: u32) -> String {
    format!("weights-{round:04}.swt")
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
    let to = dir.join(name);
    std::fs::rename(&tmp, &to).map_err(io_error(&to))
}

impl Checkpoint {
    /// Whether `dir` holds a checkpoint.
    pub fn exists(dir: &Path) -> bool {
        dir.join(FILE).is_file()
    }

    /// Writes the checkpoint into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let bytes = self.weights.encode();
        let name = weights_file(self.round);
        write_atomic(dir, &name, &bytes)?;
        let disk = OnDisk {
            version: VERSION,
            round: self.round,
            weights_file: name.clone(),
            weights_hash: format!("0x{}", blake3::hash(&bytes).to_hex()),
            data: self.data.clone(),
            config: self.config.clone(),
            history: self.history.clone(),
        };
        write_atomic(dir, HISTORY, &pretty(&self.history))?;
        write_atomic(dir, FILE, &pretty(&disk))?;
        // Older weights are no longer named by the checkpoint.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("weights-") && n.ends_with(".swt") && n != name {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// Reads the checkpoint in `dir`, its weights checked against the hash it names.
    pub fn load(dir: &Path) -> Result<Self> {
        let bad = |why: String| TrainError::Checkpoint {
            dir: dir.display().to_string(),
            why,
        };
        let path = dir.join(FILE);
        let meta = std::fs::metadata(&path).map_err(io_error(&path))?;
        if meta.len() > MAX_JSON {
            return Err(bad(format!("{FILE} is over {MAX_JSON} bytes")));
        }
        let text = std::fs::read(&path).map_err(io_error(&path))?;
        let disk: OnDisk =
            serde_json::from_slice(&text).map_err(|e| bad(format!("{FILE}: {e}")))?;
        if disk.version != VERSION {
            return Err(bad(format!(
                "format version {}, not {VERSION}",
                disk.version
            )));
        }
        if disk.weights_file != weights_file(disk.round) {
            return Err(bad(format!("it names {:?}", disk.weights_file)));
        }
        let wpath = dir.join(&disk.weights_file);
        let bytes = std::fs::read(&wpath).map_err(io_error(&wpath))?;
        if format!("0x{}", blake3::hash(&bytes).to_hex()) != disk.weights_hash {
            return Err(bad(format!(
                "{} does not have the hash it names",
                disk.weights_file
            )));
        }
        if disk.history.len() != disk.round as usize {
            return Err(bad(format!(
                "{} rounds done but {} reports",
                disk.round,
                disk.history.len()
            )));
        }
        Ok(Self {
            round: disk.round,
            data: disk.data,
            config: disk.config,
            weights: Weights::decode(&bytes)?,
            history: disk.history,
        })
    }
}

/// Pretty JSON of plain data (numbers, strings, vectors: it always serializes).
fn pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::eval::Evaluation;

    fn report(round: u32) -> RoundReport {
        RoundReport {
            round,
            train_loss: 1.5,
            held_out: Evaluation {
                loss: 1.25,
                accuracy: 0.5,
                samples: 297,
            },
            paid: "12".into(),
            jobs: 3,
            resubmits: 1,
            dropped: 1,
            failed: 0,
            fuel: 1000,
            millis: 20,
            providers: vec!["0xa".into()],
        }
    }

    #[test]
    fn a_checkpoint_round_trips_and_keeps_only_its_weights() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!Checkpoint::exists(dir.path()));
        let mut c = Checkpoint {
            round: 1,
            data: "0xd".into(),
            config: TrainConfig::default(),
            weights: Weights::init(&[64, 32, 10], 3).unwrap(),
            history: vec![report(1)],
        };
        c.save(dir.path()).unwrap();
        c.round = 2;
        c.history.push(report(2));
        c.weights = Weights::init(&[64, 32, 10], 4).unwrap();
        c.save(dir.path()).unwrap();
        assert!(Checkpoint::exists(dir.path()));
        assert_eq!(Checkpoint::load(dir.path()).unwrap(), c);
        assert!(!dir.path().join("weights-0001.swt").exists());
        assert!(dir.path().join("weights-0002.swt").exists());
        let h: Vec<RoundReport> =
            serde_json::from_slice(&std::fs::read(dir.path().join(HISTORY)).unwrap()).unwrap();
        assert_eq!(h, c.history);

        // Weights changed behind its back are refused.
        std::fs::write(dir.path().join("weights-0002.swt"), b"SWT1").unwrap();
        let e = Checkpoint::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("does not have the hash"), "{e}");
    }
}
