//! Forecasting evaluation and `longmem forecast`: from a look-back of L
//! rows, predict the next H with the model's own predictions fed back
//! (gradient-free: for WARP the weights θ_t adapt to the series through its
//! recurrence). MSE and MAE over all channels on the standardised scale,
//! beside the naive forecast that repeats the last observed row.

use super::checkpoint::Checkpoint;
use super::run::CHECKPOINT_FILE;
use crate::config::TrainConfig;
use crate::data::ett::{self, Standardiser};
use crate::models::{Dims, Model};
use crate::tasks::dynamics;
use crate::tasks::ett::{hold_horizon, ForecastLoss, ForecastMode};
use crate::tasks::TaskKind;
use anyhow::{ensure, Context, Result};
use ndarray::{s, Array2, Array3, ArrayView3};
use serde::Serialize;
use std::path::Path;

/// Where a forecasting run keeps its training statistics.
pub const SCALER_FILE: &str = "scaler.json";

/// `horizon` predicted rows `(H, B, C)` after each look-back of `context`
/// `(L, B, C)`, as the run was trained to (see `tasks::ett`); a Gaussian
/// head's means.
pub fn predict(model: &Model, p: &[f32], context: ArrayView3<f32>, horizon: usize, mode: ForecastMode, relative: bool) -> Array3<f32> {
    if relative {
        return relative_to_last(context, |ctx| predict(model, p, ctx, horizon, mode, false));
    }
    let (l, b, c) = context.dim();
    match mode {
        ForecastMode::Feedback => rollout(model, p, context, horizon, l + horizon - 1),
        ForecastMode::Direct => {
            let mut x = Array3::zeros((l + horizon - 1, b, c));
            x.slice_mut(s![..l, .., ..]).assign(&context);
            hold_horizon(&mut x, l);
            let h0 = model.initial_states(p, b);
            let st = model.forward(p, x.view(), h0.view());
            let y = model.readout_forward_x(p, st.view(), Some(x.view()));
            let o = y.dim().1;
            let y = y.into_shape_with_order((l + horizon - 1, b, o)).expect("rows");
            y.slice(s![l - 1.., .., ..c]).to_owned()
        }
    }
}

/// `--relative`: forecast the window with its last look-back row
/// subtracted, then add it back.
pub fn relative_to_last(context: ArrayView3<f32>, f: impl FnOnce(ArrayView3<f32>) -> Array3<f32>) -> Array3<f32> {
    let l = context.dim().0;
    let last = context.slice(s![l - 1, .., ..]).to_owned();
    let shifted = &context - &last;
    let mut pred = f(shifted.view());
    for mut row in pred.outer_iter_mut() {
        row += &last;
    }
    pred
}

/// Forecast with every prediction fed back as the next input; `window`:
/// the inputs of a training sequence (WARP's clock).
pub fn rollout(model: &Model, p: &[f32], context: ArrayView3<f32>, horizon: usize, window: usize) -> Array3<f32> {
    if let Model::Warp(w) = model {
        let c = context.dim().2;
        return w.rollout(p, context, horizon, window).slice(s![.., .., ..c]).to_owned();
    }
    // a state-carrying family: one step at a time from the last state
    let (l, b, c) = context.dim();
    let h0 = model.initial_states(p, b);
    let st = model.forward(p, context, h0.view());
    let mut out = Array3::zeros((horizon, b, c));
    let mut last = st.slice(s![l - 1..=l, .., ..]).to_owned();
    for k in 0..horizon {
        let y = model.readout_forward(p, last.view());
        out.slice_mut(s![k, .., ..]).assign(&y.slice(s![.., ..c]));
        if k + 1 < horizon {
            // the means (a Gaussian head's first C outputs) are the next input
            let x = y.slice(s![.., ..c]).to_owned().into_shape_with_order((1, b, c)).expect("one step");
            last = model.forward(p, x.view(), last.slice(s![1, .., ..]));
        }
    }
    out
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Errors {
    pub mse: f64,
    pub mae: f64,
    /// the same for the naive forecast (the last look-back row repeated)
    pub naive_mse: f64,
    pub naive_mae: f64,
    pub windows: usize,
}

/// Errors over every window of every series: starts 0, 1, ... while L + H
/// rows fit, in batches of `batch` windows.
#[allow(clippy::too_many_arguments)]
pub fn split_errors(model: &Model, p: &[f32], series: &[Array2<f32>], lookback: usize, horizon: usize, mode: ForecastMode, relative: bool, batch: usize) -> Result<Errors> {
    let c = series.first().context("no series to evaluate")?.dim().1;
    let o = model.dims().output;
    ensure!(model.dims().input == c && (o == c || o == 2 * c), "the model reads {} channels and has {o} outputs; the series has {c}", model.dims().input);
    let mut starts = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let n = s.dim().0;
        ensure!(n >= lookback + horizon, "a series has {n} rows, fewer than look-back {lookback} + horizon {horizon}");
        starts.extend((0..=n - lookback - horizon).map(|t| (i, t)));
    }
    let (mut se, mut ae, mut nse, mut nae) = (0.0, 0.0, 0.0, 0.0);
    for chunk in starts.chunks(batch.max(1)) {
        let b = chunk.len();
        let ctx = Array3::from_shape_fn((lookback, b, c), |(t, j, k)| series[chunk[j].0][[chunk[j].1 + t, k]]);
        let pred = predict(model, p, ctx.view(), horizon, mode, relative);
        ensure!(pred.iter().all(|v| v.is_finite()), "the model's forecast is not finite for windows from row {} of series {}", chunk[0].1, chunk[0].0);
        for (j, &(si, s0)) in chunk.iter().enumerate() {
            let series = &series[si];
            for t in 0..horizon {
                for k in 0..c {
                    let truth = series[[s0 + lookback + t, k]] as f64;
                    let e = pred[[t, j, k]] as f64 - truth;
                    let ne = series[[s0 + lookback - 1, k]] as f64 - truth;
                    se += e * e;
                    ae += e.abs();
                    nse += ne * ne;
                    nae += ne.abs();
                }
            }
        }
    }
    let m = (starts.len() * horizon * c) as f64;
    Ok(Errors { mse: se / m, mae: ae / m, naive_mse: nse / m, naive_mae: nae / m, windows: starts.len() })
}

