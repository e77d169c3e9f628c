//! Lyapunov spectra of a model driven by its input (Engelken, "Gradient
//! Flossing", NeurIPS 2023): propagate k tangent vectors with the model's
//! Jacobian, `Q ← J_t Q`, re-orthonormalise every `reortho` steps with
//! `Q, R = qr(Q)` and average `log|R_ii|` over the accumulated steps.
//!
//! The settings, the driving inputs and the initial conditions live here so
//! the CPU reference (`cpu.rs`, f64) and the GPU path (`gpu.rs`) run the
//! very same trajectory.

pub mod cpu;
pub mod floss;
pub mod floss_gpu;
pub mod gpu;
pub mod run;

use crate::models::Model;
use crate::rng::Rng;
use crate::tasks::Task;
use anyhow::{bail, Result};
use ndarray::{Array2, Array3};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LyapInput {
    Zeros,
    /// i.i.d. N(0, noise_std²) inputs
    Noise,
    /// the training task's input sequences, one after another
    Task,
}

impl LyapInput {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "zeros" => LyapInput::Zeros,
            "noise" => LyapInput::Noise,
            "task" => LyapInput::Task,
            other => bail!("unknown input '{other}': expected task, zeros or noise"),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LyapunovConfig {
    /// number of exponents (tangent vectors), 1..=N
    pub k: usize,
    /// steps between QR re-orthonormalisations
    pub reortho: usize,
    /// state-only steps first, then `reortho`-aligned tangent steps that are not accumulated
    pub transient: usize,
    pub tangent_transient: usize,
    /// accumulated steps
    pub steps: usize,
    pub trajectories: usize,
    pub input: LyapInput,
    pub noise_std: f64,
    /// standard deviation of the random initial state
    pub h0_std: f64,
    pub seed: u64,
}

impl Default for LyapunovConfig {
    fn default() -> Self {
        LyapunovConfig {
            k: 8,
            reortho: 1,
            transient: 200,
            tangent_transient: 100,
            steps: 1000,
            trajectories: 4,
            input: LyapInput::Zeros,
            noise_std: 1.0,
            h0_std: 0.5,
            seed: 0,
        }
    }
}

/// Time steps whose inputs are generated together (and, on the GPU, run as one forward pass).
pub const CHUNK: usize = 128;

impl LyapunovConfig {
    pub fn validate(&self, n: usize) -> Result<()> {
        if self.k == 0 || self.k > n {
            bail!("--k must be between 1 and the state width {n}, got {}", self.k);
        }
        if self.reortho == 0 || self.steps == 0 || self.trajectories == 0 {
            bail!("--reortho, --steps and --trajectories must be positive");
        }
        if !self.steps.is_multiple_of(self.reortho) || !self.tangent_transient.is_multiple_of(self.reortho) {
            bail!("--steps and the tangent transient must be multiples of --reortho ({})", self.reortho);
        }
        if !(self.noise_std.is_finite() && self.h0_std.is_finite()) {
            bail!("noise and initial-state scales must be finite");
        }
        Ok(())
    }

    /// Total number of model steps: state-only, tangent transient, accumulated.
    pub fn total_steps(&self) -> usize {
        self.transient + self.tangent_transient + self.steps
    }
}

/// The driving inputs and initial conditions of one spectrum computation.
pub struct Drive<'a> {
    pub cfg: &'a LyapunovConfig,
    pub task: Option<&'a Task>,
    pub input_width: usize,
}

impl Drive<'_> {
    /// Inputs `(len, B, I)` for steps `[c·CHUNK, c·CHUNK + len)`, from a
    /// stream of its own per chunk so any backend can make them in order.
    pub fn chunk(&self, c: usize, len: usize) -> Array3<f32> {
        let b = self.cfg.trajectories;
        let i = self.input_width;
        let mut rng = Rng::stream(self.cfg.seed, 10_000 + c as u64);
        match (self.cfg.input, self.task) {
            (LyapInput::Zeros, _) => Array3::zeros((len, b, i)),
            (LyapInput::Noise, _) => Array3::from_shape_fn((len, b, i), |_| (rng.normal() * self.cfg.noise_std) as f32),
            (LyapInput::Task, Some(task)) => task.input_stream(b, len, &mut rng),
            (LyapInput::Task, None) => panic!("input 'task' needs a task"),
        }
    }

    /// Initial states `(B, S)`.
    pub fn h0(&self, width: usize) -> Array2<f32> {
        let mut rng = Rng::stream(self.cfg.seed, 9_999);
        Array2::from_shape_fn((self.cfg.trajectories, width), |_| (rng.normal() * self.cfg.h0_std) as f32)
    }

    /// Initial tangent vectors: one random orthonormal `(S, k)` per trajectory.
    pub fn q0(&self, width: usize) -> Vec<Array2<f64>> {
        let mut rng = Rng::stream(self.cfg.seed, 9_998);
        (0..self.cfg.trajectories)
            .map(|_| crate::cpu::random_orthonormal(width, self.cfg.k, &mut rng))
            .collect()
    }
}

/// A spectrum, averaged over trajectories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spectrum {
    /// nats per step, sorted descending
    pub exponents: Vec<f64>,
    pub sum: f64,
    /// standard error of each exponent across trajectories (0 for one)
    pub std_error: Vec<f64>,
    pub k: usize,
    pub steps: usize,
    pub trajectories: usize,
    /// (accumulated steps, running estimate of λ₁) along the way
    pub running_lambda1: Vec<(usize, f64)>,
    /// time average of log|det J_t| over the accumulated steps (when k = N, CPU)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_log_det: Option<f64>,
}

impl Spectrum {
    /// Sort and average per-trajectory sums of log|R_ii| over `steps`.
    pub fn from_sums(sums: &[Vec<f64>], steps: usize, running: Vec<(usize, f64)>, mean_log_det: Option<f64>) -> Self {
        let b = sums.len();
        let k = sums[0].len();
        let per: Vec<Vec<f64>> = sums
            .iter()
            .map(|s| {
                let mut e: Vec<f64> = s.iter().map(|v| v / steps as f64).collect();
                e.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
                e
            })
            .collect();
        let exponents: Vec<f64> = (0..k).map(|i| per.iter().map(|e| e[i]).sum::<f64>() / b as f64).collect();
        let std_error = (0..k)
            .map(|i| {
                if b < 2 {
                    return 0.0;
                }
                let var = per.iter().map(|e| (e[i] - exponents[i]).powi(2)).sum::<f64>() / (b - 1) as f64;
                (var / b as f64).sqrt()
            })
            .collect();
        Spectrum { sum: exponents.iter().sum(), exponents, std_error, k, steps, trajectories: b, running_lambda1: running, mean_log_det }
    }
}

/// The model a spectrum is computed for must expose its tangent map.
pub fn check_model(model: &Model, cfg: &LyapunovConfig) -> Result<()> {
    cfg.validate(model.state_width())
}
