//! The delayed-recall tasks of Engelken's "Gradient Flossing": a stream of
//! Bernoulli(0.5) bits s_t, and the target on every step from d on is
//! `s_{t-d}` (delayed copy) or `s_{t-d/2} xor s_{t-d}` (delayed XOR).
//! Targets are two classes under softmax cross-entropy, which is binary
//! cross-entropy on the difference of the two logits; chance accuracy is 50%
//! and the memoryless loss ln 2.

use super::{Batch, Target};
use crate::rng::Rng;
use ndarray::Array3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delayed {
    Copy,
    Xor,
}

pub fn batch(kind: Delayed, t_len: usize, delay: usize, b: usize, rng: &mut Rng) -> Batch {
    let mut bits = vec![0u8; t_len * b];
    let mut x = Array3::zeros((t_len, b, 1));
    for t in 0..t_len {
        for j in 0..b {
            let s = (rng.next() >> 63) as u8;
            bits[t * b + j] = s;
            // centred input: ±1
            x[[t, j, 0]] = if s == 1 { 1.0 } else { -1.0 };
        }
    }
    let mut cls = vec![0u32; t_len * b];
    let mut mask = vec![0f32; t_len * b];
    for t in delay..t_len {
        for j in 0..b {
            let y = match kind {
                Delayed::Copy => bits[(t - delay) * b + j],
                Delayed::Xor => bits[(t - delay / 2) * b + j] ^ bits[(t - delay) * b + j],
            };
            cls[t * b + j] = y as u32;
            mask[t * b + j] = 1.0;
        }
    }
    Batch { x, target: Target::Classes(cls), metric_mask: mask.clone(), mask, loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_delayed_bits() {
        let mut rng = Rng::seed(3);
        let (t, d, b) = (30, 6, 4);
        for kind in [Delayed::Copy, Delayed::Xor] {
            let batch = batch(kind, t, d, b, &mut rng);
            let Target::Classes(cls) = &batch.target else { panic!() };
            let bit = |s: usize, j: usize| (batch.x[[s, j, 0]] > 0.0) as u32;
            for s in 0..t {
                for j in 0..b {
                    let r = s * b + j;
                    if s < d {
                        assert_eq!(batch.mask[r], 0.0);
                        continue;
                    }
                    assert_eq!(batch.mask[r], 1.0);
                    let want = match kind {
                        Delayed::Copy => bit(s - d, j),
                        Delayed::Xor => bit(s - d / 2, j) ^ bit(s - d, j),
                    };
                    assert_eq!(cls[r], want);
                }
            }
            // balanced bits
            let ones = cls.iter().zip(&batch.mask).filter(|(_, &m)| m > 0.0).map(|(c, _)| *c as f64).sum::<f64>();
            let n = batch.mask.iter().sum::<f32>() as f64;
            assert!((ones / n - 0.5).abs() < 0.15, "{kind:?}: {ones}/{n}");
        }
    }
}
