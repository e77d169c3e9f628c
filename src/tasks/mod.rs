//! Synthetic tasks. Batches are always made on the CPU from the data stream
//! of the run's seed, so the CPU and GPU paths see identical data.

mod delayed;
pub mod dynamics;
pub mod ett;
mod filter;
pub mod mnist;

use crate::rng::Rng;
use anyhow::{bail, Result};
use ndarray::Array3;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Copy,
    Adding,
    /// white noise through a known linear filter (the linear-RNN study)
    Filter,
    /// y_t = s_{t-d} on random bits (gradient flossing)
    #[serde(rename = "delayed-copy")]
    DelayedCopy,
    /// y_t = s_{t-d/2} xor s_{t-d}
    #[serde(rename = "delayed-xor")]
    DelayedXor,
    /// word-level Penn Treebank language modelling (train::lm)
    Ptb,
    /// language modelling on any text file, word or char level (train::lm)
    Text,
    /// pixel-by-pixel MNIST: 784 steps of one pixel, classified at the last
    Mnist,
    /// permuted pixel MNIST: the pixels in one fixed random order
    Pmnist,
    /// multichannel forecasting from a CSV series (ETTh1/ETTh2)
    Ett,
    /// forecasting simulated damped mass-spring trajectories
    Msd,
    /// forecasting simulated Lotka-Volterra trajectories
    Lotka,
    /// MNIST image completion: the rest of an image's pixels from its first
    #[serde(rename = "mnist-completion")]
    MnistCompletion,
}

