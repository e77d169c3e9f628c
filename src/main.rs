//! The `longmem` command line: train, eval, info.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use longmem::config::TrainConfig;
use longmem::device::resolve;
use longmem::gpu::context::{enumerate, pick, report};
use longmem::models::{InitKind, ModelKind};
use longmem::tasks::TaskKind;
use longmem::train::run::{self, CONFIG_FILE};
use std::path::PathBuf;

mod bench_cmd;
mod train_cmd;

use train_cmd::TrainArgs;

#[global_allocator]
static ALLOC: longmem::bench::alloc::CountingAlloc = longmem::bench::alloc::CountingAlloc;

#[derive(Parser)]
#[command(name = "longmem", version, about = "Train recurrent networks with long memory on any GPU (wgpu) or the CPU reference path")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a model; writes config.toml, metrics.jsonl, checkpoint.safetensors and loss.svg
    Train(Box<TrainArgs>),
    /// Evaluate a run's checkpoint on fresh batches (MNIST: on its whole validation and test splits)
    Eval(EvalArgs),
    /// Lyapunov spectrum of a fresh model or a run's checkpoint; writes lyapunov.json and lyapunov.svg
    Lyapunov(LyapArgs),
    /// Generate text from a language model's run
    Sample(SampleArgs),
    /// Forecast the rows after a series' last look-back from a forecasting run (--task ett), as CSV
    Forecast(ForecastArgs),
    /// Plot the training-loss curves of several runs on one chart
    Plot(PlotArgs),
    /// Throughput suite (forward, training step, Lyapunov) on one device; writes bench.json, bench.md, bench.svg
    Bench(Box<bench_cmd::BenchArgs>),
    /// List GPU adapters with their limits and features
    Info {
        /// print JSON
        #[arg(long)]
        json: bool,
    },
}

/// `--device` and `--adapter` for the commands that take them as plain flags.
#[derive(Args)]
pub struct DeviceArgs {
    /// auto | gpu | cpu
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, env = "LONGMEM_ADAPTER")]
    adapter: Option<String>,
}

impl DeviceArgs {
    pub fn resolve(&self) -> Result<longmem::device::Engine> {
        resolve(&self.device, self.adapter.as_deref())
    }
}

#[derive(Args)]
struct PlotArgs {
    /// run directories (each with its metrics.jsonl)
    #[arg(required = true, value_name = "RUN")]
    runs: Vec<PathBuf>,
    /// the SVG to write
    #[arg(long, default_value = "compare.svg")]
    out: PathBuf,
    #[arg(long, default_value = "training loss")]
    title: String,
}

