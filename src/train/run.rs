//! The training loop behind `longmem train` and the evaluation behind
//! `longmem eval`, on whichever backend the device choice gives.

use super::backend::Backend;
use super::checkpoint::{write_atomic, Checkpoint};
use super::cpu::CpuBackend;
use super::gpu::GpuBackend;
use super::loss::accuracy;
use super::metrics::{self, MetricsLine};
use crate::config::TrainConfig;
use crate::device::{resolve, Engine};
use crate::models::{Dims, Model};
use crate::rng::Rng;
use crate::analysis::eigs::{self, eigen_record, EigRecord};
use crate::tasks::{FilterKind, Task, TaskKind};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const STREAM_INIT: u64 = 1;
const STREAM_DATA: u64 = 2;
const STREAM_EVAL: u64 = 3;

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
pub const LOSS_PLOT: &str = "loss.svg";
pub const FLOSS_PLOT: &str = "floss.svg";
pub const EIGS_FILE: &str = "eigs.jsonl";
pub const EIGS_PLOT: &str = "eigs.svg";
pub const OUTLIER_PLOT: &str = "outlier.svg";

/// Eigenvalues of W and the alignment of u (first input column) and v
/// (first readout row) with the leading eigenvectors.
pub fn eigen_snapshot(model: &Model, step: u64, p: &[f32]) -> Result<EigRecord> {
    let l = model.layout();
    let n = model.dims().hidden;
    let input = model.dims().input;
    let w = &p[l.get("w_rec")?.range()];
    let w_in = l.get("w_in")?.offset;
    let u: Vec<f32> = (0..n).map(|i| p[w_in + i * input]).collect();
    let w_out = l.get("w_out")?.offset;
    eigen_record(step, w, n, &u, &p[w_out..w_out + n])
}

pub fn build_model(cfg: &TrainConfig) -> Result<(Task, Model)> {
    let task = cfg.task()?;
    let dims = Dims { input: task.input_width(), hidden: cfg.hidden, output: task.output_width() };
    Ok((task, Model::build(cfg.model, dims, &cfg.model_options())?))
}

pub fn backend(engine: &Engine, model: Model, params: Vec<f32>, cfg: &TrainConfig) -> Result<Box<dyn Backend>> {
    Ok(match engine {
        Engine::Cpu => Box::new(CpuBackend::new(model, params)?),
        Engine::Gpu(ctx) => Box::new(GpuBackend::new(ctx.clone(), model, &params, cfg.scan_options())?),
    })
}

/// Where the run is and how the user is told about it.
pub struct RunOptions {
    pub out: PathBuf,
    pub resume: bool,
    /// print log lines (and a progress bar on a terminal)
    pub verbose: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub steps: u64,
    pub final_loss: f64,
    pub baseline_loss: f64,
    pub device: String,
}

pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<RunSummary> {
    if cfg.task.is_lm() {
        return super::lm::train(cfg, opts);
    }
    cfg.validate()?;
    let engine = resolve(&cfg.device, cfg.adapter.as_deref())?;
    train_on(cfg, opts, &engine)
}

