//! The `longmem` command line: train, eval, info.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use longmem::config::TrainConfig;
use longmem::device::resolve;
use longmem::gpu::context::{enumerate, pick, report};
use longmem::models::{InitKind, ModelKind, ScanMode};
use longmem::tasks::TaskKind;
use longmem::train::optim::{OptimKind, Schedule};
use longmem::train::run::{self, RunOptions, CONFIG_FILE};
use std::path::PathBuf;

mod bench_cmd;

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
#[command(allow_negative_numbers = true)]
struct TrainArgs {
    /// TOML config file; flags override it
    #[arg(long)]
    config: Option<PathBuf>,
    /// continue the run in DIR from its checkpoint
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// run directory (default runs/<task>-<model>-<time>)
    #[arg(long)]
    out: Option<PathBuf>,
    /// copy | adding | filter | delayed-copy | delayed-xor | ptb | text | mnist | pmnist | ett | msd | lotka
    #[arg(long)]
    task: Option<String>,
    /// T: the copy task's delay, the adding problem's length
    #[arg(long)]
    seq_len: Option<usize>,
    /// rnn (tanh) | linear | lstm | gru | scrn | urnn (--hidden a power of two)
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    hidden: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long)]
    steps: Option<u64>,
    #[arg(long)]
    lr: Option<f64>,
    /// sgd | rmsprop | adam
    #[arg(long)]
    optimizer: Option<String>,
    /// SGD momentum
    #[arg(long)]
    momentum: Option<f64>,
    /// clip the global gradient norm (0 = off)
    #[arg(long)]
    clip: Option<f64>,
    /// decoupled weight decay (AdamW with --optimizer adam)
    #[arg(long)]
    weight_decay: Option<f64>,
    /// multiply the learning rate by --lr-decay every N steps
    #[arg(long, value_name = "N")]
    lr_decay_every: Option<u64>,
    #[arg(long)]
    lr_decay: Option<f64>,
    #[arg(long)]
    seed: Option<u64>,
    /// gaussian | orthogonal | identity
    #[arg(long)]
    init: Option<String>,
    /// recurrent gain g (gaussian: W ~ N(0, g²/N))
    #[arg(long)]
    gain: Option<f64>,
    /// scale every initial weight (small-weight starts)
    #[arg(long)]
    init_scale: Option<f64>,
    /// auto | gpu | cpu
    #[arg(long)]
    device: Option<String>,
    /// adapter index or name (see `longmem info`)
    #[arg(long, env = "LONGMEM_ADAPTER")]
    adapter: Option<String>,
    #[arg(long)]
    log_every: Option<u64>,
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// recurrent kernel: auto | persistent | step
    #[arg(long)]
    scan: Option<String>,
    /// time steps per dispatch of the persistent kernel
    #[arg(long)]
    steps_per_dispatch: Option<usize>,
    /// hidden and readout biases: true | false (default: the task's; none for filter)
    #[arg(long)]
    bias: Option<bool>,
    /// filter task: integrator | leaky | oscillator
    #[arg(long)]
    filter: Option<String>,
    /// filter task: λ
    #[arg(long)]
    decay: Option<f64>,
    /// filter task: ω (radians per step)
    #[arg(long)]
    freq: Option<f64>,
    /// filter task: K, lags kept; ett: rows to forecast after the look-back
    #[arg(long)]
    horizon: Option<usize>,
    /// filter task: input/output channels
    #[arg(long)]
    channels: Option<usize>,
    /// filter task: sampled | population (the exact expected loss)
    #[arg(long)]
    objective: Option<String>,
    /// record W's eigenvalues every N steps (0: at every metrics line)
    #[arg(long, value_name = "N")]
    eig_every: Option<u64>,
    /// delayed-copy / delayed-xor: the delay d
    #[arg(long)]
    delay: Option<usize>,
    /// gradient flossing: updates before training
    #[arg(long, value_name = "N")]
    floss_before: Option<u64>,
    /// gradient flossing: a burst before every m-th training step
    #[arg(long, value_name = "M")]
    floss_every: Option<u64>,
    /// gradient flossing: bursts before these training steps (comma-separated)
    #[arg(long, value_name = "STEP,STEP,...", value_delimiter = ',')]
    floss_at: Option<Vec<u64>>,
    /// gradient flossing: updates per burst
    #[arg(long, value_name = "N")]
    floss_burst: Option<u64>,
    /// gradient flossing: add w × its gradient to every training step
    #[arg(long, value_name = "W")]
    floss_weight: Option<f64>,
    /// gradient flossing: number of exponents pushed to zero
    #[arg(long, value_name = "K")]
    floss_k: Option<usize>,
    /// gradient flossing: trajectory length Tp
    #[arg(long, value_name = "TP")]
    floss_len: Option<usize>,
    /// lstm: initial forget-gate bias
    #[arg(long)]
    forget_bias: Option<f64>,
    /// scrn: slow context units M
    #[arg(long, value_name = "M")]
    context: Option<usize>,
    /// scrn: α of the context units (0.95)
    #[arg(long)]
    alpha: Option<f64>,
    /// scrn: fixed | shared | unit (learn one α, or one per context unit)
    #[arg(long)]
    alpha_mode: Option<String>,
    /// scrn: paper (fast layer reads s_t) | code (s_(t-1), as the reference code)
    #[arg(long)]
    scrn_form: Option<String>,
    /// warp: hidden layers of the root network (its width is --hidden)
    #[arg(long)]
    root_depth: Option<usize>,
    /// warp: relu | tanh, the root network's activation
    #[arg(long)]
    root_act: Option<String>,
    /// warp: learned | hyper (θ_0 from the first input by a small MLP)
    #[arg(long)]
    theta0: Option<String>,
    /// warp: the root network also reads each step's input (the row before the one it predicts)
    #[arg(long)]
    root_input_x: bool,
    /// ett: steps of history each forecast starts from (96)
    #[arg(long, value_name = "L")]
    lookback: Option<usize>,
    /// ett: direct (horizon inputs hold the last look-back row) | feedback (the model's own predictions; warp)
    #[arg(long)]
    forecast_mode: Option<String>,
    /// warp on msd, lotka (with --forecast-mode feedback): WARP-Phys, the root outputs the system's parameters
    #[arg(long)]
    warp_phys: bool,
    /// msd, lotka: simulated training trajectories (512)
    #[arg(long, value_name = "N")]
    sim_trajectories: Option<usize>,
    /// forecasting: each window relative to its last look-back row (forecast the change)
    #[arg(long)]
    relative: bool,
    /// forecasting: mse | nll (Gaussian negative log-likelihood; the model predicts means and sds)
    #[arg(long)]
    forecast_loss: Option<String>,
    /// ett feedback mode: probability that a horizon input is the data rather than the model's prediction
    #[arg(long, value_name = "P")]
    forcing: Option<f64>,
    /// the PTB folder (--task ptb), a text file (--task text), the MNIST folder (--task mnist, pmnist) or a CSV series (--task ett)
    #[arg(long, value_name = "PATH")]
    data: Option<String>,
    /// --task text: word | char
    #[arg(long)]
    level: Option<String>,
    /// language modelling: time steps per truncated-BPTT segment
    #[arg(long, value_name = "T")]
    bptt: Option<usize>,
    /// language modelling: at most this many epochs
    #[arg(long)]
    epochs: Option<u64>,
    /// language modelling: divide the learning rate by this when validation perplexity stops improving
    #[arg(long)]
    lr_divide: Option<f64>,
    /// language modelling: an epoch counts as better when its perplexity × this is below the best
    #[arg(long)]
    min_improvement: Option<f64>,
    /// language modelling: stop after this many divisions of the learning rate
    #[arg(long)]
    max_divides: Option<u64>,
    /// language modelling: train on the first N training tokens only
    #[arg(long, value_name = "N")]
    train_tokens: Option<usize>,
    /// mnist, pmnist: train on the first N of the 55,000 training images only (the last 5,000 are validation)
    #[arg(long, value_name = "N")]
    train_examples: Option<usize>,
    /// pmnist: seed of the fixed pixel permutation
    #[arg(long)]
    perm_seed: Option<u64>,
    /// no log lines or progress bar
    #[arg(long, short)]
    quiet: bool,
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
    if !matches!(model, longmem::models::Model::Rnn(_)) && matches!(engine, longmem::device::Engine::Gpu(_)) {
        eprintln!("the GPU spectrum covers the Elman family (rnn, linear); computing the {} spectrum on the CPU", model.kind().name());
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
        (None, None) => {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            PathBuf::from("runs").join(format!("lyapunov-{secs}"))
        }
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

fn resolved_config(a: &TrainArgs) -> Result<TrainConfig> {
    if a.resume.is_some() && (a.out.is_some() || a.config.is_some()) {
        anyhow::bail!("--resume DIR continues the run in DIR with its own config.toml; it cannot be combined with --out or --config");
    }
    let mut c = match (&a.resume, &a.config) {
        (Some(dir), _) => TrainConfig::load(&dir.join(CONFIG_FILE)).with_context(|| format!("cannot resume {}", dir.display()))?,
        (None, Some(file)) => TrainConfig::load(file)?,
        (None, None) => TrainConfig::default(),
    };
    macro_rules! set {
        ($field:ident) => {
            if let Some(v) = &a.$field {
                c.$field = v.clone();
            }
        };
    }
    // a language model from scratch starts from the LM recipe, not the synthetic tasks' defaults
    let lm_task = match &a.task {
        Some(t) => TaskKind::parse(t)?.is_lm(),
        None => false,
    };
    if a.resume.is_none() && a.config.is_none() {
        if let Some(m) = &a.model {
            c.model = ModelKind::parse(m)?;
        }
        if lm_task {
            c.apply_lm_defaults();
        } else if c.model == ModelKind::Urnn {
            c.apply_urnn_defaults();
        }
    }
    set!(seq_len);
    set!(hidden);
    set!(batch);
    set!(steps);
    set!(lr);
    set!(momentum);
    set!(clip);
    set!(weight_decay);
    set!(seed);
    set!(gain);
    set!(init_scale);
    set!(device);
    set!(log_every);
    set!(checkpoint_every);
    set!(steps_per_dispatch);
    set!(decay);
    set!(freq);
    set!(horizon);
    set!(channels);
    set!(eig_every);
    set!(delay);
    set!(floss_before);
    set!(floss_every);
    set!(floss_at);
    set!(floss_burst);
    set!(floss_weight);
    set!(floss_k);
    set!(floss_len);
    set!(forget_bias);
    set!(context);
    set!(alpha);
    if let Some(v) = &a.alpha_mode {
        c.alpha_mode = longmem::models::scrn::AlphaMode::parse(v)?;
    }
    if let Some(v) = &a.scrn_form {
        c.scrn_form = longmem::models::scrn::ScrnForm::parse(v)?;
    }
    set!(root_depth);
    set!(lookback);
    set!(forcing);
    set!(sim_trajectories);
    if a.warp_phys {
        c.warp_phys = true;
    }
    if a.root_input_x {
        c.root_input_x = true;
    }
    if a.relative {
        c.relative = true;
    }
    if let Some(v) = &a.forecast_loss {
        c.forecast_loss = longmem::tasks::ett::ForecastLoss::parse(v)?;
    }
    if let Some(v) = &a.forecast_mode {
        c.forecast_mode = longmem::tasks::ett::ForecastMode::parse(v)?;
    }
    if let Some(v) = &a.root_act {
        c.root_act = longmem::models::warp::RootAct::parse(v)?;
    }
    if let Some(v) = &a.theta0 {
        c.theta0 = longmem::models::warp::Theta0::parse(v)?;
    }
    set!(level);
    set!(bptt);
    set!(epochs);
    set!(lr_divide);
    set!(min_improvement);
    set!(max_divides);
    set!(perm_seed);
    if a.train_examples.is_some() {
        c.train_examples = a.train_examples;
    }
    if a.data.is_some() {
        c.data = a.data.clone();
    }
    if a.train_tokens.is_some() {
        c.train_tokens = a.train_tokens;
    }
    if a.bias.is_some() {
        c.bias = a.bias;
    }
    if let Some(s) = &a.filter {
        c.filter = longmem::tasks::FilterKind::parse(s)?;
    }
    if let Some(s) = &a.objective {
        c.objective = longmem::tasks::Objective::parse(s)?;
    }
    if a.adapter.is_some() {
        c.adapter = a.adapter.clone();
    }
    if let Some(s) = &a.task {
        c.task = TaskKind::parse(s)?;
    }
    if let Some(s) = &a.model {
        c.model = ModelKind::parse(s)?;
    }
    if let Some(s) = &a.optimizer {
        c.optimizer = OptimKind::parse(s)?;
    }
    if let Some(s) = &a.init {
        c.init = InitKind::parse(s)?;
    }
    if let Some(s) = &a.scan {
        c.scan = ScanMode::parse(s)?;
    }
    match (a.lr_decay_every, a.lr_decay) {
        (Some(every), Some(factor)) => c.schedule = Schedule::Step { every, factor },
        (None, None) => {}
        _ => anyhow::bail!("--lr-decay-every and --lr-decay go together"),
    }
    c.resolve();
    c.validate()?;
    Ok(c)
}

fn train(a: TrainArgs) -> Result<()> {
    let cfg = resolved_config(&a)?;
    let out = match (&a.resume, &a.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            PathBuf::from("runs").join(format!("{}-{}-{secs}", serde_plain(&cfg.task), cfg.model.name()))
        }
    };
    let summary = run::train(&cfg, &RunOptions { out, resume: a.resume.is_some(), verbose: !a.quiet })?;
    if a.quiet {
        println!("{}", serde_json::to_string(&summary)?);
    }
    Ok(())
}

fn serde_plain<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default().trim_matches('"').to_string()
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
        Cmd::Train(a) => train(*a),
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