#[derive(Args)]
struct EvalArgs {
    /// run directory
    #[arg(long)]
    run: PathBuf,
    /// number of fresh batches (not for MNIST, which reads whole splits)
    #[arg(long, default_value_t = 10)]
    batches: usize,
    #[arg(long)]
    seed: Option<u64>,
    /// auto | gpu | cpu (default: the run's)
    #[arg(long)]
    device: Option<String>,
    #[arg(long, env = "LONGMEM_ADAPTER")]
    adapter: Option<String>,
    /// print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SampleArgs {
    /// run directory of a language model (--task ptb or text)
    #[arg(long)]
    run: PathBuf,
    /// tokens to generate
    #[arg(long, default_value_t = 100)]
    length: usize,
    /// softmax temperature (0 = always the most likely token)
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// text the model reads before it generates
    #[arg(long, default_value = "")]
    prime: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct ForecastArgs {
    /// run directory of a forecasting model (--task ett)
    #[arg(long)]
    run: PathBuf,
    /// CSV with the run's columns (timestamp first); its last look-back rows are the context
    #[arg(long, value_name = "FILE")]
    context: PathBuf,
    /// rows to forecast (default: the run's --horizon)
    #[arg(long, value_name = "H")]
    horizon: Option<usize>,
    /// write the CSV here instead of to stdout
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
#[command(allow_negative_numbers = true)]
struct LyapArgs {
    /// take the model and parameters from this run directory
    #[arg(long, value_name = "DIR")]
    run: Option<PathBuf>,
    /// fresh model: rnn | linear | lstm | gru
    #[arg(long, default_value = "rnn")]
    model: String,
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// fresh model: recurrent gain g (gaussian W ~ N(0, g²/N))
    #[arg(long, default_value_t = 1.0)]
    gain: f64,
    /// fresh model: gaussian | orthogonal | identity
    #[arg(long, default_value = "gaussian")]
    init: String,
    /// fresh model: the task that sets the input width (and `--input task`)
    #[arg(long, default_value = "adding")]
    task: String,
    /// number of exponents (default: all N, at most 64)
    #[arg(long)]
    k: Option<usize>,
    /// steps between QR re-orthonormalisations
    #[arg(long, default_value_t = 1)]
    reortho: usize,
    /// state-only steps before the tangent dynamics start
    #[arg(long, default_value_t = 200)]
    transient: usize,
    /// tangent steps not accumulated
    #[arg(long, default_value_t = 100)]
    tangent_transient: usize,
    /// accumulated steps
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    #[arg(long, default_value_t = 4)]
    trajectories: usize,
    /// driving input: task | zeros | noise
    #[arg(long, default_value = "zeros")]
    input: String,
    #[arg(long, default_value_t = 1.0)]
    noise_std: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    dev: DeviceArgs,
    /// where lyapunov.json and lyapunov.svg go (default: the run directory, else runs/lyapunov-<time>)
    #[arg(long)]
    out: Option<PathBuf>,
    /// print the report as JSON on stdout
    #[arg(long)]
    json: bool,
}

fn lyapunov(a: LyapArgs) -> Result<()> {
    use longmem::lyapunov::{run as lrun, LyapInput, LyapunovConfig};
    let fresh = TrainConfig {
        task: TaskKind::parse(&a.task)?,
        model: ModelKind::parse(&a.model)?,
        hidden: a.hidden,
        gain: a.gain,
        init: InitKind::parse(&a.init)?,
        seed: a.seed,
        ..Default::default()
    };
    let (cfg, model, params) = lrun::load_model(a.run.as_deref(), &fresh)?;
    let n = model.state_width();
    let lcfg = LyapunovConfig {
        k: a.k.unwrap_or(n.min(64)),
        reortho: a.reortho,
        transient: a.transient,
        tangent_transient: a.tangent_transient,
        steps: a.steps,
        trajectories: a.trajectories,
        input: LyapInput::parse(&a.input)?,
        noise_std: a.noise_std,
        h0_std: 0.5,
        seed: a.seed,
    };
    lcfg.validate(n)?;
    let mut engine = a.dev.resolve()?;
    let on_gpu = matches!(model.kind(), longmem::models::ModelKind::Rnn | longmem::models::ModelKind::Linear);
    if !on_gpu && matches!(engine, longmem::device::Engine::Gpu(_)) {
        eprintln!("the GPU spectrum covers the tanh and linear RNN; computing the {} spectrum on the CPU", model.kind().name());
        engine = longmem::device::Engine::Cpu;
    }
    if !a.json {
        eprintln!("device: {}", engine.describe());
    }
    let spectrum = lrun::compute(&engine, &model, &params, &cfg, &lcfg)?;
    let report = lrun::Report {
        spectrum,
        settings: lcfg,
        model: model.kind().name().to_string(),
        hidden: n,
        run: a.run.as_ref().map(|p| p.display().to_string()),
        device: engine.describe(),
    };
    let out = match (&a.out, &a.run) {
        (Some(o), _) => o.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => longmem::rundir::fresh("lyapunov"),
    };
    lrun::write(&out, &report)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let s = &report.spectrum;
        let lead: Vec<String> = s.exponents.iter().take(5).map(|e| format!("{e:.5}")).collect();
        println!("leading exponents (nats/step): {}", lead.join(", "));
        println!("λ1 = {:.5} ± {:.5}, sum of {} exponents = {:.5}", s.exponents[0], s.std_error[0], s.k, s.sum);
        println!("wrote {} and {}", out.join(lrun::JSON_FILE).display(), out.join(lrun::PLOT_FILE).display());
    }
    Ok(())
}

/// One chart of several runs' losses; prints each run's last logged loss.
fn plot(a: PlotArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for dir in &a.runs {
        let lines = longmem::train::metrics::read(&dir.join(run::METRICS_FILE)).with_context(|| format!("{} is not a run directory", dir.display()))?;
        let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().to_string());
        if let Some(last) = lines.iter().rev().find(|l| l.is_training()) {
            println!("{name}: step {} loss {:.5}", last.step, last.loss);
        }
        runs.push((name, lines));
    }
    longmem::plot::compare_svg(&a.out, &runs, &a.title)?;
    println!("wrote {}", a.out.display());
    Ok(())
}


