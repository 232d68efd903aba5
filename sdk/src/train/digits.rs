//! The handwritten-digits set of scikit-learn (`sklearn/datasets/data/digits.csv.gz`: 1,797
//! images of 8×8 pixels valued 0–16, each row 64 pixels then the label), its deterministic
//! split into a held-out set and `K` shards, and the shard format the training guest reads
//! (`SDG1`).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Result, SplitMix64, TrainError, io_error};

/// Pixels per image.
pub const PIXELS: usize = 64;
/// Largest pixel value.
pub const MAX_PIXEL: u8 = 16;
/// Classes (the digits 0 to 9).
pub const CLASSES: u8 = 10;
/// The file name set-up extracts the data set to, in the model cache directory.
pub const FILE: &str = "digits.csv.gz";
/// Where set-up keeps the data set (`scripts/digits.sh`): [`FILE`] in `$SIETCH_MODEL_DIR`,
/// else in `~/.cache/sietch/models` (in the working directory without a home).
pub fn default_path() -> PathBuf {
    std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sietch/models")))
        .unwrap_or_default()
        .join(FILE)
}

/// [`default_path`], if the data set is there.
pub fn cached() -> Option<PathBuf> {
    let p = default_path();
    p.is_file().then_some(p)
}

/// The largest data file read (the real one is about 58 kB compressed, 500 kB plain).
const MAX_BYTES: u64 = 16 << 20;

/// One image and its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Pixels, row by row, each 0 to 16.
    pub pixels: [u8; PIXELS],
    /// The digit.
    pub label: u8,
}

/// The data set, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digits {
    /// The samples.
    pub samples: Vec<Sample>,
    /// blake3 of the file as read (compressed or not): a checkpoint names the data it trained on.
    pub hash: String,
}

/// The held-out set and the shards of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Samples the driver evaluates on and no job trains on.
    pub held_out: Vec<Sample>,
    /// The shards, one per job of a round.
    pub shards: Vec<Vec<Sample>>,
}

impl Digits {
    /// Reads the data set from `path`: the CSV, gzip-compressed (`.gz`, by its magic bytes)
    /// or plain.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        let mut raw = Vec::new();
        file.take(MAX_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(io_error(path))?;
        if raw.len() as u64 > MAX_BYTES {
            return Err(TrainError::Data(format!(
                "{} is over {MAX_BYTES} bytes: not the digits set",
                path.display()
            )));
        }
        Self::from_bytes(&raw)
    }

    /// Reads the data set from a file's bytes (gzip or plain CSV).
    pub fn from_bytes(raw: &[u8]) -> Result<Self> {
        let hash = format!("0x{}", blake3::hash(raw).to_hex());
        let text = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw)
                .take(MAX_BYTES * 8 + 1)
                .read_to_end(&mut out)
                .map_err(|e| TrainError::Data(format!("not a readable gzip file: {e}")))?;
            out
        } else {
            raw.to_vec()
        };
        let text = std::str::from_utf8(&text)
            .map_err(|_| TrainError::Data("the CSV is not text".into()))?;
        let samples = parse_csv(text)?;
        Ok(Self { samples, hash })
    }

    /// A deterministic split: the samples' indices shuffled by splitmix64 from `seed`
    /// (Fisher–Yates from the top, as the guest shuffles: for `i` from `n − 1` down to 1,
    /// swap `i` with `below(i + 1)`, Lemire's multiply-shift), the first `held_out` kept aside, the rest dealt to
    /// `shards` shards in turn (shard `k` gets positions `k`, `k + K`, ...).
    pub fn split(&self, seed: u64, held_out: usize, shards: usize) -> Result<Split> {
        let n = self.samples.len();
        if shards == 0 || held_out + shards > n {
            return Err(TrainError::Config(format!(
                "{n} samples cannot make {held_out} held out and {shards} shards of at least one"
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = SplitMix64::new(seed);
        for i in (1..n).rev() {
            let j = rng.below(i + 1);
            order.swap(i, j);
        }
        let pick = |i: &usize| self.samples.get(*i).copied();
        let held: Vec<Sample> = order.iter().take(held_out).filter_map(pick).collect();
        let mut out = vec![Vec::new(); shards];
        for (k, i) in order.iter().skip(held_out).enumerate() {
            if let (Some(shard), Some(s)) = (out.get_mut(k % shards), pick(i)) {
                shard.push(s);
            }
        }
        Ok(Split {
            held_out: held,
            shards: out,
        })
    }
}

/// Parses the CSV: 65 numbers a line (64 pixels, then the label), written as integers or
/// as floats with an integral value (scikit-learn writes `0.0`); blank lines skipped.
fn parse_csv(text: &str) -> Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| TrainError::Data(format!("line {}: {why}", i + 1));
        let mut values = [0u8; PIXELS + 1];
        let mut count = 0;
        for field in line.split(',') {
            let v: f64 = field
                .trim()
                .parse()
                .map_err(|_| bad(&format!("{field:?} is not a number")))?;
            let slot = values
                .get_mut(count)
                .ok_or_else(|| bad("more than 65 values"))?;
            if v.fract() != 0.0 || !(0.0..=f64::from(MAX_PIXEL)).contains(&v) {
                return Err(bad(&format!(
                    "{field:?} is not a whole number from 0 to 16"
                )));
            }
            *slot = v as u8;
            count += 1;
        }
        if count != PIXELS + 1 {
            return Err(bad(&format!("{count} values, not 65")));
        }
        let (&label, rest) = values.split_last().ok_or_else(|| bad("no values"))?;
        if label >= CLASSES {
            return Err(bad(&format!("label {label} is not a digit")));
        }
        let pixels = <[u8; PIXELS]>::try_from(rest).map_err(|_| bad("no pixels"))?;
        samples.push(Sample { pixels, label });
    }
    if samples.is_empty() {
        return Err(TrainError::Data("no samples".into()));
    }
    Ok(samples)
}

/// The shard file the training guest reads: `SDG1`, u32 `n`, u32 `d` = 64 (little-endian),
/// then `n` records of 64 pixel bytes and a label byte.
pub fn encode_sdg(samples: &[Sample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + samples.len() * (PIXELS + 1));
    out.extend_from_slice(b"SDG1");
    out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    out.extend_from_slice(&(PIXELS as u32).to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.pixels);
        out.push(s.label);
    }
    out
}

