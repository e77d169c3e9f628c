//! Forecasting a multichannel series (ETTh1/ETTh2 or any CSV of the same
//! form): a window is `lookback + horizon` consecutive rows of the
//! standardised training split; the model reads `L + H − 1` inputs and
//! predicts each next row (MSE over all channels). The look-back inputs are
//! the data; the horizon's inputs, which a forecast cannot see, are
//! - `Direct`: the last look-back row held (zero input change, so WARP's
//!   weights move by A and the clock alone and its root network decodes
//!   the future times in parallel, any family can run it), or
//! - `Feedback`: the model's own prediction of each row fed back (WARP
//!   only), with teacher forcing: the data instead with probability `forcing`.
//!
//! Evaluation forecasts the same way (`train::forecast`).

use super::{Batch, Target};
use crate::data::ett::{self, Splits};
use crate::rng::Rng;
use anyhow::{ensure, Result};
use ndarray::{Array2, Array3};
use std::path::Path;

/// The training loss: squared error, or the Gaussian negative
/// log-likelihood of a head that predicts each channel's mean and sd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForecastLoss {
    #[default]
    Mse,
    Nll,
}

impl ForecastLoss {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "mse" => ForecastLoss::Mse,
            "nll" => ForecastLoss::Nll,
            other => anyhow::bail!("unknown forecasting loss '{other}': expected mse or nll"),
        })
    }
}

/// What a forecast reads in place of the horizon's unseen rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForecastMode {
    #[default]
    Direct,
    Feedback,
}

impl ForecastMode {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "direct" => ForecastMode::Direct,
            "feedback" => ForecastMode::Feedback,
            other => anyhow::bail!("unknown forecast mode '{other}': expected direct or feedback"),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Forecasting {
    /// the training series: ETT's standardised training split, or many
    /// simulated trajectories (`tasks::dynamics`)
    pub train: Vec<Array2<f32>>,
    pub lookback: usize,
    pub horizon: usize,
    /// mean squared one-step change on the training split: the loss of
    /// predicting every next row as the current one
    pub naive_step_mse: f64,
    /// teacher forcing over the horizon: each input after the look-back is
    /// the data with this probability, else the model's own prediction of
    /// it (0: training sees exactly what a forecast does)
    pub forcing: f64,
    pub mode: ForecastMode,
    pub loss: ForecastLoss,
    /// each window with its last look-back row subtracted (inputs and
    /// targets): the model forecasts the change, as the naive forecast
    /// would be zero
    pub relative: bool,
}

impl Forecasting {
    pub fn load(path: &Path, lookback: usize, horizon: usize) -> Result<(Self, Splits)> {
        let series = ett::load(path)?;
        let sp = ett::splits(&series, lookback)?;
        Ok((Self::new(vec![sp.train.clone()], lookback, horizon)?, sp))
    }

    pub fn new(train: Vec<Array2<f32>>, lookback: usize, horizon: usize) -> Result<Self> {
        ensure!(lookback >= 1 && horizon >= 1, "forecasting needs --lookback L >= 1 and --horizon H >= 1");
        ensure!(!train.is_empty(), "no training series");
        let c = train[0].dim().1;
        let (mut sq, mut count) = (0.0, 0usize);
        for s in &train {
            let n = s.dim().0;
            ensure!(s.dim().1 == c, "training series differ in their channels");
            ensure!(n >= lookback + horizon, "a training series has {n} rows, fewer than one window of look-back {lookback} + horizon {horizon}");
            let d = &s.slice(ndarray::s![1.., ..]) - &s.slice(ndarray::s![..n - 1, ..]);
            sq += d.iter().map(|&v| (v as f64).powi(2)).sum::<f64>();
            count += d.len();
        }
        Ok(Forecasting { train, lookback, horizon, naive_step_mse: sq / count as f64, forcing: 1.0, mode: ForecastMode::Direct, loss: ForecastLoss::Mse, relative: false })
    }

    pub fn channels(&self) -> usize {
        self.train[0].dim().1
    }

    /// The loss of predicting each next row as the current one: its MSE,
    /// or (NLL) with the sd that fits it best, ½ ln(mse) + ½.
    pub fn naive_step_loss(&self) -> f64 {
        match self.loss {
            ForecastLoss::Mse => self.naive_step_mse,
            ForecastLoss::Nll => 0.5 * self.naive_step_mse.ln() + 0.5,
        }
    }

    /// The model's outputs: a row, or its means and sds.
    pub fn outputs(&self) -> usize {
        match self.loss {
            ForecastLoss::Mse => self.channels(),
            ForecastLoss::Nll => 2 * self.channels(),
        }
    }

    /// Inputs per window: every row but the last, whose value is only a target.
    pub fn seq_len(&self) -> usize {
        self.lookback + self.horizon - 1
    }

