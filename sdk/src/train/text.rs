//! The second model's data set and weights (docs/training.md, "A second model"): a text
//! corpus (Jane Austen's six novels, `scripts/corpus.sh`) split by byte ranges into a held-out
//! tail and `K` contiguous shards, the language-model guest's weights format (`LMW1`, the
//! guest's `mode=init` written again in Rust, bit for bit) and its jobs' arguments. A round
//! of it is what a round of the digits is: every job reads the same corpus blob and its own
//! `from=`/`to=` range, and the updates are aggregated with [`LmWeights::aggregate`].

use std::ops::Range;
use std::path::PathBuf;

use super::{Aggregate, Result, SplitMix64, TrainError};

/// The file name `scripts/corpus.sh` keeps the corpus as, in the model cache directory.
pub const FILE: &str = "austen.txt";
/// The corpus's size in bytes (the script pins its sha256).
pub const CORPUS_BYTES: usize = 4_025_029;
/// The name the guest reads its weights from, in `/input`.
pub const WEIGHTS_INPUT: &str = "weights.lmw";
/// The name it reads the corpus from, in `/input`.
pub const CORPUS_INPUT: &str = "corpus.txt";
/// The name `mode=train` writes the update (new − old, `LMW1`) to, in `/output`.
pub const UPDATE_OUTPUT: &str = "update.lmw";
/// The header's size: `LMW1` and six u32.
pub const HEADER: usize = 28;
const MAX_PARAMS: u64 = 1 << 22;

/// Where set-up keeps the corpus: [`FILE`] in `$SIETCH_MODEL_DIR`, else in
/// `~/.cache/sietch/models` (in the working directory without a home).
pub fn default_path() -> PathBuf {
    std::env::var_os("SIETCH_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sietch/models")))
        .unwrap_or_default()
        .join(FILE)
}

/// The model's shape, as the weights' header names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LmConfig {
    /// Tokens (bytes) below this, 2..=256.
    pub vocab: u32,
    /// Context: positions a window predicts, 1..=1024.
    pub ctx: u32,
    /// Width of the residual stream, 1..=1024.
    pub d: u32,
    /// Transformer blocks, 1..=8.
    pub layers: u32,
    /// Attention heads, a divisor of `d`.
    pub heads: u32,
    /// Width of each block's MLP, 1..=4096.
    pub ff: u32,
}

impl LmConfig {
    /// The guest's default: 279,424 parameters.
    pub const DEFAULT: Self = Self {
        vocab: 256,
        ctx: 64,
        d: 96,
        layers: 2,
        heads: 4,
        ff: 384,
    };

    /// Its parameter count, after the guest's checks (each bound, at most 2^22 parameters, at
    /// most 2^25 floats of one window's activations).
    pub fn params(&self) -> Result<usize> {
        let bad = |why: &str| Err(TrainError::Weights(format!("{self:?}: {why}")));
        let c = self;
        if !(2..=256).contains(&c.vocab) || !(1..=1024).contains(&c.ctx) {
            return bad("vocab 2..256 and ctx 1..1024");
        }
        if !(1..=1024).contains(&c.d) || !(1..=8).contains(&c.layers) || !(1..=4096).contains(&c.ff)
        {
            return bad("d 1..1024, layers 1..8 and ff 1..4096");
        }
        if c.heads == 0 || !c.d.is_multiple_of(c.heads) {
            return bad("heads must divide d");
        }
        let [v, t, d, l, h, f] = [c.vocab, c.ctx, c.d, c.layers, c.heads, c.ff].map(u64::from);
        let block = 4 * d + 3 * d * d + 3 * d + d * d + d + f * d + f + d * f + d;
        let n = v * d + t * d + l * block + 2 * d + v * d + v;
        if n > MAX_PARAMS {
            return bad("more than 2^22 parameters");
        }
        let work = l * (t * (10 * d + 2 * f + 2) + h * t * t) + t * (10 * d + f + 2 * v + 2) + v;
        if work > 1 << 25 {
            return bad("one window's activations would take more than 2^25 floats");
        }
        usize::try_from(n).map_err(|_| TrainError::Weights("too many parameters".into()))
    }
}

/// A language model's weights (or an update of them): its shape and f32 parameters in the
/// guest's order (docs/training.md).
#[derive(Debug, Clone, PartialEq)]
pub struct LmWeights {
    /// The shape.
    pub config: LmConfig,
    /// The parameters, `config.params()` of them.
    pub params: Vec<f32>,
}

