//! Running the cases: set-up, warm-up, repeated timed runs, figures.

use super::ceilings::{self, Ceilings};
use super::{alloc, flops, scrn_context, Case, Mode, Selection, INPUT_WIDTH, OUTPUT_WIDTH, SCHEMA, SUITE_VERSION};
use crate::device::Engine;
use crate::lyapunov::{LyapInput, LyapunovConfig};
use crate::models::{Dims, InitConfig, Model, ModelKind, ModelOptions, ScanMode, ScanOptions};
use crate::rng::Rng;
use crate::tasks::{Batch, Target};
use crate::train::backend::Backend;
use crate::train::cpu::CpuBackend;
use crate::train::gpu::GpuBackend;
use crate::train::optim::OptimConfig;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// timed runs per case after the warm-up
    pub reps: usize,
    pub warmup: usize,
    /// a case stops repeating once its timed runs pass this many seconds,
    /// and is skipped when its work at the device's GEMM rate would take longer
    pub max_case_s: f64,
    pub measure_ceilings: bool,
    /// the GPU recurrent kernel (`--scan`; parallel is WARP's alone)
    pub scan: ScanMode,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { reps: 5, warmup: 1, max_case_s: 30.0, measure_ceilings: true, scan: ScanMode::Auto }
    }
}

/// One case's figures. `status` is "ok", "skipped" (with the reason in
/// `note`) or "failed" (the error in `note`); figures are absent unless ok.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    #[serde(flatten)]
    pub case: Case,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// B·T (Lyapunov: trajectories·steps) per second, from `median_s`
    pub tokens_per_s: Option<f64>,
    /// counted flops (see bench::flops) per second, from `median_s`
    pub gflops: Option<f64>,
    /// median of the timed runs, by `timing`
    pub median_s: Option<f64>,
    /// slowest minus fastest timed run
    pub spread_s: Option<f64>,
    /// median wall clock (device synchronised) of the same runs
    #[serde(default)]
    pub wall_median_s: Option<f64>,
    #[serde(default)]
    pub reps: usize,
    /// "gpu-timestamps" (compute passes on the device) or "wall-clock"
    #[serde(default)]
    pub timing: String,
    #[serde(default)]
    pub flops: f64,
    #[serde(default)]
    pub params: Option<usize>,
    /// GPU: storage buffers the case allocated; CPU: the heap's peak above the case's start
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// gflops as a fraction of the run's GEMM ceiling
    #[serde(default)]
    pub fraction_of_peak: Option<f64>,
}

