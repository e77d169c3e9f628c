//! The filter task of the linear-RNN learning-dynamics study (Bordelon,
//! Cotler, Pehlevan, Zavatone-Veth, arXiv 2503.18754): white noise in,
//! the same noise through a known linear filter out.
//!
//! With `Objective::Population` the loss is the exact expectation over white
//! noise, `½ Σ_k Σ_c |vᵀ W^k u_c − g_k e_c|²`, the network's impulse response
//! against the filter's, summed over lags k < 2K: the filter is zero past its
//! horizon K, and the lags after it are where a network that rings on too
//! long pays (this is what keeps the integrator's outlier below 1). It is
//! computed by running the same model on one impulse per channel (a batch of
//! C sequences of length 2K) with the loss normalised to ½ · sum, so both
//! backends need nothing new.

use super::{Batch, Target};
use crate::rng::Rng;
use anyhow::{bail, Result};
use ndarray::Array3;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    /// g_k = 1 for k < K
    Integrator,
    /// g_k = λ^k
    Leaky,
    /// g_k = λ^k cos(ω k)
    Oscillator,
}

impl FilterKind {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "integrator" => FilterKind::Integrator,
            "leaky" => FilterKind::Leaky,
            "oscillator" => FilterKind::Oscillator,
            other => bail!("unknown filter '{other}': expected integrator, leaky or oscillator"),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// MSE over sampled white-noise batches
    #[default]
    Sampled,
    /// the exact expected loss over white noise
    Population,
}

impl Objective {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "sampled" => Objective::Sampled,
            "population" => Objective::Population,
            other => bail!("unknown objective '{other}': expected sampled or population"),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FilterSpec {
    pub kind: FilterKind,
    /// λ
    pub decay: f64,
    /// ω in radians per step
    pub freq: f64,
    /// K: lags kept
    pub horizon: usize,
    /// independent input channels, each filtered onto its own output
    pub channels: usize,
    pub objective: Objective,
}

impl FilterSpec {
    pub fn validate(&self) -> Result<()> {
        if self.horizon == 0 {
            bail!("--horizon K must be at least 1");
        }
        if self.channels == 0 {
            bail!("--channels must be at least 1");
        }
        if self.kind != FilterKind::Integrator && !(self.decay > 0.0 && self.decay <= 1.0) {
            bail!("--decay λ must be in (0, 1], got {}", self.decay);
        }
        if !self.freq.is_finite() {
            bail!("--freq must be finite");
        }
        Ok(())
    }

    /// The filter's coefficients g_0 .. g_{K-1}.
    pub fn coefficients(&self) -> Vec<f64> {
        (0..self.horizon)
            .map(|k| match self.kind {
                FilterKind::Integrator => 1.0,
                FilterKind::Leaky => self.decay.powi(k as i32),
                FilterKind::Oscillator => self.decay.powi(k as i32) * (self.freq * k as f64).cos(),
            })
            .collect()
    }

    /// Where the outlier eigenvalues should end up: [re, im] each.
    pub fn target_eigs(&self) -> Vec<[f64; 2]> {
        match self.kind {
            FilterKind::Integrator => vec![[1.0, 0.0]],
            FilterKind::Leaky => vec![[self.decay, 0.0]],
            FilterKind::Oscillator => {
                let (re, im) = (self.decay * self.freq.cos(), self.decay * self.freq.sin());
                vec![[re, im], [re, -im]]
            }
        }
    }

    /// Loss of always answering zero: steady-state MSE for sampled batches,
    /// ½ C Σ g_k² for the population objective.
    pub fn zero_predictor_loss(&self) -> f64 {
        let e: f64 = self.coefficients().iter().map(|g| g * g).sum();
        match self.objective {
            Objective::Sampled => e,
            Objective::Population => 0.5 * self.channels as f64 * e,
        }
    }

    pub fn batch(&self, t_len: usize, b: usize, rng: &mut Rng) -> Batch {
        match self.objective {
            Objective::Sampled => self.noise_batch(t_len, b, rng),
            Objective::Population => self.impulse_batch(),
        }
    }