impl LmWeights {
    /// The guest's `mode=init` with `seed`, bit for bit: embeddings and matrices uniform in
    /// ±0.02·√3 (each block's `wo` and `w2` divided by √(2·layers)), LayerNorm gains 1, the rest 0.
    pub fn init(config: LmConfig, seed: u64) -> Result<Self> {
        let n = config.params()?;
        let [v, t, d, f] = [config.vocab, config.ctx, config.d, config.ff].map(|x| x as usize);
        let a = 0.02 * 3f64.sqrt();
        let deep = a / (2.0 * f64::from(config.layers)).sqrt();
        let mut rng = SplitMix64::new(seed);
        let mut p = Vec::with_capacity(n);
        let mut fill = |p: &mut Vec<f32>, count: usize, lim: f64| {
            for _ in 0..count {
                let u = (rng.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0);
                p.push(((2.0 * u - 1.0) * lim) as f32);
            }
        };
        let konst =
            |p: &mut Vec<f32>, count: usize, x: f32| p.extend(std::iter::repeat_n(x, count));
        fill(&mut p, v * d, a);
        fill(&mut p, t * d, a);
        for _ in 0..config.layers {
            konst(&mut p, d, 1.0);
            konst(&mut p, d, 0.0);
            fill(&mut p, 3 * d * d, a);
            konst(&mut p, 3 * d, 0.0);
            fill(&mut p, d * d, deep);
            konst(&mut p, d, 0.0);
            konst(&mut p, d, 1.0);
            konst(&mut p, d, 0.0);
            fill(&mut p, f * d, a);
            konst(&mut p, f, 0.0);
            fill(&mut p, d * f, deep);
            konst(&mut p, d, 0.0);
        }
        konst(&mut p, d, 1.0);
        konst(&mut p, d, 0.0);
        fill(&mut p, v * d, a);
        konst(&mut p, v, 0.0);
        Ok(Self { config, params: p })
    }

    /// The `LMW1` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let c = self.config;
        let mut out = Vec::with_capacity(HEADER + 4 * self.params.len());
        out.extend_from_slice(b"LMW1");
        for x in [c.vocab, c.ctx, c.d, c.layers, c.heads, c.ff] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for p in &self.params {
            out.extend_from_slice(&p.to_le_bytes());
        }
        out
    }

    /// Reads `LMW1` bytes; a wrong magic, a shape the guest refuses or a size that is not the
    /// header plus 4 bytes a parameter is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = |why: String| TrainError::Weights(why);
        let (head, body) = bytes
            .split_at_checked(HEADER)
            .ok_or_else(|| bad("shorter than the header".into()))?;
        let fields: Vec<u32> = head
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok().map(u32::from_le_bytes))
            .collect();
        let &[magic, vocab, ctx, d, layers, heads, ff] = fields.as_slice() else {
            return Err(bad("shorter than the header".into()));
        };
        if magic != u32::from_le_bytes(*b"LMW1") {
            return Err(bad("no LMW1 magic".into()));
        }
        let config = LmConfig {
            vocab,
            ctx,
            d,
            layers,
            heads,
            ff,
        };
        let n = config.params()?;
        if body.len() != 4 * n {
            return Err(bad(format!("{} bytes of parameters for {n}", body.len())));
        }
        let params = body
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok().map(f32::from_le_bytes))
            .collect();
        Ok(Self { config, params })
    }

    /// Adds `update` (the same shape) to these weights, in f32.
    pub fn apply(&mut self, update: &Self) -> Result<()> {
        self.same_shape(update)?;
        for (p, u) in self.params.iter_mut().zip(&update.params) {
            *p += *u;
        }
        Ok(())
    }

    fn same_shape(&self, other: &Self) -> Result<()> {
        if self.config != other.config {
            return Err(TrainError::Weights(format!(
                "shape {:?}, expected {:?}",
                other.config, self.config
            )));
        }
        Ok(())
    }

    /// The updates, in shard order, made one as `how` says, as the digits' are
    /// ([`Weights::aggregate`](super::Weights::aggregate)): the mean (f32 sums in shard order,
    /// then divided by their number) or the coordinate-wise median (the middle value, or the
    /// mean of the two middle ones).
    pub fn aggregate(updates: &[Self], how: Aggregate) -> Result<Self> {
        let first = updates
            .first()
            .ok_or_else(|| TrainError::Weights("no updates to aggregate".into()))?;
        for u in updates {
            first.same_shape(u)?;
        }
        let k = updates.len();
        let mut params = vec![0.0f32; first.params.len()];
        match how {
            Aggregate::Mean => {
                for u in updates {
                    for (o, p) in params.iter_mut().zip(&u.params) {
                        *o += *p;
                    }
                }
                for o in &mut params {
                    *o /= k as f32;
                }
            }
            Aggregate::Median => {
                let mut column = Vec::with_capacity(k);
                for (i, o) in params.iter_mut().enumerate() {
                    column.clear();
                    column.extend(updates.iter().filter_map(|u| u.params.get(i).copied()));
                    column.sort_by(f32::total_cmp);
                    let mid = k / 2;
                    *o = match (column.get(mid.wrapping_sub(1)), column.get(mid)) {
                        (Some(a), Some(b)) if k.is_multiple_of(2) => (*a + *b) / 2.0,
                        (_, Some(m)) => *m,
                        _ => 0.0,
                    };
                }
            }
        }
        Ok(Self {
            config: first.config,
            params,
        })
    }
}

/// A corpus's held-out tail and its `K` shards, as byte ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSplit {
    /// The last `held_out` bytes: evaluated on (`mode=eval`), trained on by no job.
    pub held_out: Range<u32>,
    /// Contiguous ranges of the rest, in order, their sizes differing by at most one byte.
    pub shards: Vec<Range<u32>>,
}

