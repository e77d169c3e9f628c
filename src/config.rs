//! The run configuration: a TOML file, overridden by command-line flags,
//! written back fully resolved as `config.toml` in the run directory.

use crate::models::scrn::{AlphaMode, ScrnForm};
use crate::models::warp::{RootAct, Theta0};
use crate::models::{InitConfig, InitKind, ModelKind, ModelOptions, ScanMode, ScanOptions};
use crate::tasks::{FilterKind, FilterSpec, Objective, Task, TaskKind};
use crate::train::optim::{OptimConfig, OptimKind, Schedule};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub task: TaskKind,
    /// T: the copy task's delay or the adding problem's length
    pub seq_len: usize,
    pub model: ModelKind,
    /// hidden and readout biases; unset means the task's choice (none for filter)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias: Option<bool>,
    pub hidden: usize,
    pub batch: usize,
    pub steps: u64,
    pub seed: u64,
    /// auto | gpu | cpu
    pub device: String,
    /// adapter index or name substring (also env LONGMEM_ADAPTER)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    pub init: InitKind,
    pub gain: f64,
    pub init_scale: f64,
    /// multiplies the initial input weights w_in (after init_scale): a weak
    /// input drive keeps a tanh network near its linear, slowly forgetting regime
    pub input_scale: f64,
    pub optimizer: OptimKind,
    pub lr: f64,
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub rms_decay: f64,
    pub eps: f64,
    /// global gradient-norm clip (0 = off)
    pub clip: f64,
    /// decoupled weight decay (AdamW with --optimizer adam)
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub log_every: u64,
    pub checkpoint_every: u64,
    /// recurrent kernel: auto | persistent | step
    pub scan: ScanMode,
    /// time steps per dispatch of the persistent kernel
    pub steps_per_dispatch: usize,
    // --- the filter task (linear-RNN learning dynamics)
    pub filter: FilterKind,
    /// λ of the leaky integrator and the damped oscillator
    pub decay: f64,
    /// ω of the damped oscillator, radians per step
    pub freq: f64,
    /// K: lags of the filter kept
    pub horizon: usize,
    pub channels: usize,
    /// sampled white-noise batches, or the exact expected loss
    pub objective: Objective,
    /// record W's eigenvalues every N steps (0: at every metrics line)
    pub eig_every: u64,
    /// d of the delayed-copy and delayed-XOR tasks
    pub delay: usize,
    // --- gradient flossing (Engelken 2023)
    /// flossing updates before training
    pub floss_before: u64,
    /// a burst of `floss_burst` flossing updates before every m-th training step (0 = none)
    pub floss_every: u64,
    /// bursts before these training steps
    pub floss_at: Vec<u64>,
    pub floss_burst: u64,
    /// add w × the flossing gradient to every training step (0 = off)
    pub floss_weight: f64,
    /// exponents flossed
    pub floss_k: usize,
    /// Tp: accumulated steps of a flossing trajectory
    pub floss_len: usize,
    /// state-only steps before them
    pub floss_transient: usize,
    /// trajectories per flossing update (0 = the training batch)
    pub floss_trajectories: usize,
    /// flossing updates keep their own optimizer moments and step count
    /// (as the reference code's second AdamW does) instead of sharing the
    /// training optimizer's. Shared, Adam's bias correction counts the
    /// flossing updates while its moments hold their (much smaller)
    /// gradients, so the first few hundred training steps come out several
    /// times larger than lr and undo the flossing
    pub floss_separate_optimizer: bool,
    /// start from the parameters in this run directory's checkpoint (or
    /// this checkpoint file) instead of a fresh initialisation; the training
    /// optimizer starts fresh, a separate flossing optimizer carries over
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
    // --- model options
    /// LSTM: initial forget-gate bias
    pub forget_bias: f64,
    /// SCRN: slow context units M
    pub context: usize,
    /// SCRN: α of s_t = (1 − α) B x_t + α s_{t-1} (the start value when learned)
    pub alpha: f64,
    /// SCRN: fixed | shared | unit (learned, one α or one per context unit)
    pub alpha_mode: AlphaMode,
    /// SCRN: paper (the fast layer reads s_t) | code (s_{t-1}, as the reference code)
    pub scrn_form: ScrnForm,
    /// SCRN: rescale dL/dh_t and dL/ds_t (all streams together) to norm at
    /// most this in BPTT, as the reference code does (0 = off; CPU path)
    #[serde(default)]
    pub state_grad_clip: f64,
    /// WARP: hidden layers of the root network (its width is `hidden`)
    pub root_depth: usize,
    /// WARP: relu | tanh, the root network's activation
    pub root_act: RootAct,
    /// WARP: learned | hyper (θ_0 from x_0 by a small MLP)
    pub theta0: Theta0,
    /// WARP: the root network also reads the step's input (the row before the one it predicts)
    pub root_input_x: bool,
    // --- forecasting (task ett)
    /// steps of history the forecast starts from (the horizon is `horizon`)
    pub lookback: usize,
    /// direct (the horizon's inputs hold the last look-back row) | feedback (the model's own predictions, WARP)
    pub forecast_mode: crate::tasks::ett::ForecastMode,
    /// feedback mode: each horizon input is the data with this probability, else the model's own prediction
    pub forcing: f64,
    /// mse | nll (Gaussian negative log-likelihood: the model predicts each channel's mean and sd)
    pub forecast_loss: crate::tasks::ett::ForecastLoss,
    /// forecast each window relative to its last look-back row
    pub relative: bool,
    /// msd, lotka: simulated training trajectories
    pub sim_trajectories: usize,
    /// WARP-Phys on msd, lotka: the root network outputs the system's parameters, one integration step predicts
    pub warp_phys: bool,
    // --- language modelling (tasks ptb, text) and pixel MNIST (mnist, pmnist)
    /// the PTB folder, the text file, or the MNIST folder
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// text task: word | char
    pub level: String,
    /// truncated BPTT: time steps per segment (the state carries across)
    pub bptt: usize,
    /// update every this many steps, each time backpropagating through the
    /// last `bptt` (overlapping windows, as the SCRN reference code's
    /// backprop_freq 5 with backprop_len 10); unset: `bptt`, no overlap
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bptt_stride: Option<usize>,
    /// at most this many epochs
    pub epochs: u64,
    /// divide the learning rate by this when validation perplexity does not improve
    pub lr_divide: f64,
    /// an epoch improves when its perplexity × this is below the best
    pub min_improvement: f64,
    /// stop at the first miss after this many divisions
    pub max_divides: u64,
    /// how a language model's weights start: scaled (the families' own
    /// scales, token embeddings N(0, 0.5²)) | reference (every weight
    /// N(0, 0.05²) and a zero readout, as the SCRN reference code)
    pub lm_init: crate::train::lm::LmInit,
    /// train on the first N training tokens only (quick runs; unset = all)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_tokens: Option<usize>,
    // --- pixel MNIST
    /// pmnist: seed of the fixed pixel permutation (kept here so eval reads the pixels as training did)
    pub perm_seed: u64,
    /// train on the first N of the 55,000 training images only (quick runs; unset = all)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_examples: Option<usize>,
}