    /// `b` windows from random series and starts.
    pub fn sample(&self, b: usize, rng: &mut Rng) -> Batch {
        let w = self.lookback + self.horizon;
        let picks: Vec<(usize, usize)> = (0..b)
            .map(|_| {
                let i = rng.below(self.train.len());
                (i, rng.below(self.train[i].dim().0 - w + 1))
            })
            .collect();
        let mut batch = windows(&self.train, &picks, w);
        if self.relative {
            relative_batch(&mut batch, self.lookback);
        }
        if self.loss == ForecastLoss::Nll {
            if let Target::Values(v) = std::mem::replace(&mut batch.target, Target::Values(Vec::new())) {
                batch.target = Target::Gaussian(v);
            }
        }
        if self.mode == ForecastMode::Direct {
            hold_horizon(&mut batch.x, self.lookback);
        } else {
            // fed back where the coin says; all zeros still takes the autoregressive path
            let rows = batch.seq_len() * b;
            let first = self.lookback * b;
            batch.feedback = Some((0..rows).map(|r| if r >= first && rng.uniform() >= self.forcing { 1.0 } else { 0.0 }).collect());
        }
        batch
    }
}

/// Subtract each window's row `lookback − 1` from its inputs and targets.
pub fn relative_batch(batch: &mut Batch, lookback: usize) {
    let (t_len, b, c) = batch.x.dim();
    let last = batch.x.slice(ndarray::s![lookback - 1, .., ..]).to_owned();
    for t in 0..t_len {
        let mut xt = batch.x.slice_mut(ndarray::s![t, .., ..]);
        xt -= &last;
    }
    if let Target::Values(y) | Target::Gaussian(y) = &mut batch.target {
        for (i, v) in y.iter_mut().enumerate() {
            let (j, k) = ((i / c) % b, i % c);
            *v -= last[[j, k]];
        }
    }
}

/// Inputs `(T, B, C)` from step `lookback` on become the last look-back row.
pub fn hold_horizon(x: &mut Array3<f32>, lookback: usize) {
    let last = x.slice(ndarray::s![lookback - 1, .., ..]).to_owned();
    for t in lookback..x.dim().0 {
        x.slice_mut(ndarray::s![t, .., ..]).assign(&last);
    }
}

/// Next-row batches for windows of `w` rows at (series, start) `picks`.
pub fn windows(series: &[Array2<f32>], picks: &[(usize, usize)], w: usize) -> Batch {
    let (b, c, t) = (picks.len(), series[0].dim().1, w - 1);
    let x = Array3::from_shape_fn((t, b, c), |(i, j, k)| series[picks[j].0][[picks[j].1 + i, k]]);
    let mut y = Vec::with_capacity(t * b * c);
    for i in 0..t {
        for &(si, s) in picks {
            y.extend(series[si].row(s + i + 1).iter());
        }
    }
    Batch { x, target: Target::Values(y), mask: vec![1.0; t * b], metric_mask: vec![0.0; t * b], loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_predict_the_next_row() {
        let series = Array2::from_shape_fn((30, 2), |(i, j)| (i * 10 + j) as f32);
        let f = Forecasting::new(vec![series.clone()], 4, 3).unwrap();
        assert_eq!(f.seq_len(), 6);
        let b = windows(std::slice::from_ref(&series), &[(0, 5), (0, 0)], 7);
        assert_eq!(b.x.dim(), (6, 2, 2));
        assert_eq!(b.x[[0, 0, 1]], 51.0);
        assert_eq!(b.x[[5, 1, 0]], 50.0);
        let Target::Values(y) = &b.target else { panic!() };
        // row (t = 0, window 0): the series row 6
        assert_eq!(&y[0..2], &[60.0, 61.0]);
        // row (t = 5, window 1): row 6
        assert_eq!(&y[(5 * 2 + 1) * 2..(5 * 2 + 1) * 2 + 2], &[60.0, 61.0]);
        // the one-step change is 10 in every channel
        assert!((f.naive_step_mse - 100.0).abs() < 1e-9);
        assert!(Forecasting::new(vec![series], 20, 11).is_err());
    }

    #[test]
    fn relative_windows_subtract_the_last_lookback_row() {
        let series = Array2::from_shape_fn((30, 2), |(i, j)| (i * 10 + j) as f32);
        let mut b = windows(&[series], &[(0, 5), (0, 0)], 7);
        relative_batch(&mut b, 4);
        // window 0 starts at row 5: its last look-back row is row 8 = [80, 81]
        assert_eq!(b.x[[3, 0, 0]], 0.0);
        assert_eq!(b.x[[0, 0, 1]], 51.0 - 81.0);
        assert_eq!(b.x[[5, 1, 0]], 50.0 - 30.0);
        let Target::Values(y) = &b.target else { panic!() };
        // row (t = 0, window 1): series row 1 less row 3
        assert_eq!(&y[2..4], &[-20.0, -20.0]);
    }
}