impl TaskKind {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "copy" => TaskKind::Copy,
            "adding" => TaskKind::Adding,
            "filter" => TaskKind::Filter,
            "delayed-copy" => TaskKind::DelayedCopy,
            "delayed-xor" => TaskKind::DelayedXor,
            "ptb" => TaskKind::Ptb,
            "text" => TaskKind::Text,
            "mnist" => TaskKind::Mnist,
            "pmnist" => TaskKind::Pmnist,
            "ett" => TaskKind::Ett,
            "msd" => TaskKind::Msd,
            "lotka" => TaskKind::Lotka,
            "mnist-completion" => TaskKind::MnistCompletion,
            other => bail!("unknown task '{other}': expected copy, adding, filter, delayed-copy, delayed-xor, ptb, text, mnist, pmnist, ett, msd, lotka or mnist-completion"),
        })
    }

    /// Language modelling over a corpus (trained by `train::lm`).
    pub fn is_lm(self) -> bool {
        matches!(self, TaskKind::Ptb | TaskKind::Text)
    }

    /// Forecasting: a look-back, then a horizon (train::forecast evaluates).
    pub fn is_forecasting(self) -> bool {
        matches!(self, TaskKind::Ett | TaskKind::Msd | TaskKind::Lotka | TaskKind::MnistCompletion)
    }

    /// The simulated system of a dynamics task.
    pub fn system(self) -> Option<dynamics::System> {
        match self {
            TaskKind::Msd => Some(dynamics::System::Msd),
            TaskKind::Lotka => Some(dynamics::System::Lotka),
            _ => None,
        }
    }

    /// Pixel MNIST, plain or permuted (images from `--data`).
    pub fn is_mnist(self) -> bool {
        matches!(self, TaskKind::Mnist | TaskKind::Pmnist)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// one class index per row (t, b): softmax cross-entropy
    Classes(Vec<u32>),
    /// `O` values per row: mean squared error
    Values(Vec<f32>),
    /// `C` values per row against `2C` outputs (means, then raw standard
    /// deviations through softplus): Gaussian negative log-likelihood
    Gaussian(Vec<f32>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossKind {
    CrossEntropy,
    Mse,
}

/// One batch, time-major: row `r = t·B + b`.
#[derive(Clone, Debug)]
pub struct Batch {
    pub x: Array3<f32>,
    pub target: Target,
    /// weight of each row in the loss (0 or 1)
    pub mask: Vec<f32>,
    /// rows that count for the accuracy metric (classification tasks)
    pub metric_mask: Vec<f32>,
    /// overrides the loss normaliser (see `train::loss::loss_norm`)
    pub loss_norm: Option<f64>,
    /// token ids `(T·B)` in place of `x` (then `x` is `(T, B, 0)`): the
    /// input is the one-hot vector of each id
    pub tokens: Option<Vec<u32>>,
    /// start from the last state of the previous batch of the same shape on
    /// the same backend (truncated BPTT over streams), else from zeros
    pub carry_state: bool,
    /// autoregressive training (WARP): per row, 1 where the input is the
    /// model's own prediction of it (made at the step before), 0 where it
    /// is the data; None: the data everywhere (teacher forcing)
    pub feedback: Option<Vec<f32>>,
    /// the state after this many steps is what the next batch carrying its
    /// state starts from (overlapping BPTT windows); None: after the last
    pub carry_at: Option<usize>,
}

impl Batch {
    /// The inputs as the models take them.
    pub fn input<'a, F: crate::real::Real>(&'a self, x: &'a ndarray::Array3<F>) -> crate::models::SeqInput<'a, F> {
        match &self.tokens {
            Some(ids) => crate::models::SeqInput::Tokens { ids, t_len: self.seq_len(), batch: self.batch() },
            None => crate::models::SeqInput::Dense(x.view()),
        }
    }

    pub fn seq_len(&self) -> usize {
        self.x.dim().0
    }
    pub fn batch(&self) -> usize {
        self.x.dim().1
    }
    /// The step whose state the next batch carries on from.
    pub fn carry_step(&self) -> usize {
        self.carry_at.unwrap_or(self.seq_len())
    }
}

/// Cheap to clone: the MNIST images are shared.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub kind: TaskKind,
    /// T: the delay (copy) or the sequence length (adding, filter)
    pub t: usize,
    pub filter: Option<FilterSpec>,
    /// d of the delayed tasks
    pub delay: usize,
    /// the training images of the MNIST tasks
    pub mnist: Option<std::sync::Arc<mnist::PixelMnist>>,
    /// the training series of the forecasting task
    pub ett: Option<std::sync::Arc<ett::Forecasting>>,
}

pub use filter::{FilterKind, FilterSpec, Objective};

const COPY_SYMBOLS: usize = 10; // 0 blank, 1..=8 data, 9 delimiter
const COPY_LEN: usize = 10;

impl Task {
    pub fn new(kind: TaskKind, t: usize) -> Result<Self> {
        match kind {
            TaskKind::Copy if t < 1 => bail!("copy task needs --seq-len T >= 1"),
            TaskKind::Adding if t < 2 => bail!("adding task needs --seq-len T >= 2"),
            TaskKind::Filter => bail!("the filter task is made with Task::filter"),
            TaskKind::DelayedCopy | TaskKind::DelayedXor => bail!("the delayed tasks are made with Task::delayed"),
            TaskKind::Ptb | TaskKind::Text => bail!("language-modelling tasks are made from a corpus (train::lm)"),
            TaskKind::Mnist | TaskKind::Pmnist => bail!("the MNIST tasks are made with Task::mnist"),
            TaskKind::Ett | TaskKind::Msd | TaskKind::Lotka | TaskKind::MnistCompletion => bail!("the forecasting tasks are made with Task::ett"),
            _ => Ok(Task { kind, t, filter: None, delay: 0, mnist: None, ett: None }),
        }
    }

    pub fn delayed(kind: TaskKind, t: usize, delay: usize) -> Result<Self> {
        if !matches!(kind, TaskKind::DelayedCopy | TaskKind::DelayedXor) {
            bail!("not a delayed task: {kind:?}");
        }
        if delay == 0 || delay >= t {
            bail!("--delay d must be in 1..T (T = --seq-len = {t}), got {delay}");
        }
        if kind == TaskKind::DelayedXor && delay < 2 {
            bail!("delayed XOR needs --delay d >= 2 (it reads s_(t-d/2) and s_(t-d))");
        }
        Ok(Task { kind, t, filter: None, delay, mnist: None, ett: None })
    }

    /// Pixel MNIST on these images: permuted when `data.perm` is set.
    pub fn ett(kind: TaskKind, data: ett::Forecasting) -> Self {
        Task { kind, t: data.seq_len(), filter: None, delay: 0, mnist: None, ett: Some(std::sync::Arc::new(data)) }
    }

    fn series(&self) -> &ett::Forecasting {
        self.ett.as_deref().expect("a forecasting task is made with its series (Task::ett)")
    }

    pub fn mnist(data: mnist::PixelMnist) -> Self {
        let kind = if data.perm.is_some() { TaskKind::Pmnist } else { TaskKind::Mnist };
        Task { kind, t: crate::data::mnist::PIXELS, filter: None, delay: 0, mnist: Some(std::sync::Arc::new(data)), ett: None }
    }

    fn images(&self) -> &mnist::PixelMnist {
        self.mnist.as_deref().expect("an MNIST task is made with its images (Task::mnist)")
    }

    pub fn filter(spec: FilterSpec, t: usize) -> Result<Self> {
        spec.validate()?;
        if t < 1 && spec.objective == Objective::Sampled {
            bail!("filter task needs --seq-len T >= 1");
        }
        Ok(Task { kind: TaskKind::Filter, t, filter: Some(spec), delay: 0, mnist: None, ett: None })
    }

    fn spec(&self) -> &FilterSpec {
        self.filter.as_ref().expect("filter task has a spec")
    }

    pub fn input_width(&self) -> usize {
        match self.kind {
            TaskKind::Copy => COPY_SYMBOLS,
            TaskKind::Adding => 2,
            TaskKind::Filter => self.spec().channels,
            TaskKind::DelayedCopy | TaskKind::DelayedXor | TaskKind::Mnist | TaskKind::Pmnist => 1,
            TaskKind::Ett | TaskKind::Msd | TaskKind::Lotka | TaskKind::MnistCompletion => self.series().channels(),
            TaskKind::Ptb | TaskKind::Text => 0,
        }
    }
    pub fn output_width(&self) -> usize {
        match self.kind {
            TaskKind::Copy => COPY_SYMBOLS,
            TaskKind::Adding => 1,
            TaskKind::Filter => self.spec().channels,
            TaskKind::DelayedCopy | TaskKind::DelayedXor => 2,
            TaskKind::Mnist | TaskKind::Pmnist => crate::data::mnist::CLASSES,
            TaskKind::Ett | TaskKind::Msd | TaskKind::Lotka | TaskKind::MnistCompletion => self.series().outputs(),
            TaskKind::Ptb | TaskKind::Text => 0,
        }
    }
    pub fn loss_kind(&self) -> LossKind {
        match self.kind {
            TaskKind::Copy | TaskKind::DelayedCopy | TaskKind::DelayedXor | TaskKind::Ptb | TaskKind::Text | TaskKind::Mnist | TaskKind::Pmnist => LossKind::CrossEntropy,
            TaskKind::Adding | TaskKind::Filter | TaskKind::Ett | TaskKind::Msd | TaskKind::Lotka | TaskKind::MnistCompletion => LossKind::Mse,
        }
    }
    /// Number of time steps of one sequence.
    pub fn seq_len(&self) -> usize {
        match self.kind {
            TaskKind::Copy => self.t + 2 * COPY_LEN,
            TaskKind::Adding | TaskKind::DelayedCopy | TaskKind::DelayedXor | TaskKind::Ptb | TaskKind::Text | TaskKind::Mnist | TaskKind::Pmnist | TaskKind::Ett | TaskKind::Msd | TaskKind::Lotka | TaskKind::MnistCompletion => self.t,
            TaskKind::Filter => match self.spec().objective {
                Objective::Sampled => self.t,
                Objective::Population => self.spec().population_lags(),
            },
        }
    }
    /// Loss of the best memoryless strategy.
    pub fn baseline_loss(&self) -> f64 {
        match self.kind {
            // blanks are certain; each of the 10 recalled symbols costs ln 8
            TaskKind::Copy => COPY_LEN as f64 * 8f64.ln() / (self.t + 2 * COPY_LEN) as f64,
            // always answering 1: the variance of a sum of two U[0,1]
            TaskKind::Adding => 1.0 / 6.0,
            TaskKind::Filter => self.spec().zero_predictor_loss(),
            // a coin flip
            TaskKind::DelayedCopy | TaskKind::DelayedXor => 2f64.ln(),
            TaskKind::Mnist | TaskKind::Pmnist => mnist::baseline_loss(),
            // predicting each next row as the current one
            TaskKind::Ett | TaskKind::Msd | TaskKind::Lotka | TaskKind::MnistCompletion => self.series().naive_step_loss(),
            TaskKind::Ptb | TaskKind::Text => f64::NAN,
        }
    }
    pub fn has_accuracy(&self) -> bool {
        matches!(self.kind, TaskKind::Copy | TaskKind::DelayedCopy | TaskKind::DelayedXor | TaskKind::Mnist | TaskKind::Pmnist)
    }

    /// Inputs `(len, B, I)`: the task's input sequences one after another,
    /// cut at `len` (driving inputs for Lyapunov spectra and flossing).
    pub fn input_stream(&self, b: usize, len: usize, rng: &mut Rng) -> Array3<f32> {
        let mut x = Array3::zeros((len, b, self.input_width()));
        let mut t = 0;
        while t < len {
            let batch = self.batch(b, rng);
            let n = batch.seq_len().min(len - t);
            x.slice_mut(ndarray::s![t..t + n, .., ..]).assign(&batch.x.slice(ndarray::s![..n, .., ..]));
            t += n;
        }
        x
    }

    pub fn batch(&self, batch: usize, rng: &mut Rng) -> Batch {
        match self.kind {
            TaskKind::Copy => self.copy_batch(batch, rng),
            TaskKind::Adding => self.adding_batch(batch, rng),
            TaskKind::Filter => self.spec().batch(self.t, batch, rng),
            TaskKind::DelayedCopy => delayed::batch(delayed::Delayed::Copy, self.t, self.delay, batch, rng),
            TaskKind::DelayedXor => delayed::batch(delayed::Delayed::Xor, self.t, self.delay, batch, rng),
            TaskKind::Mnist | TaskKind::Pmnist => self.images().sample(batch, rng),
            TaskKind::Ett | TaskKind::Msd | TaskKind::Lotka | TaskKind::MnistCompletion => self.series().sample(batch, rng),
            // Task::new refuses these kinds: their batches come from train::lm
            TaskKind::Ptb | TaskKind::Text => unreachable!("no Task is made for a language-modelling kind"),
        }
    }

    fn copy_batch(&self, b: usize, rng: &mut Rng) -> Batch {
        let len = self.seq_len();
        let mut x = Array3::zeros((len, b, COPY_SYMBOLS));
        let mut cls = vec![0u32; len * b];
        let mut metric = vec![0f32; len * b];
        for j in 0..b {
            let mut input = vec![0usize; len];
            for (i, slot) in input.iter_mut().take(COPY_LEN).enumerate() {
                let sym = 1 + rng.below(8);
                *slot = sym;
                let t_out = len - COPY_LEN + i;
                cls[t_out * b + j] = sym as u32;
            }
            input[self.t + COPY_LEN - 1] = 9; // delimiter after T-1 blanks
            for (t, &sym) in input.iter().enumerate() {
                x[[t, j, sym]] = 1.0;
            }
            for t in len - COPY_LEN..len {
                metric[t * b + j] = 1.0;
            }
        }
        Batch { x, target: Target::Classes(cls), mask: vec![1.0; len * b], metric_mask: metric, loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None }
    }

    fn adding_batch(&self, b: usize, rng: &mut Rng) -> Batch {
        let len = self.t;
        let half = len / 2;
        let mut x = Array3::zeros((len, b, 2));
        let mut values = vec![0f32; len * b];
        let mut mask = vec![0f32; len * b];
        for j in 0..b {
            for t in 0..len {
                x[[t, j, 0]] = rng.uniform() as f32;
            }
            let m1 = rng.below(half);
            let m2 = half + rng.below(len - half);
            x[[m1, j, 1]] = 1.0;
            x[[m2, j, 1]] = 1.0;
            let last = (len - 1) * b + j;
            values[last] = x[[m1, j, 0]] + x[[m2, j, 0]];
            mask[last] = 1.0;
        }
        Batch { x, target: Target::Values(values), mask, metric_mask: vec![0.0; len * b], loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_batch_layout() {
        let task = Task::new(TaskKind::Copy, 5).unwrap();
        let mut rng = Rng::seed(1);
        let b = task.batch(3, &mut rng);
        assert_eq!(b.seq_len(), 25);
        let Target::Classes(cls) = &b.target else { panic!() };
        for j in 0..3 {
            // delimiter at T + 9, blanks between
            assert_eq!(b.x[[14, j, 9]], 1.0);
            for t in 10..14 {
                assert_eq!(b.x[[t, j, 0]], 1.0);
            }
            for i in 0..10 {
                let sym = (0..10).find(|&s| b.x[[i, j, s]] == 1.0).unwrap();
                assert!((1..=8).contains(&sym));
                assert_eq!(cls[(15 + i) * 3 + j] as usize, sym);
            }
            for t in 0..15 {
                assert_eq!(cls[t * 3 + j], 0);
            }
        }
        assert!((task.baseline_loss() - 10.0 * 8f64.ln() / 25.0).abs() < 1e-12);
    }

    #[test]
    fn adding_batch_has_one_marker_per_half() {
        let task = Task::new(TaskKind::Adding, 10).unwrap();
        let mut rng = Rng::seed(2);
        let b = task.batch(50, &mut rng);
        let Target::Values(v) = &b.target else { panic!() };
        for j in 0..50 {
            let first: Vec<usize> = (0..5).filter(|&t| b.x[[t, j, 1]] == 1.0).collect();
            let second: Vec<usize> = (5..10).filter(|&t| b.x[[t, j, 1]] == 1.0).collect();
            assert_eq!((first.len(), second.len()), (1, 1));
            let sum = b.x[[first[0], j, 0]] + b.x[[second[0], j, 0]];
            assert_eq!(v[9 * 50 + j], sum);
            assert_eq!(b.mask.iter().sum::<f32>(), 50.0);
        }
    }
}