fn eval(a: EvalArgs) -> Result<()> {
    let cfg = TrainConfig::load(&a.run.join(CONFIG_FILE)).with_context(|| format!("{} is not a run directory", a.run.display()))?;
    let device = a.device.clone().unwrap_or(cfg.device.clone());
    let engine = resolve(&device, a.adapter.as_deref().or(cfg.adapter.as_deref()))?;
    if cfg.task.is_lm() {
        let r = longmem::train::lm::evaluate(&a.run, &cfg, &engine)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            println!("run {} at step {} on {}", a.run.display(), r.step, r.device);
            println!("perplexity: valid {:.2}, test {:.2} ({} level, vocabulary {})", r.perplexity.valid, r.perplexity.test, r.level, r.vocab);
            if let Some(b) = r.bits_per_char {
                println!("bits per char: valid {:.4}, test {:.4}", b.valid, b.test);
            }
        }
        return Ok(());
    }
    if cfg.task.is_forecasting() {
        let r = longmem::train::forecast::evaluate(&a.run, &cfg)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            println!("run {} at step {}: look-back {}, horizon {} (standardised scale, all channels)", a.run.display(), r.step, r.lookback, r.horizon);
            for (name, e) in [("valid", &r.valid), ("test", &r.test)] {
                println!("{name}: mse {:.4}  mae {:.4}   naive last value: mse {:.4}  mae {:.4}   ({} windows)", e.mse, e.mae, e.naive_mse, e.naive_mae, e.windows);
            }
        }
        return Ok(());
    }
    if cfg.task.is_mnist() {
        let r = longmem::train::mnist::evaluate(&a.run, &cfg, &engine)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            println!("run {} at step {} on {}", a.run.display(), r.step, r.device);
            println!("accuracy: valid {:.4}, test {:.4}", r.accuracy.valid, r.accuracy.test);
            println!("loss: valid {:.5}, test {:.5} ({} and {} images)", r.loss.valid, r.loss.test, r.examples.valid, r.examples.test);
        }
        return Ok(());
    }
    let r = run::evaluate(&a.run, &engine, a.batches, a.seed)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("run {} at step {} on {}", a.run.display(), r.step, r.device);
        println!("loss {:.6}  (memoryless baseline {:.6})", r.loss, r.baseline_loss);
        if let Some(acc) = r.accuracy {
            println!("accuracy {acc:.4}");
        }
    }
    Ok(())
}

fn forecast(a: ForecastArgs) -> Result<()> {
    let cfg = TrainConfig::load(&a.run.join(CONFIG_FILE)).with_context(|| format!("{} is not a run directory", a.run.display()))?;
    let h = a.horizon.unwrap_or(cfg.horizon);
    let (cols, rows) = longmem::train::forecast::forecast(&a.run, &cfg, &a.context, h)?;
    let mut csv = format!("step,{}\n", cols.join(","));
    for (i, r) in rows.rows().into_iter().enumerate() {
        let vals: Vec<String> = r.iter().map(|v| format!("{v}")).collect();
        csv.push_str(&format!("{},{}\n", i + 1, vals.join(",")));
    }
    match &a.out {
        Some(p) => longmem::train::checkpoint::write_atomic(p, csv.as_bytes())?,
        None => print!("{csv}"),
    }
    Ok(())
}

fn sample(a: SampleArgs) -> Result<()> {
    let cfg = TrainConfig::load(&a.run.join(CONFIG_FILE)).with_context(|| format!("{} is not a run directory", a.run.display()))?;
    anyhow::ensure!(cfg.task.is_lm(), "{} is not a language model's run (its task is not ptb or text)", a.run.display());
    let text = longmem::train::lm::sample(&a.run, &cfg, &a.prime, a.length, a.temperature, a.seed)?;
    println!("{text}");
    Ok(())
}

fn info(json: bool) -> Result<()> {
    let adapters = enumerate();
    let reports: Vec<_> = adapters.iter().enumerate().map(|(i, a)| report(i, a)).collect();
    let auto = pick(adapters, None)?.map(|(i, _)| i);
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "adapters": reports, "auto": auto }))?);
        return Ok(());
    }
    if reports.is_empty() {
        println!("no GPU adapters: {}", longmem::gpu::context::NO_ADAPTER_HELP);
        println!("--device auto will use the CPU reference path");
        return Ok(());
    }
    for r in &reports {
        let mark = if Some(r.index) == auto { "  <- --device auto" } else { "" };
        println!("[{}] {} ({}, {}, driver {} {}){mark}", r.index, r.name, r.backend, r.device_type, r.driver, r.driver_info);
        let l = &r.limits;
        println!("    workgroup storage {} B, storage binding {} B, max buffer {} B, invocations/workgroup {}", l.max_compute_workgroup_storage_size, l.max_storage_buffer_binding_size, l.max_buffer_size, l.max_compute_invocations_per_workgroup);
        println!("    features: {}", if r.features.is_empty() { "none of shader-f16, subgroups, timestamp-query".to_string() } else { r.features.join(", ") });
    }
    Ok(())
}

fn main() {
    // a closed stdout (`longmem eval --json | head`) ends the process as it
    // does any Unix tool, rather than as a panic in println!
    #[cfg(unix)]
    // SAFETY: done first, before any other thread exists
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Mesa's Vulkan loader complains on stderr when this is unset (headless
    // machines, CI); nothing of ours uses it. Set before any thread starts.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    // glibc maps every allocation over its mmap threshold (at most 32 MiB)
    // fresh from the kernel and unmaps it on free: a training step's
    // activation buffers would then page-fault in anew on every step (a
    // fifth of a CPU LSTM step at H = 256). Keep them in the heap for reuse.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: plain malloc tuning calls, before any other thread exists
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Train(a) => train_cmd::train(*a),
        Cmd::Eval(a) => eval(a),
        Cmd::Sample(a) => sample(a),
        Cmd::Forecast(a) => forecast(a),
        Cmd::Lyapunov(a) => lyapunov(a),
        Cmd::Plot(a) => plot(a),
        Cmd::Info { json } => info(json),
        Cmd::Bench(a) => bench_cmd::bench(*a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