#[derive(Clone, Debug, Serialize)]
pub struct ForecastEval {
    /// test split (ETT: standardised scale), all channels
    pub mse: f64,
    pub mae: f64,
    pub naive_mse: f64,
    pub naive_mae: f64,
    pub test: Errors,
    pub valid: Errors,
    pub lookback: usize,
    pub horizon: usize,
    pub mode: ForecastMode,
    pub step: u64,
    pub device: String,
}

/// The run's model and parameters at its checkpoint.
fn load_run(dir: &Path, cfg: &TrainConfig, channels: usize) -> Result<(Model, Checkpoint)> {
    let outputs = if cfg.forecast_loss == ForecastLoss::Nll { 2 * channels } else { channels };
    let dims = Dims { input: channels, hidden: cfg.hidden, output: outputs };
    let model = Model::build(cfg.model, dims, &cfg.model_options())?;
    let ck = Checkpoint::load(&model, &dir.join(CHECKPOINT_FILE))?;
    Ok((model, ck))
}

/// Trajectories of a dynamics task's validation and test splits.
pub const SIM_EVAL_TRAJECTORIES: usize = 256;

/// The validation and test series of a forecasting run (ETT: standardised).
#[allow(clippy::type_complexity)]
pub fn eval_series(cfg: &TrainConfig) -> Result<(Vec<Array2<f32>>, Vec<Array2<f32>>)> {
    if let Some(system) = cfg.task.system() {
        let rows = cfg.lookback + cfg.horizon;
        let sim = |split| dynamics::trajectories(system, split, SIM_EVAL_TRAJECTORIES, rows, cfg.seed).map(|(s, _)| s);
        return Ok((sim(dynamics::Split::Valid)?, sim(dynamics::Split::Test)?));
    }
    if cfg.task == TaskKind::MnistCompletion {
        let dir = Path::new(cfg.data.as_deref().context("the run's config names no --data folder")?);
        let (_, valid) = crate::tasks::mnist::train_valid(dir)?;
        let test = crate::data::mnist::load(dir, crate::data::mnist::Split::Test)?;
        return Ok((crate::tasks::mnist::image_series(&valid, None), crate::tasks::mnist::image_series(&test, None)));
    }
    let file = cfg.data.as_deref().context("the run's config names no --data file")?;
    let sp = ett::splits(&ett::load(Path::new(file))?, cfg.lookback)?;
    Ok((vec![sp.valid], vec![sp.test]))
}

/// Validation and test errors of a forecasting run's checkpoint (on the CPU:
/// the rollout is sequential and small).
pub fn evaluate(dir: &Path, cfg: &TrainConfig) -> Result<ForecastEval> {
    ensure!(cfg.task.is_forecasting(), "{} is not a forecasting run", dir.display());
    let (valid_s, test_s) = eval_series(cfg)?;
    let (model, ck) = load_run(dir, cfg, test_s[0].dim().1)?;
    let batch = 256;
    let valid = split_errors(&model, &ck.params, &valid_s, cfg.lookback, cfg.horizon, cfg.forecast_mode, cfg.relative, batch)?;
    let test = split_errors(&model, &ck.params, &test_s, cfg.lookback, cfg.horizon, cfg.forecast_mode, cfg.relative, batch)?;
    plot_test_windows(dir, cfg, &model, &ck.params, &test_s)?;
    Ok(ForecastEval {
        mse: test.mse,
        mae: test.mae,
        naive_mse: test.naive_mse,
        naive_mae: test.naive_mae,
        test,
        valid,
        lookback: cfg.lookback,
        horizon: cfg.horizon,
        mode: cfg.forecast_mode,
        step: ck.step,
        device: "cpu (rollout)".into(),
    })
}