/// The permutation seed when none is given: one fixed permutation for every pmnist run.
pub const DEFAULT_PERM_SEED: u64 = 92_916;

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            task: TaskKind::Adding,
            seq_len: 10,
            model: ModelKind::Rnn,
            bias: None,
            hidden: 64,
            batch: 32,
            steps: 1000,
            seed: 0,
            device: "auto".into(),
            adapter: None,
            init: InitKind::Gaussian,
            gain: 1.0,
            init_scale: 1.0,
            input_scale: 1.0,
            optimizer: OptimKind::Adam,
            lr: 3e-3,
            momentum: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            rms_decay: 0.9,
            eps: 1e-8,
            clip: 1.0,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            log_every: 50,
            checkpoint_every: 500,
            scan: ScanMode::Auto,
            steps_per_dispatch: 256,
            filter: FilterKind::Leaky,
            decay: 0.9,
            freq: 0.3,
            horizon: 64,
            channels: 1,
            forget_bias: 1.0,
            context: 10,
            alpha: 0.95,
            alpha_mode: AlphaMode::Fixed,
            scrn_form: ScrnForm::Paper,
            state_grad_clip: 0.0,
            root_depth: 1,
            root_act: RootAct::Relu,
            theta0: Theta0::Learned,
            root_input_x: false,
            lookback: 96,
            forecast_mode: crate::tasks::ett::ForecastMode::Direct,
            forcing: 1.0,
            forecast_loss: crate::tasks::ett::ForecastLoss::Mse,
            relative: false,
            sim_trajectories: 512,
            warp_phys: false,
            data: None,
            level: "word".into(),
            bptt: 35,
            bptt_stride: None,
            epochs: 30,
            lr_divide: 2.0,
            min_improvement: 1.003,
            max_divides: 6,
            lm_init: crate::train::lm::LmInit::Scaled,
            train_tokens: None,
            perm_seed: DEFAULT_PERM_SEED,
            train_examples: None,
            objective: Objective::Sampled,
            eig_every: 0,
            delay: 10,
            floss_before: 0,
            floss_every: 0,
            floss_at: Vec::new(),
            floss_burst: 0,
            floss_weight: 0.0,
            floss_k: 1,
            floss_len: 55,
            floss_transient: 10,
            floss_trajectories: 0,
            floss_separate_optimizer: true,
            init_from: None,
        }
    }
}