    fn noise_batch(&self, t_len: usize, b: usize, rng: &mut Rng) -> Batch {
        let c = self.channels;
        let g = self.coefficients();
        let x = Array3::from_shape_fn((t_len, b, c), |_| rng.normal() as f32);
        let mut y = vec![0f32; t_len * b * c];
        for t in 0..t_len {
            for j in 0..b {
                for ch in 0..c {
                    let s: f64 = (0..=t.min(g.len() - 1)).map(|k| g[k] * x[[t - k, j, ch]] as f64).sum();
                    y[(t * b + j) * c + ch] = s as f32;
                }
            }
        }
        Batch { x, target: Target::Values(y), mask: vec![1.0; t_len * b], metric_mask: vec![0.0; t_len * b], loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None }
    }

    /// Lags the population objective sums over.
    pub fn population_lags(&self) -> usize {
        2 * self.horizon
    }

    /// One impulse per channel at t = 0; targets the filter on that channel.
    fn impulse_batch(&self) -> Batch {
        let (k, c) = (self.population_lags(), self.channels);
        let g = self.coefficients();
        let mut x = Array3::zeros((k, c, c));
        let mut y = vec![0f32; k * c * c];
        for ch in 0..c {
            x[[0, ch, ch]] = 1.0;
            for (t, gt) in g.iter().enumerate() {
                y[(t * c + ch) * c + ch] = *gt as f32;
            }
        }
        Batch { x, target: Target::Values(y), mask: vec![1.0; k * c], metric_mask: vec![0.0; k * c], loss_norm: Some(0.5), tokens: None, carry_state: false, feedback: None, carry_at: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FilterKind, objective: Objective) -> FilterSpec {
        FilterSpec { kind, decay: 0.9, freq: 0.3, horizon: 8, channels: 2, objective }
    }

    #[test]
    fn noise_targets_are_the_filtered_input() {
        let s = spec(FilterKind::Oscillator, Objective::Sampled);
        let mut rng = Rng::seed(4);
        let b = s.batch(20, 3, &mut rng);
        let Target::Values(y) = &b.target else { panic!() };
        let g = s.coefficients();
        let (t, j, ch) = (15, 2, 1);
        let want: f64 = (0..8).map(|k| g[k] * b.x[[t - k, j, ch]] as f64).sum();
        assert!((y[(t * 3 + j) * 2 + ch] as f64 - want).abs() < 1e-5);
        // early steps see only the history that exists
        let want0 = g[0] * b.x[[0, 0, 0]] as f64;
        assert!((y[0] as f64 - want0).abs() < 1e-6);
    }

    #[test]
    fn impulse_batch_encodes_the_impulse_response() {
        let s = spec(FilterKind::Leaky, Objective::Population);
        let b = s.batch(0, 0, &mut Rng::seed(0));
        assert_eq!(b.x.dim(), (16, 2, 2));
        assert_eq!(b.loss_norm, Some(0.5));
        let Target::Values(y) = &b.target else { panic!() };
        assert!((y[(3 * 2 + 1) * 2 + 1] as f64 - 0.9f64.powi(3)).abs() < 1e-7);
        assert_eq!(y[(3 * 2 + 1) * 2], 0.0);
        assert_eq!(y[(12 * 2 + 1) * 2 + 1], 0.0, "zero past the horizon");
        assert!((s.zero_predictor_loss() - 0.5 * 2.0 * (0..8).map(|k| 0.81f64.powi(k)).sum::<f64>()).abs() < 1e-12);
    }

    #[test]
    fn targets_for_each_filter() {
        let o = spec(FilterKind::Oscillator, Objective::Sampled).target_eigs();
        assert!((o[0][0].hypot(o[0][1]) - 0.9).abs() < 1e-12 && (o[0][1].atan2(o[0][0]) - 0.3).abs() < 1e-12);
        assert_eq!(spec(FilterKind::Integrator, Objective::Sampled).coefficients(), vec![1.0; 8]);
        let mut bad = spec(FilterKind::Leaky, Objective::Sampled);
        bad.decay = 1.5;
        assert!(bad.validate().is_err());
    }
}
