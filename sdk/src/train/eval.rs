//! The driver's own forward pass, to report each round's loss and accuracy on the held-out
//! set without buying a job: inputs are the pixels over 16, every hidden layer is
//! `relu(W x + b)`, the last gives logits, and the loss is the mean cross-entropy of their
//! softmax. The guest's `mode=eval` is the exact one (its own order of operations, run in
//! the sandbox and checkable like any job); this one, in the driver's f32 arithmetic, is the
//! driver's report and agrees with it to rounding.

use super::digits::{MAX_PIXEL, Sample};
use super::weights::Weights;

/// Loss and accuracy of a model on a set of samples.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f32,
    /// Share of samples whose largest logit is their label.
    pub accuracy: f32,
    /// Samples evaluated.
    pub samples: usize,
}

/// The logits of one sample.
pub fn logits(w: &Weights, pixels: &[u8]) -> Vec<f32> {
    let mut x: Vec<f32> = pixels
        .iter()
        .map(|p| f32::from(*p) / f32::from(MAX_PIXEL))
        .collect();
    let layers = w.dims().len().saturating_sub(1);
    for l in 0..layers {
        let Some((wl, bl)) = w.layer(l) else { break };
        let last = l + 1 == layers;
        let fan_in = x.len().max(1);
        x = bl
            .iter()
            .zip(wl.chunks_exact(fan_in))
            .map(|(b, row)| {
                // The guest's order: the products summed from index 0, then the bias.
                let z = row.iter().zip(&x).fold(0.0f32, |acc, (a, v)| acc + a * v) + *b;
                if last { z } else { z.max(0.0) }
            })
            .collect();
    }
    x
}

/// Evaluates `w` on `samples` (an empty set gives zeros).
pub fn evaluate(w: &Weights, samples: &[Sample]) -> Evaluation {
    let mut loss = 0.0f64;
    let mut right = 0usize;
    for s in samples {
        let z = logits(w, &s.pixels);
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
        let zl = z
            .get(usize::from(s.label))
            .copied()
            .unwrap_or(f32::NEG_INFINITY);
        loss += f64::from(max + sum.ln() - zl);
        // The first largest logit, as argmax picks it.
        let guess = z
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, v)| {
                if *v > best.1 { (i, *v) } else { best }
            })
            .0;
        right += usize::from(guess == usize::from(s.label));
    }
    let n = samples.len().max(1) as f64;
    Evaluation {
        loss: (loss / n) as f32,
        accuracy: (right as f64 / n) as f32,
        samples: samples.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that reads the label off pixel 0 (one-hot through a hand-set layer) scores
    /// all right, and a zero model scores the uniform loss ln 10.
    #[test]
    fn a_hand_built_model_is_evaluated_exactly() {
        let samples: Vec<Sample> = (0..10u8)
            .map(|d| {
                let mut pixels = [0u8; 64];
                pixels[usize::from(d)] = 16;
                Sample { pixels, label: d }
            })
            .collect();
        let zero = Weights::zeros(&[64, 10]).unwrap();
        let e = evaluate(&zero, &samples);
        assert!((e.loss - 10f32.ln()).abs() < 1e-6, "{e:?}");
        assert_eq!(e.samples, 10);
        assert!((e.accuracy - 0.1).abs() < 1e-6, "ties go to class 0: {e:?}");

        let mut bytes = zero.encode();
        // W is 10 × 64 row-major after the 16 header bytes: W[d][d] = 10.
        for d in 0..10usize {
            let at = 16 + 4 * (d * 64 + d);
            bytes[at..at + 4].copy_from_slice(&10f32.to_le_bytes());
        }
        let oracle = Weights::decode(&bytes).unwrap();
        let e = evaluate(&oracle, &samples);
        assert_eq!(e.accuracy, 1.0);
        assert!(e.loss < 1e-3, "{e:?}");
        assert_eq!(logits(&oracle, &samples[3].pixels)[3], 10.0);
    }

    #[test]
    fn hidden_layers_are_rectified() {
        // 1 input → 1 hidden (weight −1) → 2 classes: the hidden unit is relu(−x) = 0.
        let mut w = Weights::zeros(&[1, 1, 2]).unwrap();
        let mut bytes = w.encode();
        let at = 4 + 4 + 12;
        bytes[at..at + 4].copy_from_slice(&(-1f32).to_le_bytes());
        w = Weights::decode(&bytes).unwrap();
        assert_eq!(logits(&w, &[16]), [0.0, 0.0]);
    }
}
