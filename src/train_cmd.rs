//! `longmem train`: its flags and how they override a config file.

use anyhow::{Context, Result};
use clap::Args;
use longmem::config::TrainConfig;
use longmem::models::{InitKind, ModelKind, ScanMode};
use longmem::tasks::TaskKind;
use longmem::train::optim::{OptimKind, Schedule};
use longmem::train::run::{self, RunOptions, CONFIG_FILE};
use std::path::PathBuf;

#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
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
    /// multiply the initial input weights w_in (weak input drive)
    #[arg(long)]
    input_scale: Option<f64>,
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
    /// recurrent kernel: auto | persistent | step | parallel (WARP: log-depth doubling)
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
    /// gradient flossing: separate (its own optimizer moments and step
    /// count, the default) or shared (the training optimizer's)
    #[arg(long, value_name = "shared|separate")]
    floss_optimizer: Option<String>,
    /// start from the parameters of the run in DIR (its checkpoint), e.g. a
    /// flossing-only run (--steps 0 --floss-before n); fresh training optimizer
    #[arg(long, value_name = "DIR")]
    init_from: Option<PathBuf>,
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
    /// scrn: rescale dL/dh_t and dL/ds_t (all streams together) to norm ≤ C
    /// in BPTT, as the reference code does (its 50 on a batch-summed loss is
    /// 50/B here); 0 = off; CPU path only
    #[arg(long)]
    state_grad_clip: Option<f64>,
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
    /// language modelling: update every K steps, each time backpropagating through the last --bptt (overlapping windows, as the SCRN reference code: --bptt 10 --bptt-stride 5)
    #[arg(long, value_name = "K")]
    bptt_stride: Option<usize>,
    /// language modelling: at most this many epochs
    #[arg(long)]
    epochs: Option<u64>,
    /// language modelling: divide the learning rate by this when validation perplexity stops improving
    #[arg(long)]
    lr_divide: Option<f64>,
    /// language modelling: an epoch counts as better when its perplexity × this is below the best
    #[arg(long)]
    min_improvement: Option<f64>,
    /// language modelling: stop at the first miss after this many divisions of the learning rate
    #[arg(long)]
    max_divides: Option<u64>,
    /// language modelling: scaled | reference (every weight N(0, 0.05²), zero readout, as the SCRN reference code)
    #[arg(long)]
    lm_init: Option<String>,
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
    set!(input_scale);
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
    if let Some(d) = &a.init_from {
        c.init_from = Some(d.display().to_string());
    }
    if let Some(v) = &a.floss_optimizer {
        c.floss_separate_optimizer = match v.as_str() {
            "shared" => false,
            "separate" => true,
            _ => anyhow::bail!("--floss-optimizer must be shared or separate, got '{v}'"),
        };
    }
    set!(forget_bias);
    set!(context);
    set!(alpha);
    if let Some(v) = &a.alpha_mode {
        c.alpha_mode = longmem::models::scrn::AlphaMode::parse(v)?;
    }
    if let Some(v) = &a.scrn_form {
        c.scrn_form = longmem::models::scrn::ScrnForm::parse(v)?;
    }
    set!(state_grad_clip);
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
    if let Some(v) = &a.lm_init {
        c.lm_init = longmem::train::lm::LmInit::parse(v)?;
    }
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
    if a.bptt_stride.is_some() {
        c.bptt_stride = a.bptt_stride;
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

pub fn train(a: TrainArgs) -> Result<()> {
    let cfg = resolved_config(&a)?;
    let out = match (&a.resume, &a.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => longmem::rundir::fresh(&format!("{}-{}", serde_plain(&cfg.task), cfg.model.name())),
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