/// forecast.svg in the run directory: three test windows, forecast against
/// truth (every channel of a simulated system; ETT's oil temperature).
fn plot_test_windows(dir: &Path, cfg: &TrainConfig, model: &Model, p: &[f32], test: &[Array2<f32>]) -> Result<()> {
    let (l, h) = (cfg.lookback, cfg.horizon);
    let picks: Vec<(usize, usize)> = if test.len() >= 3 {
        (0..3).map(|i| (i, 0)).collect()
    } else {
        let n = test[0].dim().0 - l - h;
        (0..3).map(|k| (0, k * n / 2)).collect()
    };
    let c = test[0].dim().1;
    let ctx = Array3::from_shape_fn((l, picks.len(), c), |(t, j, k)| test[picks[j].0][[picks[j].1 + t, k]]);
    let pred = predict(model, p, ctx.view(), h, cfg.forecast_mode, cfg.relative);
    let channels: Vec<usize> = if cfg.task.system().is_some() { (0..c).collect() } else { vec![c - 1] };
    let mut panels = Vec::new();
    for (j, &(si, s0)) in picks.iter().enumerate() {
        for &k in &channels {
            panels.push(crate::plot::ForecastPanel {
                label: format!("test window {} (series {si}, row {s0}), channel {k}", j + 1),
                truth: (0..l + h).map(|t| test[si][[s0 + t, k]]).collect(),
                forecast: (0..h).map(|t| pred[[t, j, k]]).collect(),
                lookback: l,
            });
        }
    }
    if cfg.task == TaskKind::MnistCompletion {
        let side = 28;
        let images: Vec<(Vec<f32>, Vec<f32>)> = picks
            .iter()
            .enumerate()
            .map(|(j, &(si, _))| {
                let truth: Vec<f32> = test[si].column(0).to_vec();
                let mut done = truth[..l].to_vec();
                done.extend((0..h).map(|t| pred[[t, j, 0]]));
                (truth, done)
            })
            .collect();
        let title = format!("{}: truth | completion of the last {h} pixels (red)", cfg.model.name());
        crate::plot::completion_svg(&dir.join("completion.svg"), &images, side, l, &title)?;
    }
    let title = format!("{} forecasts: look-back {l}, horizon {h} ({} mode)", cfg.model.name(), format!("{:?}", cfg.forecast_mode).to_lowercase());
    crate::plot::forecast_svg(&dir.join("forecast.svg"), &panels, &title)
}

/// The run's training statistics: its scaler.json, else refitted from its data.
pub fn scaler(dir: &Path, cfg: &TrainConfig) -> Result<Standardiser> {
    let path = dir.join(SCALER_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("{} is unusable", path.display()));
    }
    let file = cfg.data.as_deref().context("the run has no scaler.json and its config names no --data file")?;
    Ok(ett::splits(&ett::load(Path::new(file))?, cfg.lookback)?.scaler)
}

/// `longmem forecast`: the `horizon` rows after the last `lookback` rows of
/// `context` (a CSV like the training data), in the data's own units.
pub fn forecast(dir: &Path, cfg: &TrainConfig, context: &Path, horizon: usize) -> Result<(Vec<String>, Array2<f32>)> {
    ensure!(cfg.task == TaskKind::Ett, "{} is not a run trained on a CSV series (--task ett): forecast its own test trajectories with `longmem eval`", dir.display());
    ensure!(horizon >= 1, "--horizon must be at least 1");
    let sc = scaler(dir, cfg)?;
    let series = ett::load(context)?;
    ensure!(series.columns == sc.columns, "{} has columns {:?}; the run was trained on {:?}", context.display(), series.columns, sc.columns);
    let l = cfg.lookback;
    ensure!(series.len() >= l, "{} has {} rows; the run forecasts from a look-back of {l}", context.display(), series.len());
    let z = sc.apply(series.values.slice(s![series.len() - l.., ..]));
    let (model, ck) = load_run(dir, cfg, series.channels())?;
    let c = series.channels();
    let ctx = z.into_shape_with_order((l, 1, c)).expect("one window");
    let pred = match cfg.forecast_mode {
        // on the trained clock: τ runs past 1 beyond the trained horizon
        ForecastMode::Feedback => {
            let window = cfg.lookback + cfg.horizon - 1;
            let run = |ctx: ArrayView3<f32>| rollout(&model, &ck.params, ctx, horizon, window);
            if cfg.relative {
                relative_to_last(ctx.view(), run)
            } else {
                run(ctx.view())
            }
        }
        // on the trained window, cut to the rows asked for
        ForecastMode::Direct => {
            ensure!(horizon <= cfg.horizon, "the run forecasts {} rows directly (its --horizon); ask for at most that many", cfg.horizon);
            predict(&model, &ck.params, ctx.view(), cfg.horizon, ForecastMode::Direct, cfg.relative).slice(s![..horizon, .., ..]).to_owned()
        }
    };
    let pred = pred.into_shape_with_order((horizon, c)).expect("one window");
    Ok((sc.columns.clone(), sc.invert(pred.view())))
}