impl TrainConfig {
    /// The linear-RNN study with settings that reproduce its behaviour:
    /// N = 32, weights started at scale 0.05, plain gradient descent on the
    /// exact expected loss, eigenvalues recorded at every metrics line.
    pub fn study(filter: FilterKind) -> Self {
        let (decay, horizon, lr, steps, log_every) = match filter {
            FilterKind::Leaky => (0.9, 60, 5e-3, 1000, 10),
            FilterKind::Oscillator => (0.95, 120, 2e-3, 5000, 50),
            FilterKind::Integrator => (1.0, 20, 1e-3, 30_000, 500),
        };
        TrainConfig {
            task: TaskKind::Filter,
            model: ModelKind::Linear,
            filter,
            decay,
            freq: 0.3,
            horizon,
            objective: Objective::Population,
            hidden: 32,
            init_scale: 0.05,
            optimizer: OptimKind::Sgd,
            clip: 0.0,
            lr,
            steps,
            log_every,
            checkpoint_every: steps,
            seed: 7,
            device: "auto".into(),
            ..Default::default()
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("bad config file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let cfg: TrainConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }

    pub fn validate(&self) -> Result<()> {
        if self.hidden == 0 || self.batch == 0 {
            bail!("--hidden and --batch must be positive (got hidden {}, batch {})", self.hidden, self.batch);
        }
        if self.steps == 0 && (self.floss_before == 0 || self.task.is_lm()) {
            bail!("--steps must be positive (0 is allowed only for a flossing-only run, with --floss-before)");
        }
        if self.log_every == 0 || self.checkpoint_every == 0 {
            bail!("log_every and checkpoint_every must be positive");
        }
        if self.steps_per_dispatch == 0 {
            bail!("steps_per_dispatch must be positive");
        }
        if !["auto", "gpu", "cpu"].contains(&self.device.as_str()) {
            bail!("unknown device '{}': expected auto, gpu or cpu", self.device);
        }
        if !(self.gain.is_finite() && self.init_scale.is_finite()) || self.init_scale <= 0.0 {
            bail!("--gain must be finite and --init-scale positive");
        }
        if !(self.input_scale.is_finite() && self.input_scale > 0.0) {
            bail!("--input-scale must be a finite number > 0, got {}", self.input_scale);
        }
        if self.input_scale != 1.0 && self.model == ModelKind::Warp {
            bail!("--input-scale scales w_in, which WARP does not have");
        }
        if let Schedule::Step { every, factor } = self.schedule {
            if every == 0 || !(factor > 0.0 && factor.is_finite()) {
                bail!("a step schedule needs every > 0 and a positive factor");
            }
        }
        if !(self.state_grad_clip >= 0.0 && self.state_grad_clip.is_finite()) {
            bail!("--state-grad-clip must be a finite number >= 0 (0 = off), got {}", self.state_grad_clip);
        }
        if self.state_grad_clip > 0.0 && self.model != ModelKind::Scrn {
            bail!("--state-grad-clip is an SCRN option (the reference code's hidden-state gradient rescaling), not for --model {}", self.model.name());
        }
        if self.model == ModelKind::Scrn && (self.context == 0 || !(0.0..=1.0).contains(&self.alpha)) {
            bail!("the SCRN needs --context >= 1 and --alpha in [0, 1] (got {} and {})", self.context, self.alpha);
        }
        if !(0.0..=1.0).contains(&self.forcing) {
            bail!("--forcing must be a probability in [0, 1], got {}", self.forcing);
        }
        if self.forecast_mode == crate::tasks::ett::ForecastMode::Feedback && (self.model != ModelKind::Warp || !self.task.is_forecasting()) {
            bail!("--forecast-mode feedback (fed-back predictions) is for --model warp on a forecasting task (ett, msd, lotka)");
        }
        if self.forecast_loss == crate::tasks::ett::ForecastLoss::Nll && (!self.task.is_forecasting() || self.warp_phys) {
            bail!("--forecast-loss nll is for the forecasting tasks (ett, msd, lotka, mnist-completion), and not with --warp-phys (whose step predicts the state itself)");
        }
        if self.relative && (!self.task.is_forecasting() || self.warp_phys) {
            bail!("--relative is for the forecasting tasks, and not with --warp-phys (whose parameters act on the state itself)");
        }
        if self.warp_phys && (self.model != ModelKind::Warp || self.task.system().is_none() || self.forecast_mode != crate::tasks::ett::ForecastMode::Feedback) {
            bail!("--warp-phys needs --model warp on --task msd or lotka with --forecast-mode feedback (each step integrates from the state before it)");
        }
        if self.scan == ScanMode::Parallel && self.model != ModelKind::Warp {
            bail!("--scan parallel (the log-depth solve of a linear recurrence) is implemented for --model warp only, not {:?}: use --scan auto, persistent or step", self.model);
        }
        if self.root_input_x && (self.model != ModelKind::Warp || self.task.is_lm()) {
            bail!("--root-input-x is for --model warp on dense inputs (not the language-modelling tasks)");
        }
        if self.init_from.is_some() && self.task.is_lm() {
            bail!("--init-from is not implemented for the language-modelling tasks (ptb, text) yet");
        }
        if self.task.is_lm() {
            return self.validate_lm();
        }
        if self.task.is_mnist() {
            // the images are loaded when the task is built, not to check a config
            if self.data.is_none() {
                bail!("--task {} needs --data DIR, the folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz", if self.task == TaskKind::Mnist { "mnist" } else { "pmnist" });
            }
            if self.train_examples == Some(0) {
                bail!("--train-examples must be positive");
            }
        } else {
            self.task()?;
        }
        if self.task == TaskKind::Filter && !matches!(self.model, ModelKind::Rnn | ModelKind::Linear) {
            bail!("the filter task (the linear-RNN study) records W's eigenvalues: use --model linear or rnn");
        }
        if self.flossing() && !matches!(self.model, ModelKind::Rnn | ModelKind::Linear) {
            bail!("gradient flossing is implemented for --model rnn and linear, not {}", self.model.name());
        }
        if self.floss_k == 0 || self.floss_k > self.hidden {
            bail!("--floss-k must be between 1 and --hidden ({}), got {}", self.hidden, self.floss_k);
        }
        if self.floss_len == 0 {
            bail!("--floss-len must be positive");
        }
        if (self.floss_every > 0 || !self.floss_at.is_empty()) && self.floss_burst == 0 {
            bail!("flossing bursts (--floss-every / --floss-at) need --floss-burst n > 0");
        }
        if !(self.floss_weight >= 0.0 && self.floss_weight.is_finite()) {
            bail!("--floss-weight must be a finite number >= 0");
        }
        self.optim().validate()
    }

    fn validate_lm(&self) -> Result<()> {
        if self.data.is_none() {
            bail!("--task {} needs --data (the PTB folder, or a text file)", if self.task == TaskKind::Ptb { "ptb" } else { "text" });
        }
        if !["word", "char"].contains(&self.level.as_str()) {
            bail!("unknown --level '{}': expected word or char", self.level);
        }
        if self.task == TaskKind::Ptb && self.level != "word" {
            bail!("--task ptb is word level; use --task text --level char for characters");
        }
        if self.bptt == 0 || self.epochs == 0 {
            bail!("--bptt and --epochs must be positive");
        }
        if let Some(k) = self.bptt_stride {
            if k == 0 || k > self.bptt {
                bail!("--bptt-stride must be between 1 and --bptt ({}), got {k}", self.bptt);
            }
        }
        if !(self.lr_divide > 1.0 && self.lr_divide.is_finite()) {
            bail!("--lr-divide must be a finite number > 1, got {}", self.lr_divide);
        }
        if !(self.min_improvement >= 1.0 && self.min_improvement.is_finite()) {
            bail!("--min-improvement must be a finite number >= 1, got {}", self.min_improvement);
        }
        if self.flossing() {
            bail!("gradient flossing is not available for language modelling");
        }
        self.optim().validate()
    }

    /// The settings a language model starts from when no config file says
    /// otherwise: Zaremba/Mikolov-style SGD on the loss summed over a
    /// segment's steps, clipped at norm 5. Gated units take lr 1 over 20
    /// steps (on PTB the LSTM-100 learns faster than over 35). The plain
    /// tanh SRN and the sigmoid SCRN learn fastest on short segments (BPTT
    /// 10: more updates per epoch); on PTB the SRN diverges at lr 0.5 and
    /// does best at gain 0.5 and lr 0.3, the SCRN takes lr 1 (lr 2
    /// diverges), the sigmoid SRN does best at lr 2 (of 1, 2, 4). The
    /// README lists the probes behind these figures.
    pub fn apply_lm_defaults(&mut self) {
        self.optimizer = OptimKind::Sgd;
        (self.lr, self.bptt, self.gain) = match self.model {
            ModelKind::Lstm | ModelKind::Gru => (1.0, 20, self.gain),
            ModelKind::Rnn => (0.3, 10, 0.5),
            ModelKind::Scrn => (1.0, 10, self.gain),
            ModelKind::Srn => (2.0, 10, self.gain),
            _ => (0.1, 35, self.gain),
        };
        self.clip = 5.0;
        self.batch = 32;
        self.hidden = 100;
        self.log_every = 100;
    }

    /// The uRNN's recipe from its reference code when no config file says
    /// otherwise: RMSprop, lr 1e-3, decay 0.9, no gradient clipping (the
    /// recurrence is unitary, so gradients do not explode through it).
    pub fn apply_urnn_defaults(&mut self) {
        self.optimizer = OptimKind::Rmsprop;
        self.lr = 1e-3;
        self.rms_decay = 0.9;
        self.clip = 0.0;
    }

    pub fn model_options(&self) -> ModelOptions {
        ModelOptions {
            bias: self.bias(),
            forget_bias: self.forget_bias,
            context: self.context,
            alpha: self.alpha,
            alpha_mode: self.alpha_mode,
            scrn_form: self.scrn_form,
            state_grad_clip: self.state_grad_clip,
            root_depth: self.root_depth,
            root_act: self.root_act,
            theta0: self.theta0,
            warp_phys: if self.warp_phys { self.task.system() } else { None },
            root_input_x: self.root_input_x,
        }
    }

    /// Whether any flossing is configured.
    pub fn flossing(&self) -> bool {
        self.floss_before > 0 || self.floss_weight > 0.0 || ((self.floss_every > 0 || !self.floss_at.is_empty()) && self.floss_burst > 0)
    }

    /// Whether a burst of flossing updates runs before training step `s`.
    pub fn floss_burst_at(&self, s: u64) -> bool {
        self.floss_burst > 0 && ((self.floss_every > 0 && s.is_multiple_of(self.floss_every)) || self.floss_at.contains(&s))
    }

    /// Flossing updates done before training, and in bursts up to and including step `s`'s.
    pub fn floss_updates_through(&self, s: u64) -> u64 {
        let bursts = (1..=s).filter(|&x| self.floss_burst_at(x)).count() as u64;
        self.floss_before + bursts * self.floss_burst
    }

    /// Fill in what is left to the task (biases), so config.toml says it.
    pub fn resolve(&mut self) {
        if self.bias.is_none() {
            self.bias = Some(self.task != TaskKind::Filter);
        }
        if self.task.is_mnist() {
            // an image is 784 steps whatever --seq-len said
            self.seq_len = crate::data::mnist::PIXELS;
        }
        if self.task == TaskKind::MnistCompletion {
            // the rest of the image after the look-back pixels
            self.horizon = crate::data::mnist::PIXELS.saturating_sub(self.lookback);
        }
        if self.task.is_forecasting() {
            // a window's inputs: the look-back and all but the last horizon row
            self.seq_len = self.lookback + self.horizon.max(1) - 1;
        }
    }

    pub fn bias(&self) -> bool {
        self.bias.unwrap_or(self.task != TaskKind::Filter)
    }

    pub fn task(&self) -> Result<Task> {
        match self.task {
            TaskKind::Ptb | TaskKind::Text => bail!("language-modelling tasks are made from --data"),
            // loads the training images (the validation and test images are eval's)
            TaskKind::Mnist | TaskKind::Pmnist => {
                let dir = self.data.as_deref().with_context(|| "--task mnist and pmnist need --data DIR, the MNIST folder")?;
                let data = crate::tasks::mnist::PixelMnist::load(Path::new(dir), self.task == TaskKind::Pmnist, self.perm_seed, self.train_examples)?;
                Ok(Task::mnist(data))
            }
            TaskKind::Ett => {
                let file = self.data.as_deref().with_context(|| "--task ett needs --data FILE.csv, the series (e.g. ETTh1.csv)")?;
                let (mut f, _) = crate::tasks::ett::Forecasting::load(Path::new(file), self.lookback, self.horizon)?;
                f.forcing = self.forcing;
                f.mode = self.forecast_mode;
                f.loss = self.forecast_loss;
                f.relative = self.relative;
                Ok(Task::ett(TaskKind::Ett, f))
            }
            TaskKind::MnistCompletion => {
                let dir = self.data.as_deref().with_context(|| "--task mnist-completion needs --data DIR, the MNIST folder")?;
                let n = crate::data::mnist::PIXELS;
                if self.lookback == 0 || self.lookback >= n {
                    bail!("--task mnist-completion: --lookback is the pixels given (1..{n}), got {}", self.lookback);
                }
                let (train, _) = crate::tasks::mnist::train_valid(Path::new(dir))?;
                let series = crate::tasks::mnist::image_series(&train, self.train_examples);
                let mut f = crate::tasks::ett::Forecasting::new(series, self.lookback, n - self.lookback)?;
                f.forcing = self.forcing;
                f.mode = self.forecast_mode;
                f.loss = self.forecast_loss;
                f.relative = self.relative;
                Ok(Task::ett(self.task, f))
            }
            TaskKind::Msd | TaskKind::Lotka => {
                let system = self.task.system().expect("a dynamics task");
                let rows = self.lookback + self.horizon;
                let (series, _) = crate::tasks::dynamics::trajectories(system, crate::tasks::dynamics::Split::Train, self.sim_trajectories, rows, self.seed)?;
                let mut f = crate::tasks::ett::Forecasting::new(series, self.lookback, self.horizon)?;
                f.forcing = self.forcing;
                f.mode = self.forecast_mode;
                f.loss = self.forecast_loss;
                f.relative = self.relative;
                Ok(Task::ett(self.task, f))
            }
            TaskKind::Filter => Task::filter(self.filter_spec(), self.seq_len),
            TaskKind::DelayedCopy | TaskKind::DelayedXor => Task::delayed(self.task, self.seq_len, self.delay),
            k => Task::new(k, self.seq_len),
        }
    }

    pub fn filter_spec(&self) -> FilterSpec {
        FilterSpec {
            kind: self.filter,
            decay: self.decay,
            freq: self.freq,
            horizon: self.horizon,
            channels: self.channels,
            objective: self.objective,
        }
    }

    /// Steps between eigenvalue records.
    pub fn eig_interval(&self) -> u64 {
        if self.eig_every == 0 {
            self.log_every
        } else {
            self.eig_every
        }
    }

    pub fn optim(&self) -> OptimConfig {
        OptimConfig {
            kind: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            beta1: self.beta1,
            beta2: self.beta2,
            rms_decay: self.rms_decay,
            eps: self.eps,
            clip: self.clip,
            weight_decay: self.weight_decay,
        }
    }

    pub fn init_config(&self) -> InitConfig {
        InitConfig { kind: self.init, gain: self.gain, scale: self.init_scale }
    }

    /// A fresh model's parameters: the family's init, then w_in times `input_scale`.
    pub fn initial_params(&self, model: &crate::models::Model, rng: &mut crate::rng::Rng) -> Vec<f32> {
        let mut p = model.init(&self.init_config(), rng);
        self.scale_input_weights(model, &mut p);
        p
    }

    pub fn scale_input_weights(&self, model: &crate::models::Model, p: &mut [f32]) {
        if let Ok(w) = model.layout().get("w_in") {
            p[w.range()].iter_mut().for_each(|v| *v *= self.input_scale as f32);
        }
    }

    pub fn scan_options(&self) -> ScanOptions {
        ScanOptions { mode: self.scan, max_steps_per_dispatch: self.steps_per_dispatch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_toml() {
        let mut c = TrainConfig { schedule: Schedule::Step { every: 100, factor: 0.5 }, ..Default::default() };
        c.adapter = Some("llvmpipe".into());
        c.task = TaskKind::Filter;
        c.objective = Objective::Population;
        c.resolve();
        let back = TrainConfig::parse(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn rejects_unknown_fields_and_wrong_types() {
        let e = TrainConfig::parse("hiden = 3").unwrap_err();
        assert!(format!("{e:#}").contains("hiden"), "{e:#}");
        let e = TrainConfig::parse("hidden = \"many\"").unwrap_err();
        assert!(format!("{e:#}").contains("hidden"), "{e:#}");
        let e = TrainConfig::parse("task = \"sorting\"").unwrap_err();
        assert!(format!("{e:#}").contains("sorting"), "{e:#}");
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let c = TrainConfig { lr: -1.0, ..Default::default() };
        assert!(format!("{:#}", c.validate().unwrap_err()).contains("--lr"));
        let c = TrainConfig { device: "tpu".into(), ..Default::default() };
        assert!(format!("{:#}", c.validate().unwrap_err()).contains("tpu"));
    }
}
