//! The weights of a multilayer perceptron in the training guest's format (`SWT1`), their
//! deterministic initialisation, and the aggregation of the shards' updates (which use the
//! same format: new − old).
//!
//! `SWT1`, then u32 `n_layers`, then u32 `dims[n_layers + 1]` (inputs first, classes last),
//! then f32 parameters layer by layer: `W` (out × in, row-major), then `b` (out); all
//! little-endian.

use super::digits::le_u32;
use super::{Result, SplitMix64, TrainError};

/// Most layers a model may have (the guest's `MAX_LAYERS`).
pub const MAX_LAYERS: usize = 16;
/// Most units a layer may have (the guest's `MAX_DIM`).
pub const MAX_WIDTH: u32 = 4096;
/// Most parameters a model may have (16 MiB of f32: the guest's `MAX_PARAMS`).
pub const MAX_PARAMS: usize = 1 << 22;

/// A model's dimensions and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    dims: Vec<u32>,
    params: Vec<f32>,
}

/// How the shards' updates become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// Their mean, summed in shard order in f32 then divided by `K`: federated averaging.
    #[default]
    Mean,
    /// Their coordinate-wise median (the mean of the two middle values for an even `K`):
    /// one poisoned update moves no coordinate past the honest ones.
    Median,
}

/// Parameters of a model of dimensions `dims`, if it is a valid shape.
fn param_count(dims: &[u32]) -> Result<usize> {
    let bad = |why: String| TrainError::Weights(why);
    if dims.len() < 2 || dims.len() > MAX_LAYERS + 1 {
        return Err(bad(format!(
            "{} dimensions: a model has 2 to {} (inputs, hidden layers, classes)",
            dims.len(),
            MAX_LAYERS + 1
        )));
    }
    if let Some(d) = dims.iter().find(|d| **d == 0 || **d > MAX_WIDTH) {
        return Err(bad(format!("a layer of {d} units (1 to {MAX_WIDTH})")));
    }
    let n: usize = dims
        .windows(2)
        .map(|w| match w {
            [i, o] => (*i as usize + 1) * *o as usize,
            _ => 0,
        })
        .sum();
    if n > MAX_PARAMS {
        return Err(bad(format!("{n} parameters, over {MAX_PARAMS}")));
    }
    Ok(n)
}

impl Weights {
    /// Zeros, of dimensions `dims` (e.g. `[64, 32, 10]`).
    pub fn zeros(dims: &[u32]) -> Result<Self> {
        let n = param_count(dims)?;
        Ok(Self {
            dims: dims.to_vec(),
            params: vec![0.0; n],
        })
    }

    /// The initial weights of seed `seed`, bit for bit those of the guest's `mode=init`
    /// (`mlp_init` in `sandbox/guests/train/mlp.c`): each `W` uniform in `±limit`, with
    /// `limit = sqrt(6 / fan_in)` (He) for a layer followed by ReLU and
    /// `sqrt(6 / (fan_in + fan_out))` (Glorot) for the last, in f64; its values drawn in file
    /// order from splitmix64 seeded with `seed`, each `((2u − 1) · limit)` rounded to f32
    /// with `u` the top 53 bits of a draw over 2^53; every `b` zero.
    pub fn init(dims: &[u32], seed: u64) -> Result<Self> {
        let mut w = Self::zeros(dims)?;
        let mut rng = SplitMix64::new(seed);
        let layers = dims.len() - 1;
        let mut at = 0usize;
        for (l, pair) in dims.windows(2).enumerate() {
            let [fan_in, out] = pair else { continue };
            let fan = if l + 1 < layers {
                f64::from(*fan_in)
            } else {
                f64::from(*fan_in) + f64::from(*out)
            };
            let limit = (6.0 / fan).sqrt();
            let n_w = *fan_in as usize * *out as usize;
            for p in w.params.iter_mut().skip(at).take(n_w) {
                let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                *p = ((2.0 * u - 1.0) * limit) as f32;
            }
            at += n_w + *out as usize;
        }
        Ok(w)
    }

    /// The dimensions, inputs first.
    pub fn dims(&self) -> &[u32] {
        &self.dims
    }