impl CaseResult {
    fn not_run(case: Case, status: &str, note: String, flops: f64) -> Self {
        CaseResult {
            case,
            status: status.into(),
            note: Some(note),
            tokens_per_s: None,
            gflops: None,
            median_s: None,
            spread_s: None,
            wall_median_s: None,
            reps: 0,
            timing: String::new(),
            flops,
            params: None,
            memory_bytes: None,
            fraction_of_peak: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// "cpu" (the reference path) or "gpu" (a wgpu adapter; software ones included)
    pub engine: String,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    #[serde(default)]
    pub limits: serde_json::Value,
    #[serde(default)]
    pub features: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Host {
    pub os: String,
    pub arch: String,
    pub cpu: String,
    pub cores: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub suite_version: u32,
    /// "longmem 0.1.0" (a peer names itself, e.g. "pytorch 2.5.1")
    pub tool: String,
    #[serde(default)]
    pub commit: Option<String>,
    pub created: String,
    pub device: DeviceInfo,
    pub host: Host,
    /// whether every case is one of the suite's
    #[serde(default)]
    pub in_suite: bool,
    #[serde(default)]
    pub reps: usize,
    #[serde(default)]
    pub ceilings: Option<Ceilings>,
    /// the `--scan` the GPU cases ran with
    #[serde(default)]
    pub scan: ScanMode,
    pub cases: Vec<CaseResult>,
}

/// Random inputs and targets (never zeros), MSE on every step.
pub fn random_batch(t: usize, b: usize, rng: &mut Rng) -> Batch {
    let x = ndarray::Array3::from_shape_fn((t, b, INPUT_WIDTH), |_| rng.normal() as f32);
    let y: Vec<f32> = (0..t * b * OUTPUT_WIDTH).map(|_| rng.normal() as f32).collect();
    Batch { x, target: Target::Values(y), mask: vec![1.0; t * b], metric_mask: vec![0.0; t * b], loss_norm: None, tokens: None, carry_state: false, feedback: None, carry_at: None }
}

pub fn bench_model(case: &Case) -> Result<Model> {
    let kind = ModelKind::parse(&case.model)?;
    let opts = ModelOptions { context: scrn_context(case.hidden), ..Default::default() };
    Model::build(kind, Dims { input: INPUT_WIDTH, hidden: case.hidden, output: OUTPUT_WIDTH }, &opts)
}

struct Samples {
    primary: Vec<f64>,
    wall: Vec<f64>,
    timing: &'static str,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Warm up, then time `f` up to `reps` times (at least once) within the budget.
fn sample(engine: &Engine, opts: &BenchOptions, f: &mut dyn FnMut() -> Result<()>) -> Result<Samples> {
    for _ in 0..opts.warmup {
        f()?;
    }
    let ctx = match engine {
        Engine::Gpu(c) if c.has_pass_timing() => Some(c),
        _ => None,
    };
    let (mut primary, mut wall, mut all_timed) = (Vec::new(), Vec::new(), ctx.is_some());
    let start = Instant::now();
    for _ in 0..opts.reps.max(1) {
        if let Some(c) = ctx {
            c.start_pass_timing();
        }
        let t0 = Instant::now();
        f()?; // every backend call returns after its readback: the device is synchronised
        let w = t0.elapsed().as_secs_f64();
        wall.push(w);
        if let Some(c) = ctx {
            match c.finish_pass_timing()? {
                Some(s) if s > 0.0 => primary.push(s),
                _ => all_timed = false,
            }
        }
        if start.elapsed().as_secs_f64() > opts.max_case_s {
            break;
        }
    }
    Ok(if all_timed { Samples { primary, wall, timing: "gpu-timestamps" } } else { Samples { primary: wall.clone(), wall, timing: "wall-clock" } })
}

/// Run one case on `engine`.
pub fn run_case(engine: &Engine, case: &Case, opts: &BenchOptions, ceil: Option<&Ceilings>) -> CaseResult {
    let model = match bench_model(case) {
        Ok(m) => m,
        Err(e) => return CaseResult::not_run(case.clone(), "failed", format!("{e:#}"), 0.0),
    };
    let params = model.layout().len();
    let work = flops::case_flops(case, params).unwrap_or(0.0);
    if let Some(c) = ceil.filter(|c| c.gemm_gflops > 0.0) {
        let at_peak = work / (c.gemm_gflops * 1e9);
        if at_peak > opts.max_case_s {
            let note = format!("{:.0} s per run even at this device's GEMM rate ({:.1} GFLOP/s), over --max-case-seconds {}", at_peak, c.gemm_gflops, opts.max_case_s);
            return CaseResult::not_run(case.clone(), "skipped", note, work);
        }
    }
    match measure(engine, case, model, opts) {
        Ok((mut s, memory)) => {
            let med = median(&mut s.primary);
            let wall = median(&mut s.wall);
            let spread = s.primary.iter().cloned().fold(f64::MIN, f64::max) - s.primary.iter().cloned().fold(f64::MAX, f64::min);
            let gflops = work / med * 1e-9;
            CaseResult {
                case: case.clone(),
                status: "ok".into(),
                note: None,
                tokens_per_s: Some((case.batch * case.seq_len) as f64 / med),
                gflops: Some(gflops),
                median_s: Some(med),
                spread_s: Some(spread),
                wall_median_s: Some(wall),
                reps: s.primary.len(),
                timing: s.timing.into(),
                flops: work,
                params: Some(params),
                memory_bytes: memory,
                fraction_of_peak: ceil.filter(|c| c.gemm_gflops > 0.0).map(|c| gflops / c.gemm_gflops),
            }
        }
        Err(e) => CaseResult::not_run(case.clone(), "failed", format!("{e:#}"), work),
    }
}

fn measure(engine: &Engine, case: &Case, model: Model, opts: &BenchOptions) -> Result<(Samples, Option<u64>)> {
    let counting = alloc::installed();
    let heap0 = alloc::reset_peak();
    let gpu0 = match engine {
        Engine::Gpu(c) => c.allocated.load(Ordering::Relaxed),
        Engine::Cpu => 0,
    };
    let memory = |engine: &Engine| -> Option<u64> {
        match engine {
            Engine::Gpu(c) => Some(c.allocated.load(Ordering::Relaxed) - gpu0),
            Engine::Cpu if counting => Some(alloc::peak().saturating_sub(heap0) as u64),
            Engine::Cpu => None,
        }
    };
    let mut rng = Rng::seed(1);
    let params = model.init(&InitConfig::default(), &mut Rng::seed(0));
    if case.mode == Mode::Lyapunov {
        let cfg = LyapunovConfig {
            k: case.hidden,
            reortho: 1,
            transient: 0,
            tangent_transient: 0,
            steps: case.seq_len,
            trajectories: case.batch,
            input: LyapInput::Noise,
            noise_std: 1.0,
            h0_std: 0.5,
            seed: 3,
        };
        let drive = crate::lyapunov::Drive { cfg: &cfg, task: None, input_width: INPUT_WIDTH };
        let mut f = || -> Result<()> {
            let spec = match engine {
                Engine::Cpu => crate::lyapunov::cpu::spectrum(&model, &params, &drive, &cfg)?,
                Engine::Gpu(c) => crate::lyapunov::gpu::spectrum(c, &model, &params, &drive, &cfg)?,
            };
            anyhow::ensure!(spec.exponents.iter().all(|e| e.is_finite()), "the spectrum is not finite");
            Ok(())
        };
        // buffers are made per spectrum: count one run's
        f()?;
        let mem = memory(engine);
        let s = sample(engine, &BenchOptions { warmup: opts.warmup.saturating_sub(1), ..opts.clone() }, &mut f)?;
        return Ok((s, mem));
    }
    let batch = random_batch(case.seq_len, case.batch, &mut rng);
    let mut backend: Box<dyn Backend> = match engine {
        Engine::Cpu => Box::new(CpuBackend::new(model, params)?),
        Engine::Gpu(c) => Box::new(GpuBackend::new(c.clone(), model, &params, ScanOptions { mode: opts.scan, ..Default::default() })?),
    };
    let opt = OptimConfig::default();
    let mut step = 0u64;
    let mut f = || -> Result<()> {
        let loss = match case.mode {
            Mode::Train => {
                step += 1;
                backend.train_step(&batch, &opt.hyper(opt.lr, step))?.loss
            }
            _ => backend.forward_loss(&batch)?,
        };
        anyhow::ensure!(loss.is_finite(), "the loss is not finite ({loss})");
        Ok(())
    };
    let s = sample(engine, opts, &mut f)?;
    Ok((s, memory(engine)))
}

pub fn device_info(engine: &Engine) -> DeviceInfo {
    match engine {
        Engine::Cpu => DeviceInfo {
            engine: "cpu".into(),
            name: cpu_name(),
            // the fast f32 path for the families that have one (src/cpu_fast)
            backend: if crate::cpu_fast::reference_forced() { "cpu reference path (LONGMEM_CPU_REFERENCE=1)" } else { "cpu fast f32 path (rnn, lstm, gru, urnn; reference otherwise)" }.into(),
            device_type: "cpu".into(),
            driver: String::new(),
            driver_info: String::new(),
            limits: serde_json::Value::Null,
            features: vec![],
        },
        Engine::Gpu(c) => {
            let adapters = crate::gpu::context::enumerate();
            let r = adapters.get(c.index).map(|a| crate::gpu::context::report(c.index, a));
            DeviceInfo {
                engine: "gpu".into(),
                name: c.info.name.clone(),
                backend: format!("{:?}", c.info.backend).to_lowercase(),
                device_type: crate::gpu::context::device_type_name(c.info.device_type).into(),
                driver: c.info.driver.clone(),
                driver_info: c.info.driver_info.clone(),
                limits: r.as_ref().and_then(|r| serde_json::to_value(&r.limits).ok()).unwrap_or(serde_json::Value::Null),
                features: r.map(|r| r.features).unwrap_or_default(),
            }
        }
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|n| n.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

pub fn host() -> Host {
    Host {
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        cpu: cpu_name(),
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    }
}

/// The source commit, when the binary runs from its own checkout.
pub fn commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"]).output().ok()?;
    let id = String::from_utf8(out.stdout).ok()?.trim().to_string();
    if !out.status.success() || id.is_empty() {
        return None;
    }
    let dirty = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    Some(if dirty { format!("{id}-dirty") } else { id })
}

/// Run the selection; `progress` hears each case as it finishes.
pub fn run_suite(engine: &Engine, sel: &Selection, opts: &BenchOptions, mut progress: impl FnMut(usize, usize, &CaseResult)) -> Result<Report> {
    sel.validate()?;
    let ceilings = if opts.measure_ceilings {
        Some(match engine {
            Engine::Cpu => ceilings::cpu(),
            Engine::Gpu(c) => ceilings::gpu(c),
        }
        .context("measuring the device's ceilings")?)
    } else {
        None
    };
    let cases = sel.cases();
    let mut results = Vec::with_capacity(cases.len());
    for (i, case) in cases.iter().enumerate() {
        let r = run_case(engine, case, opts, ceilings.as_ref());
        progress(i + 1, cases.len(), &r);
        results.push(r);
    }
    Ok(Report {
        schema: SCHEMA.into(),
        suite_version: SUITE_VERSION,
        tool: format!("longmem {}", env!("CARGO_PKG_VERSION")),
        commit: commit(),
        created: super::report::utc_now(),
        device: device_info(engine),
        host: host(),
        in_suite: sel.within_suite(),
        reps: opts.reps,
        ceilings,
        scan: opts.scan,
        cases: results,
    })
}