/// Reads a shard file back (the inverse of [`encode_sdg`]).
pub fn decode_sdg(bytes: &[u8]) -> Result<Vec<Sample>> {
    let bad = |why: &str| TrainError::Data(format!("a shard file: {why}"));
    let (magic, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("shorter than its header"))?;
    let (n, rest) = le_u32(rest).ok_or_else(|| bad("shorter than its header"))?;
    let (d, body) = le_u32(rest).ok_or_else(|| bad("shorter than its header"))?;
    if magic != b"SDG1" {
        return Err(bad("no SDG1 magic"));
    }
    if d as usize != PIXELS {
        return Err(bad(&format!("{d} pixels a record, not {PIXELS}")));
    }
    if body.len() != (n as usize).saturating_mul(PIXELS + 1) {
        return Err(bad(&format!("{} bytes for {n} records", body.len())));
    }
    Ok(body
        .chunks_exact(PIXELS + 1)
        .filter_map(|r| {
            let (&label, pixels) = r.split_last()?;
            Some(Sample {
                pixels: pixels.try_into().ok()?,
                label,
            })
        })
        .collect())
}

/// A little-endian u32 at the start of `bytes`, and what follows it.
pub(crate) fn le_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (w, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*w), rest))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` made-up samples: pixel `j` of sample `i` is `(i + j) % 17`, the label `i % 10`.
    pub(crate) fn csv(n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            for j in 0..PIXELS {
                s.push_str(&format!("{}.0,", (i + j) % 17));
            }
            s.push_str(&format!("{}\n", i % 10));
        }
        s
    }

    #[test]
    fn the_csv_is_read_plain_or_gzipped() {
        let text = csv(30);
        let plain = Digits::from_bytes(text.as_bytes()).unwrap();
        assert_eq!(plain.samples.len(), 30);
        assert_eq!(plain.samples[3].label, 3);
        assert_eq!(plain.samples[3].pixels[2], 5);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let unzipped = Digits::from_bytes(&gz).unwrap();
        assert_eq!(unzipped.samples, plain.samples);
        assert_ne!(unzipped.hash, plain.hash, "the hash is of the file as read");
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        for (bad, says) in [
            ("1,2,3\n", "3 values"),
            (&format!("{}17\n", "0,".repeat(64)), "whole number"),
            (&format!("{}1.5\n", "0,".repeat(64)), "whole number"),
            (&format!("{}x\n", "0,".repeat(64)), "not a number"),
            ("", "no samples"),
        ] {
            let e = Digits::from_bytes(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let gz_garbage = [0x1f, 0x8b, 0, 1, 2, 3];
        assert!(Digits::from_bytes(&gz_garbage).is_err());
    }

    #[test]
    fn the_split_is_deterministic_disjoint_and_whole() {
        let d = Digits::from_bytes(csv(103).as_bytes()).unwrap();
        let a = d.split(42, 13, 4).unwrap();
        assert_eq!(a, d.split(42, 13, 4).unwrap());
        assert_ne!(a, d.split(43, 13, 4).unwrap());
        assert_eq!(a.held_out.len(), 13);
        let sizes: Vec<usize> = a.shards.iter().map(Vec::len).collect();
        assert_eq!(sizes, [23, 23, 22, 22]);
        // Every sample exactly once (samples are distinct by their first pixel and label).
        let mut all: Vec<(u8, u8)> = a
            .held_out
            .iter()
            .chain(a.shards.iter().flatten())
            .map(|s| (s.pixels[0], s.label))
            .collect();
        let mut want: Vec<(u8, u8)> = d.samples.iter().map(|s| (s.pixels[0], s.label)).collect();
        all.sort_unstable();
        want.sort_unstable();
        assert_eq!(all, want);
        assert!(d.split(1, 100, 4).is_err());
        assert!(d.split(1, 10, 0).is_err());
    }

    #[test]
    fn shards_round_trip_through_the_guest_format() {
        let d = Digits::from_bytes(csv(7).as_bytes()).unwrap();
        let bytes = encode_sdg(&d.samples);
        assert_eq!(&bytes[..4], b"SDG1");
        assert_eq!(bytes.len(), 12 + 7 * 65);
        assert_eq!(decode_sdg(&bytes).unwrap(), d.samples);
        assert!(decode_sdg(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_sdg(b"SDG2\0\0\0\0\x40\0\0\0").is_err());
    }
}