pub fn train_on(cfg: &TrainConfig, opts: &RunOptions, engine: &Engine) -> Result<RunSummary> {
    let mut cfg = cfg.clone();
    cfg.resolve();
    let cfg = &cfg;
    cfg.validate()?;
    let (task, model) = build_model(cfg)?;
    let dir = &opts.out;
    let ck_path = dir.join(CHECKPOINT_FILE);
    let metrics_path = dir.join(METRICS_FILE);
    let say = |msg: String| {
        if opts.verbose {
            eprintln!("{msg}");
        }
    };
    let fallback = if cfg.device == "auto" && matches!(engine, Engine::Cpu) { " (no Vulkan, Metal or DX12 adapter found)" } else { "" };
    say(format!("device: {}{fallback}", engine.describe_for(&model)));

    let (params, m, v, start, data_rng, log_acc, floss_moments, floss_done) = if opts.resume {
        let ck = Checkpoint::load(&model, &ck_path)?;
        if ck.step >= cfg.steps {
            bail!("{} is already at step {} of {}; pass a larger --steps to train further", dir.display(), ck.step, cfg.steps);
        }
        // a line at the checkpoint step off the log grid was the end of an
        // earlier, shorter run: an unbroken run would not have it
        let keep = if ck.step.is_multiple_of(cfg.log_every) { ck.step } else { ck.step - 1 };
        metrics::truncate_after(&metrics_path, keep)?;
        if dir.join(EIGS_FILE).exists() {
            eigs::truncate_after(&dir.join(EIGS_FILE), ck.step)?;
        }
        say(format!("resuming {} from step {}", dir.display(), ck.step));
        let floss_moments = (!ck.floss_m.is_empty()).then(|| (ck.floss_m.clone(), ck.floss_v.clone()));
        let floss_done = ck.floss_updates.unwrap_or_else(|| cfg.floss_updates_through(ck.step));
        (ck.params, Some(ck.optim_m), Some(ck.optim_v), ck.step, Rng::from_state(ck.data_rng), ck.log_acc, floss_moments, floss_done)
    } else {
        if ck_path.exists() || metrics_path.exists() {
            bail!("{} already holds a run; pass --resume {} to continue it, or choose another --out", dir.display(), dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create run directory {}", dir.display()))?;
        match &cfg.init_from {
            Some(src) => {
                let (p, fm, n) = init_from(&model, cfg, Path::new(src))?;
                say(format!("starting from the parameters of {src}{}", if fm.is_some() { format!(" (and its flossing optimizer, {n} updates)") } else { String::new() }));
                (p, None, None, 0, Rng::stream(cfg.seed, STREAM_DATA), (0.0, 0), fm, n)
            }
            None => {
                let p = cfg.initial_params(&model, &mut Rng::stream(cfg.seed, STREAM_INIT));
                (p, None, None, 0, Rng::stream(cfg.seed, STREAM_DATA), (0.0, 0), None, 0)
            }
        }
    };
    write_atomic(&dir.join(CONFIG_FILE), cfg.to_toml().as_bytes())?;
    if let (Some(f), TaskKind::Ett) = (&task.ett, cfg.task) {
        // what `longmem forecast` standardises a new series with
        let file = cfg.data.as_deref().context("a forecasting task has --data")?;
        let sc = crate::data::ett::splits(&crate::data::ett::load(std::path::Path::new(file))?, f.lookback)?.scaler;
        write_atomic(&dir.join(super::forecast::SCALER_FILE), serde_json::to_string_pretty(&sc)?.as_bytes())?;
    }

    let mut be = backend(engine, model.clone(), params, cfg)?;
    if let (Some(m), Some(v)) = (m, v) {
        let p = be.params()?;
        be.load(&p, &m, &v)?;
    }
    let mut data_rng = data_rng;
    let eigs_path = dir.join(EIGS_FILE);
    let study = cfg.task == TaskKind::Filter;
    if study && start == 0 {
        eigs::append_jsonl(&eigs_path, &eigen_snapshot(&model, 0, &be.params()?)?)?;
    }
    let optim = cfg.optim();
    let baseline = task.baseline_loss();
    let mut last_ck_step = if opts.resume { Some(start) } else { None };
    let bar = (opts.verbose && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(cfg.steps);
        b.set_style(indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]").expect("template"));
        b.set_position(start);
        b
    });

    let t0 = Instant::now();
    // optimizer updates so far (training steps and flossing updates): Adam's bias correction counts both
    // (a fresh run counts its flossing-before updates as it makes them)
    let mut floss_done = floss_done;
    // with --floss-optimizer separate the training optimizer counts training
    // steps only, and flossing keeps its own moments here while training runs
    let separate = cfg.floss_separate_optimizer && cfg.flossing();
    let mut updates = if separate { start } else { start + floss_done };
    let n_params = be.params()?.len();
    let mut floss_moments = match floss_moments {
        Some(fm) if separate => Some(fm),
        Some(_) => None,
        None if separate && floss_done > 0 && opts.resume => bail!(
            "{} has no flossing optimizer state but its config asks for a separate one (a run begun before flossing had its own optimizer: set floss_separate_optimizer = false in its config.toml)",
            ck_path.display()
        ),
        None => separate.then(|| (vec![0f32; n_params], vec![0f32; n_params])),
    };
    // swap the optimizer moments held by the backend with those in `other`
    let swap_moments = |be: &mut dyn Backend, other: &mut (Vec<f32>, Vec<f32>)| -> Result<()> {
        let held = be.optim_state()?;
        let p = be.params()?;
        be.load(&p, &other.0, &other.1)?;
        *other = held;
        Ok(())
    };
    let log_floss = |step: u64, done: u64, r: &super::floss::FlossResult, elapsed: f64| -> Result<()> {
        let line = MetricsLine {
            step,
            loss: r.loss,
            baseline_loss: None,
            accuracy: None,
            grad_norm: r.grads.iter().map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt(),
            lr: cfg.lr,
            elapsed_s: elapsed,
            steps_per_s: 0.0,
            phase: Some("floss".into()),
            floss_updates: Some(done),
            lyapunov: Some(r.exponents.clone()),
            epoch: None,
            perplexity: None,
        };
        metrics::append(&metrics_path, &line)
    };
    if !opts.resume && cfg.floss_before > 0 {
        say(format!("flossing: {} updates before training (k = {}, Tp = {})", cfg.floss_before, cfg.floss_k, cfg.floss_len));
        if let Some(fm) = floss_moments.as_mut() {
            swap_moments(&mut *be, fm)?;
        }
        for j in 0..cfg.floss_before {
            floss_done += 1;
            let count = if separate { floss_done } else { updates + 1 };
            updates += u64::from(!separate);
            let r = super::floss::floss_update(&mut *be, &model, &task, cfg, floss_done, &optim.hyper(cfg.lr, count))?;
            if floss_done % cfg.log_every == 0 || j + 1 == cfg.floss_before {
                log_floss(0, floss_done, &r, t0.elapsed().as_secs_f64())?;
                say(format!("floss {floss_done:>5}  mean λ² {:.3e}  λ1 {:.4}", r.loss, r.exponents.iter().cloned().fold(f64::NEG_INFINITY, f64::max)));
            }
        }
        if let Some(fm) = floss_moments.as_mut() {
            swap_moments(&mut *be, fm)?;
        }
        if cfg.steps == 0 {
            // a flossing-only run: its checkpoint is what --init-from starts from
            let (m, v) = be.optim_state()?;
            let (floss_m, floss_v) = floss_moments.clone().unwrap_or_default();
            let ck = Checkpoint { model: model.kind(), dims: model.dims(), bias: model.has_bias(), step: 0, params: be.params()?, optim_m: m, optim_v: v, floss_m, floss_v, floss_updates: Some(floss_done), data_rng: data_rng.state(), log_acc: (0.0, 0) };
            ck.save(&model, &ck_path)?;
        }
    }
    let (mut acc_loss, mut acc_n, mut last_log_t, mut last_log_step) = (log_acc.0, log_acc.1, 0.0f64, start);
    let mut final_loss = f64::NAN;
    for step in start + 1..=cfg.steps {
        if cfg.floss_burst_at(step) {
            if let Some(fm) = floss_moments.as_mut() {
                swap_moments(&mut *be, fm)?;
            }
            for j in 0..cfg.floss_burst {
                floss_done += 1;
                let count = if separate { floss_done } else { updates + 1 };
                updates += u64::from(!separate);
                let r = super::floss::floss_update(&mut *be, &model, &task, cfg, floss_done, &optim.hyper(cfg.schedule.lr(cfg.lr, step - 1), count))?;
                if j + 1 == cfg.floss_burst {
                    log_floss(step, floss_done, &r, t0.elapsed().as_secs_f64())?;
                }
            }
            if let Some(fm) = floss_moments.as_mut() {
                swap_moments(&mut *be, fm)?;
            }
        }
        let batch = task.batch(cfg.batch, &mut data_rng);
        let lr = cfg.schedule.lr(cfg.lr, step - 1);
        updates += 1;
        let h = optim.hyper(lr, updates);
        let out = if cfg.floss_weight > 0.0 {
            // training gradient plus w × the flossing gradient, one update
            let (loss, mut g) = be.gradients(&batch)?;
            let f = super::floss::floss_gradient(&*be, &model, &task, cfg, 1_000_000_000 + step)?;
            for (gi, fi) in g.iter_mut().zip(&f.grads) {
                *gi += cfg.floss_weight as f32 * fi;
            }
            let grad_norm = be.apply_gradients(&g, &h)?;
            super::backend::StepOut { loss, grad_norm }
        } else {
            be.train_step(&batch, &h)?
        };
        if !out.loss.is_finite() || !out.grad_norm.is_finite() {
            let what = if out.loss.is_finite() { "the gradient norm" } else { "the loss" };
            let keep = match last_ck_step {
                Some(s) => format!("the last good checkpoint is {} (step {s})", ck_path.display()),
                None => "no checkpoint had been written yet".to_string(),
            };
            bail!("{what} became {} at step {step}; training stopped and {keep}. Lower --lr or set --clip.", if out.loss.is_finite() { out.grad_norm } else { out.loss });
        }
        acc_loss += out.loss as f64;
        acc_n += 1;
        // what the checkpoint carries: the end-of-run line is off the grid
        let on_grid = step % cfg.log_every == 0;
        let pending = if on_grid { (0.0, 0) } else { (acc_loss, acc_n) };
        if step % cfg.log_every == 0 || step == cfg.steps {
            let accuracy = if task.has_accuracy() {
                let (_, y) = be.evaluate(&batch)?;
                accuracy(&y, task.output_width(), &batch.target, &batch.metric_mask)
            } else {
                None
            };
            let elapsed = t0.elapsed().as_secs_f64();
            let line = MetricsLine {
                step,
                loss: acc_loss / acc_n as f64,
                baseline_loss: Some(baseline),
                accuracy,
                grad_norm: out.grad_norm as f64,
                lr,
                elapsed_s: elapsed,
                steps_per_s: (step - last_log_step) as f64 / (elapsed - last_log_t).max(1e-9),
                phase: None,
                floss_updates: None,
                lyapunov: None,
                epoch: None,
                perplexity: None,
            };
            metrics::append(&metrics_path, &line)?;
            final_loss = line.loss;
            let msg = format!(
                "step {step:>6}  loss {:.5}  baseline {:.5}{}  {:.1} steps/s",
                line.loss,
                baseline,
                accuracy.map(|a| format!("  accuracy {a:.3}")).unwrap_or_default(),
                line.steps_per_s
            );
            match &bar {
                Some(b) => b.set_message(msg),
                None => say(msg),
            }
            acc_loss = 0.0;
            acc_n = 0;
            last_log_t = elapsed;
            last_log_step = step;
        }
        if study && (step % cfg.eig_interval() == 0 || step == cfg.steps) {
            eigs::append_jsonl(&eigs_path, &eigen_snapshot(&model, step, &be.params()?)?)?;
        }
        if step % cfg.checkpoint_every == 0 || step == cfg.steps {
            let (m, v) = be.optim_state()?;
            let (floss_m, floss_v) = floss_moments.clone().unwrap_or_default();
            let ck = Checkpoint { model: model.kind(), dims: model.dims(), bias: model.has_bias(), step, params: be.params()?, optim_m: m, optim_v: v, floss_m, floss_v, floss_updates: Some(floss_done), data_rng: data_rng.state(), log_acc: pending };
            ck.save(&model, &ck_path)?;
            last_ck_step = Some(step);
        }
        if let Some(b) = &bar {
            b.set_position(step);
        }
    }
    if let Some(b) = bar {
        b.finish();
    }
    let lines = metrics::read(&metrics_path)?;
    let title = format!("{} on {:?} (T = {}, hidden {})", model.kind().name(), cfg.task, cfg.seq_len, cfg.hidden);
    if cfg.steps > 0 {
        crate::plot::loss_svg(&dir.join(LOSS_PLOT), &lines, &title)?;
    }
    if cfg.flossing() {
        crate::plot::floss_svg(&dir.join(FLOSS_PLOT), &lines, &format!("gradient flossing (k = {}, Tp = {})", cfg.floss_k, cfg.floss_len))?;
    }
    if study {
        let spec = cfg.filter_spec();
        let records = eigs::read_jsonl(&eigs_path)?;
        let what = match spec.kind {
            FilterKind::Integrator => "integrator".to_string(),
            FilterKind::Leaky => format!("leaky integrator, λ = {}", spec.decay),
            FilterKind::Oscillator => format!("damped oscillator, λ = {}, ω = {}", spec.decay, spec.freq),
        };
        let (modulus, phase) = match spec.kind {
            FilterKind::Integrator => (1.0, 0.0),
            FilterKind::Leaky => (spec.decay, 0.0),
            FilterKind::Oscillator => (spec.decay, spec.freq),
        };
        crate::plot::eigs_svg(&dir.join(EIGS_PLOT), &records, &spec.target_eigs(), &format!("eigenvalues of W during training ({what})"))?;
        crate::plot::outlier_svg(&dir.join(OUTLIER_PLOT), &records, modulus, Some(phase), &format!("leading eigenvalue ({what})"))?;
    }
    if final_loss.is_nan() {
        final_loss = lines.iter().rev().find(|l| l.is_training()).map(|l| l.loss).unwrap_or(f64::NAN);
    }
    say(format!("done: {} (loss {final_loss:.5}, baseline {baseline:.5})", dir.display()));
    Ok(RunSummary { steps: cfg.steps, final_loss, baseline_loss: baseline, device: engine.describe() })
}

/// What `init_from` starts a run with: the parameters of the checkpoint in
/// `src` (a run directory or a checkpoint file) and, when both runs floss
/// with a separate optimizer, that optimizer's moments and update count, so
/// a run started from a flossing-only run continues as one run with
/// `--floss-before` would. The training optimizer always starts fresh.
#[allow(clippy::type_complexity)]
fn init_from(model: &Model, cfg: &TrainConfig, src: &Path) -> Result<(Vec<f32>, Option<(Vec<f32>, Vec<f32>)>, u64)> {
    let file = if src.is_dir() { src.join(CHECKPOINT_FILE) } else { src.to_path_buf() };
    if !file.exists() {
        bail!("--init-from {}: there is no checkpoint at {}", src.display(), file.display());
    }
    let ck = Checkpoint::load(model, &file).with_context(|| format!("--init-from {}", src.display()))?;
    let separate = cfg.floss_separate_optimizer && cfg.flossing();
    match (separate, ck.floss_m.is_empty(), ck.floss_updates) {
        (true, false, Some(n)) => Ok((ck.params, Some((ck.floss_m, ck.floss_v)), n)),
        _ => Ok((ck.params, None, 0)),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub loss: f64,
    pub baseline_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    pub step: u64,
    pub batches: usize,
    pub batch: usize,
    pub device: String,
}

/// Evaluate a run's checkpoint on fresh batches (a stream training never uses).
pub fn evaluate(dir: &Path, engine: &Engine, batches: usize, seed: Option<u64>) -> Result<EvalReport> {
    let cfg = TrainConfig::load(&dir.join(CONFIG_FILE)).with_context(|| format!("{} is not a run directory", dir.display()))?;
    // fresh batches of an MNIST task would be training images
    if cfg.task.is_forecasting() {
        bail!("{} is a forecasting run: evaluate it on its validation and test splits with train::forecast::evaluate", dir.display());
    }
    if cfg.task.is_mnist() {
        bail!("{} is an MNIST run: evaluate it on its validation and test splits with train::mnist::evaluate", dir.display());
    }
    let (task, model) = build_model(&cfg)?;
    let ck = Checkpoint::load(&model, &dir.join(CHECKPOINT_FILE))?;
    let mut be = backend(engine, model, ck.params, &cfg)?;
    let mut rng = Rng::stream(seed.unwrap_or(cfg.seed), STREAM_EVAL);
    let (mut loss, mut acc, mut acc_n) = (0.0, 0.0, 0);
    for _ in 0..batches.max(1) {
        let b = task.batch(cfg.batch, &mut rng);
        let (l, y) = be.evaluate(&b)?;
        loss += l as f64;
        if let Some(a) = accuracy(&y, task.output_width(), &b.target, &b.metric_mask) {
            acc += a;
            acc_n += 1;
        }
    }
    let n = batches.max(1) as f64;
    Ok(EvalReport {
        loss: loss / n,
        baseline_loss: task.baseline_loss(),
        accuracy: (acc_n > 0).then(|| acc / acc_n as f64),
        step: ck.step,
        batches: batches.max(1),
        batch: cfg.batch,
        device: engine.describe(),
    })
}