impl TextSplit {
    /// Splits `len` bytes; each shard and the held-out tail must hold at least `ctx + 1`.
    pub fn new(len: usize, shards: u32, held_out: u32, ctx: u32) -> Result<Self> {
        let len =
            u32::try_from(len).map_err(|_| TrainError::Config("a corpus over 4 GiB".into()))?;
        let min = u64::from(ctx) + 1;
        let train = len.saturating_sub(held_out);
        if shards == 0 || u64::from(held_out) < min || u64::from(train) < min * u64::from(shards) {
            return Err(TrainError::Config(format!(
                "{len} bytes cannot make {shards} shards and a held-out tail of {held_out}, \
                 each at least ctx + 1 = {min} bytes"
            )));
        }
        let (base, extra) = (train / shards, train % shards);
        let mut at = 0;
        let ranges = (0..shards)
            .map(|k| {
                let size = base + u32::from(k < extra);
                at += size;
                at - size..at
            })
            .collect();
        Ok(Self {
            held_out: train..len,
            shards: ranges,
        })
    }
}

/// A training job's arguments for shard `range`: `steps` AdamW steps of `batch` windows.
pub fn train_args(range: &Range<u32>, steps: u32, batch: u32, lr: f32, seed: u64) -> Vec<String> {
    vec![
        "mode=train".into(),
        format!("steps={steps}"),
        format!("batch={batch}"),
        format!("lr={lr}"),
        format!("seed={seed}"),
        format!("from={}", range.start),
        format!("to={}", range.end),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// See `init_is_the_guests`.
    const INIT_SEED_1_BLAKE3: &str =
        "a53baee298a9838603be234c0591e9c123e855a39445dcdccf35b3a9f0fced3f";

    #[test]
    fn the_default_model_has_the_guests_parameter_count_and_bad_shapes_are_refused() {
        assert_eq!(LmConfig::DEFAULT.params().unwrap(), 279_424);
        let tiny = LmConfig {
            vocab: 256,
            ctx: 16,
            d: 32,
            layers: 2,
            heads: 4,
            ff: 64,
        };
        assert_eq!(tiny.params().unwrap(), 34_304);
        for bad in [
            LmConfig {
                heads: 5,
                ..LmConfig::DEFAULT
            },
            LmConfig {
                vocab: 257,
                ..LmConfig::DEFAULT
            },
            LmConfig {
                layers: 9,
                ..LmConfig::DEFAULT
            },
            LmConfig {
                d: 1024,
                ff: 4096,
                layers: 8,
                ..LmConfig::DEFAULT
            },
            LmConfig {
                ctx: 1024,
                heads: 96,
                ..LmConfig::DEFAULT
            },
        ] {
            assert!(bad.params().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn weights_round_trip_apply_and_aggregate() {
        let w = LmWeights::init(LmConfig::DEFAULT, 1).unwrap();
        let bytes = w.encode();
        assert_eq!(bytes.len(), HEADER + 4 * 279_424);
        assert_eq!(LmWeights::decode(&bytes).unwrap(), w);
        assert!(LmWeights::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(LmWeights::decode(&[&b"LMW2"[..], &bytes[4..]].concat()).is_err());
        let mut twice = w.clone();
        twice.apply(&w).unwrap();
        assert_eq!(twice.params[7], 2.0 * w.params[7]);
        let mean = LmWeights::aggregate(&[w.clone(), twice], Aggregate::Mean).unwrap();
        assert_eq!(mean.params[7], 1.5 * w.params[7]);
        let other = LmWeights::init(
            LmConfig {
                ff: 128,
                ..LmConfig::DEFAULT
            },
            1,
        )
        .unwrap();
        assert!(LmWeights::aggregate(&[w, other], Aggregate::Mean).is_err());
    }

    /// blake3 of the guest's `mode=init seed=1` output (sandbox/tests/train_lm.rs pins the
    /// guest to the same hash): the Rust init is the guest's, bit for bit.
    #[test]
    fn init_is_the_guests() {
        let w = LmWeights::init(LmConfig::DEFAULT, 1).unwrap();
        assert_eq!(
            blake3::hash(&w.encode()).to_hex().as_str(),
            INIT_SEED_1_BLAKE3
        );
    }

    #[test]
    fn the_split_covers_the_corpus_in_order() {
        let s = TextSplit::new(CORPUS_BYTES, 3, 4097, 64).unwrap();
        assert_eq!(s.held_out, 4_020_932..4_025_029);
        assert_eq!(
            s.shards,
            [0..1_340_311, 1_340_311..2_680_622, 2_680_622..4_020_932]
        );
        assert!(TextSplit::new(1000, 3, 64, 64).is_err());
        assert!(TextSplit::new(200, 3, 65, 64).is_err());
        assert!(TextSplit::new(1000, 0, 65, 64).is_err());
        let args = train_args(&s.shards[1], 15, 8, 0.003, 7);
        assert_eq!(
            args[3..],
            ["lr=0.003", "seed=7", "from=1340311", "to=2680622"]
        );
    }
}