    /// Every parameter, in file order.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Layer `l`'s `W` (out × in, row-major) and `b`, if there is such a layer.
    pub fn layer(&self, l: usize) -> Option<(&[f32], &[f32])> {
        let mut at = 0usize;
        for (k, pair) in self.dims.windows(2).enumerate() {
            let [i, o] = pair else { return None };
            let (n_w, n_b) = (*i as usize * *o as usize, *o as usize);
            if k == l {
                let w = self.params.get(at..at + n_w)?;
                let b = self.params.get(at + n_w..at + n_w + n_b)?;
                return Some((w, b));
            }
            at += n_w + n_b;
        }
        None
    }

    /// The `SWT1` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * (self.dims.len() + self.params.len()));
        out.extend_from_slice(b"SWT1");
        out.extend_from_slice(&(self.dims.len() as u32 - 1).to_le_bytes());
        for d in &self.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        for p in &self.params {
            out.extend_from_slice(&p.to_le_bytes());
        }
        out
    }

    /// Reads `SWT1` bytes; a short, long or misshapen file is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = |why: &str| TrainError::Weights(why.to_owned());
        let (magic, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("shorter than its header"))?;
        if magic != b"SWT1" {
            return Err(bad("no SWT1 magic"));
        }
        let (layers, mut rest) = le_u32(rest).ok_or_else(|| bad("shorter than its header"))?;
        if layers == 0 || layers as usize > MAX_LAYERS {
            return Err(bad(&format!("{layers} layers (1 to {MAX_LAYERS})")));
        }
        let mut dims = Vec::with_capacity(layers as usize + 1);
        for _ in 0..=layers {
            let (d, r) = le_u32(rest).ok_or_else(|| bad("shorter than its dimensions"))?;
            dims.push(d);
            rest = r;
        }
        let n = param_count(&dims)?;
        if rest.len() != n * 4 {
            return Err(bad(&format!(
                "{} bytes of parameters for {n} parameters",
                rest.len()
            )));
        }
        let params = rest
            .chunks_exact(4)
            .filter_map(|c| c.try_into().ok().map(f32::from_le_bytes))
            .collect();
        Ok(Self { dims, params })
    }

    /// Whether every parameter is a finite number.
    pub fn is_finite(&self) -> bool {
        self.params.iter().all(|p| p.is_finite())
    }

    /// Adds `update` (same dimensions) to these weights, in f32.
    pub fn apply(&mut self, update: &Self) -> Result<()> {
        self.same_shape(update)?;
        for (p, u) in self.params.iter_mut().zip(&update.params) {
            *p += *u;
        }
        Ok(())
    }

    fn same_shape(&self, other: &Self) -> Result<()> {
        if self.dims != other.dims {
            return Err(TrainError::Weights(format!(
                "dimensions {:?}, expected {:?}",
                other.dims, self.dims
            )));
        }
        Ok(())
    }

    /// The updates, in shard order, made one as `how` says. All must have the same
    /// dimensions; there must be at least one.
    pub fn aggregate(updates: &[Self], how: Aggregate) -> Result<Self> {
        let first = updates
            .first()
            .ok_or_else(|| TrainError::Weights("no updates to aggregate".into()))?;
        for u in updates {
            first.same_shape(u)?;
        }
        let k = updates.len();
        let mut out = Self::zeros(&first.dims)?;
        match how {
            Aggregate::Mean => {
                for u in updates {
                    for (o, p) in out.params.iter_mut().zip(&u.params) {
                        *o += *p;
                    }
                }
                for o in &mut out.params {
                    *o /= k as f32;
                }
            }
            Aggregate::Median => {
                let mut column = Vec::with_capacity(k);
                for (i, o) in out.params.iter_mut().enumerate() {
                    column.clear();
                    column.extend(updates.iter().filter_map(|u| u.params.get(i).copied()));
                    column.sort_by(f32::total_cmp);
                    *o = median(&column);
                }
            }
        }
        Ok(out)
    }
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
fn median(sorted: &[f32]) -> f32 {
    let mid = sorted.len() / 2;
    match (sorted.get(mid.wrapping_sub(1)), sorted.get(mid)) {
        (Some(a), Some(b)) if sorted.len().is_multiple_of(2) => (*a + *b) / 2.0,
        (_, Some(m)) => *m,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_trip_and_bad_files_are_refused() {
        let w = Weights::init(&[64, 32, 10], 1).unwrap();
        assert_eq!(w.params().len(), 64 * 32 + 32 + 32 * 10 + 10);
        let bytes = w.encode();
        assert_eq!(&bytes[..4], b"SWT1");
        assert_eq!(&bytes[4..8], &2u32.to_le_bytes());
        assert_eq!(bytes.len(), 4 + 4 + 12 + 4 * w.params().len());
        assert_eq!(Weights::decode(&bytes).unwrap(), w);
        assert!(Weights::decode(&bytes[..bytes.len() - 4]).is_err());
        assert!(Weights::decode(b"SWT2").is_err());
        let mut huge = b"SWT1".to_vec();
        huge.extend_from_slice(&1u32.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Weights::decode(&huge).is_err());
        assert!(Weights::zeros(&[64]).is_err());
    }

    #[test]
    fn initialisation_is_seeded_bounded_and_biases_are_zero() {
        let a = Weights::init(&[64, 32, 10], 7).unwrap();
        assert_eq!(a, Weights::init(&[64, 32, 10], 7).unwrap());
        assert_ne!(a, Weights::init(&[64, 32, 10], 8).unwrap());
        let (w1, b1) = a.layer(0).unwrap();
        let (w2, b2) = a.layer(1).unwrap();
        assert_eq!(
            (w1.len(), b1.len(), w2.len(), b2.len()),
            (2048, 32, 320, 10)
        );
        let (he, glorot) = ((6.0f32 / 64.0).sqrt(), (6.0f32 / 42.0).sqrt());
        assert!(w1.iter().all(|x| x.abs() <= he));
        assert!(w1.iter().any(|x| x.abs() > he / 2.0));
        assert!(w2.iter().all(|x| x.abs() <= glorot));
        assert!(w2.iter().any(|x| x.abs() > glorot / 2.0));
        assert!(b1.iter().chain(b2).all(|x| *x == 0.0));
        assert!(a.layer(2).is_none());
    }

    #[test]
    fn updates_aggregate_in_shard_order_by_mean_or_median() {
        let dims = [1u32, 2];
        let mk = |v: [f32; 4]| {
            let mut w = Weights::zeros(&dims).unwrap();
            w.params.copy_from_slice(&v);
            w
        };
        let ups = [
            mk([1.0, 2.0, 3.0, 0.1]),
            mk([3.0, 2.0, 1.0, 0.2]),
            mk([1000.0, 2.0, -5.0, 0.3]),
        ];
        let mean = Weights::aggregate(&ups, Aggregate::Mean).unwrap();
        assert_eq!(mean.params()[..3], [1004.0 / 3.0, 2.0, -1.0 / 3.0]);
        // f32 in shard order: ((0.1 + 0.2) + 0.3) / 3, not another order's rounding.
        assert_eq!(mean.params()[3], ((0.1f32 + 0.2f32) + 0.3f32) / 3.0);
        let median = Weights::aggregate(&ups, Aggregate::Median).unwrap();
        assert_eq!(
            median.params(),
            [3.0, 2.0, 1.0, 0.2],
            "the outlier is ignored"
        );
        let even = Weights::aggregate(&ups[..2], Aggregate::Median).unwrap();
        assert_eq!(even.params(), [2.0, 2.0, 2.0, (0.1f32 + 0.2f32) / 2.0]);
        let mut w = mk([1.0; 4]);
        w.apply(&mean).unwrap();
        assert_eq!(w.params()[1], 3.0);
        assert!(Weights::aggregate(&[], Aggregate::Mean).is_err());
        let other = Weights::zeros(&[2, 2]).unwrap();
        assert!(Weights::aggregate(&[ups[0].clone(), other.clone()], Aggregate::Mean).is_err());
        assert!(w.apply(&other).is_err());
    }
}
