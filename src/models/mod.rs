//! Model families. Each family is one module with its parameter layout and
//! initialisation, its CPU reference (forward, backward, tangent map) and its
//! GPU kernels. The readout `y_t = w_out · r_t + b_out` on the family's
//! readout features `r_t` (a prefix of the state) is shared by all families.
//!
//! State is always real: a complex state is stored as [re; im], an LSTM's as
//! [h; c], WARP's as the root network's flat weights. States of a sequence
//! are an array `(T + 1, B, S)` whose slot 0 is the initial state.

pub mod gru;
pub mod input;
pub mod lstm;
pub mod readout;
pub mod rnn;
pub mod scrn;
pub mod urnn;
pub mod warp;

pub use input::SeqInput;

use crate::params::ParamLayout;
use crate::real::Real;
use crate::rng::Rng;
use anyhow::{bail, Result};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// tanh RNN
    Rnn,
    /// sigmoid RNN: the SRN of Mikolov's language models (the SCRN paper's baseline)
    Srn,
    /// linear RNN (identity activation)
    Linear,
    Lstm,
    Gru,
    Scrn,
    /// unitary evolution RNN (complex state, FFTs)
    Urnn,
    /// weight-space linear RNN: the state is a root MLP's weights
    Warp,
}

impl ModelKind {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "rnn" | "tanh" => ModelKind::Rnn,
            "srn" | "sigmoid" => ModelKind::Srn,
            "linear" => ModelKind::Linear,
            "lstm" => ModelKind::Lstm,
            "gru" => ModelKind::Gru,
            "scrn" => ModelKind::Scrn,
            "urnn" => ModelKind::Urnn,
            "warp" => ModelKind::Warp,
            other => bail!("unknown model '{other}': expected one of rnn, srn, linear, lstm, gru, scrn, urnn, warp"),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Rnn => "rnn",
            ModelKind::Srn => "srn",
            ModelKind::Linear => "linear",
            ModelKind::Lstm => "lstm",
            ModelKind::Gru => "gru",
            ModelKind::Scrn => "scrn",
            ModelKind::Urnn => "urnn",
            ModelKind::Warp => "warp",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitKind {
    Gaussian,
    Orthogonal,
    Identity,
}

impl InitKind {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "gaussian" => InitKind::Gaussian,
            "orthogonal" => InitKind::Orthogonal,
            "identity" => InitKind::Identity,
            other => bail!("unknown init '{other}': expected gaussian, orthogonal or identity"),
        })
    }
}

/// How the recurrent matrix (and, scaled, everything else) starts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct InitConfig {
    pub kind: InitKind,
    /// Gain g: W ~ N(0, g²/N) for gaussian, g·Q for orthogonal, g·I for identity.
    pub gain: f64,
    /// Multiplies every initial weight: small-weight starts use s ≪ 1.
    pub scale: f64,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig { kind: InitKind::Gaussian, gain: 1.0, scale: 1.0 }
    }
}

/// Sizes of a model: input width, hidden (state) width, output width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub input: usize,
    pub hidden: usize,
    pub output: usize,
}

/// Family options beyond the sizes; each family reads what concerns it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelOptions {
    /// hidden (gate) and readout biases
    pub bias: bool,
    /// LSTM: initial forget-gate bias
    pub forget_bias: f64,
    /// SCRN: slow context units M, their α, whether α is learned, and the form
    pub context: usize,
    pub alpha: f64,
    pub alpha_mode: scrn::AlphaMode,
    pub scrn_form: scrn::ScrnForm,
    /// SCRN: BPTT rescales dL/dh_t and dL/ds_t to norm ≤ this (0 = off)
    pub state_grad_clip: f64,
    /// WARP: hidden layers of the root network, their activation, where θ_0 comes from
    pub root_depth: usize,
    pub root_act: warp::RootAct,
    pub theta0: warp::Theta0,
    /// WARP-Phys: decode through this system's integrator
    pub warp_phys: Option<crate::tasks::dynamics::System>,
    /// WARP: the root network also reads the step's input
    pub root_input_x: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            bias: true,
            forget_bias: 1.0,
            context: 10,
            alpha: 0.95,
            alpha_mode: scrn::AlphaMode::Fixed,
            scrn_form: scrn::ScrnForm::Paper,
            state_grad_clip: 0.0,
            root_depth: 1,
            root_act: warp::RootAct::Relu,
            theta0: warp::Theta0::Learned,
            warp_phys: None,
            root_input_x: false,
        }
    }
}

/// What one step's tangent map needs for one trajectory: the input
/// projection of the step (`w_in x_t + b`, width G), and the states before
/// and after the step.
#[derive(Clone, Copy, Debug)]
pub struct StepAt<'a, F> {
    pub pre: &'a [F],
    pub prev: &'a [F],
    pub next: &'a [F],
}

/// A model: a family plus its sizes. New families add a variant here and a
/// module beside `rnn`; the trainer, checkpoints and tests go through this.
#[derive(Clone, Debug)]
pub enum Model {
    Rnn(rnn::Rnn),
    Lstm(lstm::Lstm),
    Gru(gru::Gru),
    Scrn(scrn::Scrn),
    Urnn(urnn::Urnn),
    Warp(warp::Warp),
}

macro_rules! each {
    ($self:expr, $m:ident => $e:expr) => {
        match $self {
            Model::Rnn($m) => $e,
            Model::Lstm($m) => $e,
            Model::Gru($m) => $e,
            Model::Scrn($m) => $e,
            Model::Urnn($m) => $e,
            Model::Warp($m) => $e,
        }
    };
}

impl Model {
    pub fn new(kind: ModelKind, dims: Dims) -> Result<Self> {
        Self::build(kind, dims, &ModelOptions::default())
    }

    /// `bias = false` drops the hidden and readout biases.
    pub fn with_bias(kind: ModelKind, dims: Dims, bias: bool) -> Result<Self> {
        Self::build(kind, dims, &ModelOptions { bias, ..Default::default() })
    }

    pub fn build(kind: ModelKind, dims: Dims, o: &ModelOptions) -> Result<Self> {
        if dims.input == 0 || dims.hidden == 0 || dims.output == 0 {
            bail!("model sizes must be positive (input {}, hidden {}, output {})", dims.input, dims.hidden, dims.output);
        }
        if !o.forget_bias.is_finite() {
            bail!("--forget-bias must be finite, got {}", o.forget_bias);
        }
        Ok(match kind {
            ModelKind::Rnn => Model::Rnn(rnn::Rnn::new(dims, rnn::Activation::Tanh, o.bias)),
            ModelKind::Srn => Model::Rnn(rnn::Rnn::new(dims, rnn::Activation::Sigmoid, o.bias)),
            ModelKind::Linear => Model::Rnn(rnn::Rnn::new(dims, rnn::Activation::Linear, o.bias)),
            ModelKind::Lstm => Model::Lstm(lstm::Lstm::new(dims, o.bias, o.forget_bias)),
            ModelKind::Gru => Model::Gru(gru::Gru::new(dims, o.bias)),
            ModelKind::Scrn => {
                if o.context == 0 {
                    bail!("the SCRN needs --context M >= 1 slow units");
                }
                if !(0.0..=1.0).contains(&o.alpha) {
                    bail!("--alpha must be in [0, 1], got {}", o.alpha);
                }
                let mut m = scrn::Scrn::new(dims, o.context, o.alpha, o.alpha_mode, o.scrn_form, o.bias);
                if o.state_grad_clip > 0.0 {
                    m.state_grad_clip = Some(o.state_grad_clip);
                }
                Model::Scrn(m)
            }
            ModelKind::Urnn => Model::Urnn(urnn::Urnn::new(dims, o.bias)?),
            ModelKind::Warp => Model::Warp(warp::Warp::new(dims, o.root_depth, o.root_act, o.theta0, o.warp_phys, o.root_input_x)?),
        })
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Model::Rnn(m) => match m.act {
                rnn::Activation::Tanh => ModelKind::Rnn,
                rnn::Activation::Sigmoid => ModelKind::Srn,
                rnn::Activation::Linear => ModelKind::Linear,
            },
            Model::Lstm(_) => ModelKind::Lstm,
            Model::Gru(_) => ModelKind::Gru,
            Model::Scrn(_) => ModelKind::Scrn,
            Model::Urnn(_) => ModelKind::Urnn,
            Model::Warp(_) => ModelKind::Warp,
        }
    }

    pub fn has_bias(&self) -> bool {
        each!(self, m => m.bias)
    }

    pub fn dims(&self) -> Dims {
        each!(self, m => m.dims)
    }

    pub fn layout(&self) -> &ParamLayout {
        each!(self, m => &m.layout)
    }

    /// Width S of the state vector.
    pub fn state_width(&self) -> usize {
        match self {
            Model::Rnn(m) => m.dims.hidden,
            Model::Lstm(m) => 2 * m.dims.hidden,
            Model::Gru(m) => m.dims.hidden,
            Model::Scrn(m) => m.state_width(),
            Model::Urnn(m) => m.state_width(),
            Model::Warp(m) => m.state_width(),
        }
    }

    /// The readout reads the first `readout_width` entries of the state
    /// (all of it for the SCRN: y = U h + V s, and the uRNN: [Re h; Im h]).
    pub fn readout_width(&self) -> usize {
        match self {
            Model::Scrn(m) => m.state_width(),
            Model::Urnn(m) => m.state_width(),
            Model::Warp(m) => m.state_width(),
            _ => each!(self, m => m.dims.hidden),
        }
    }

    /// Whether the exact flossing gradient (`tangent_vjp`) exists for this family.
    pub fn supports_flossing(&self) -> bool {
        matches!(self, Model::Rnn(_))
    }

    pub fn init(&self, init: &InitConfig, rng: &mut Rng) -> Vec<f32> {
        each!(self, m => m.init(init, rng))
    }

    /// The parameter a sequence starts from when it does not carry a state
    /// (the uRNN's learned h0); None: it starts from zeros.
    pub fn learned_h0(&self) -> Option<&crate::params::ParamView> {
        match self {
            Model::Urnn(m) => m.layout.get("h0").ok(),
            _ => None,
        }
    }

    /// The initial states `(B, S)` of a batch that carries no state: zeros,
    /// or the learned h0 in every row.
    pub fn initial_states<F: Real>(&self, p: &[F], batch: usize) -> Array2<F> {
        let s = self.state_width();
        match self.learned_h0() {
            Some(v) => {
                let h0 = ndarray::ArrayView1::from(&p[v.range()]);
                h0.broadcast((batch, s)).expect("h0 has the state's width").to_owned()
            }
            None => Array2::zeros((batch, s)),
        }
    }

    /// The input projection `w_in x_t + b` of every row `(T·B, G)`.
    /// (Empty rows for WARP, whose input enters as differences.)
    pub fn project<'a, F: Real>(&self, p: &[F], x: impl Into<SeqInput<'a, F>>) -> Array2<F> {
        let x = x.into();
        match self {
            Model::Warp(_) => Array2::zeros((x.t_len() * x.batch(), 0)),
            _ => input::project(p, self.layout(), &x),
        }
    }

    /// CPU reference forward: states `(T + 1, B, S)` from inputs `(T, B, I)`
    /// (or token ids).
    pub fn forward<'a, F: Real>(&self, p: &[F], x: impl Into<SeqInput<'a, F>>, h0: ArrayView2<F>) -> Array3<F> {
        let x = x.into();
        each!(self, m => m.forward(p, &x, h0))
    }

    /// CPU reference backward: from dL/d(states 1..=T) `(T, B, S)` add the
    /// parameter gradients into `grads` (same layout as params) and return
    /// dL/d(initial state).
    pub fn backward<'a, F: Real>(
        &self,
        p: &[F],
        x: impl Into<SeqInput<'a, F>>,
        states: ArrayView3<F>,
        d_states: ArrayView3<F>,
        grads: &mut [F],
    ) -> Array2<F> {
        let x = x.into();
        each!(self, m => m.backward(p, &x, states, d_states, grads))
    }

    /// Outputs `(T·B, O)` from states `(T + 1, B, S)`: the shared linear
    /// readout, or WARP's root network run with each state's weights.
    pub fn readout_forward<F: Real>(&self, p: &[F], states: ArrayView3<F>) -> Array2<F> {
        self.readout_forward_x(p, states, None)
    }

    /// As [`Model::readout_forward`] with the inputs `(T, B, I)` the states
    /// came from (WARP's root may read them: `root_input_x`).
    pub fn readout_forward_x<F: Real>(&self, p: &[F], states: ArrayView3<F>, x: Option<ArrayView3<F>>) -> Array2<F> {
        match self {
            Model::Warp(m) => m.decode(states, x),
            _ => readout::forward(p, self.layout(), states, self.readout_width()),
        }
    }

    /// From dL/dy `(T·B, O)`: adds the readout's parameter gradients (none
    /// for WARP) and returns dL/d(states 1..=T) `(T, B, S)`.
    pub fn readout_backward<F: Real>(&self, p: &[F], states: ArrayView3<F>, x: Option<ArrayView3<F>>, dy: &Array2<F>, grads: &mut [F]) -> Array3<F> {
        match self {
            Model::Warp(m) => m.decode_backward(states, x, dy.view()),
            _ => readout::backward(p, self.layout(), states, self.readout_width(), dy, grads),
        }
    }

    /// Tangent map of one step for one trajectory: J_t · Q with
    /// J_t = ∂s_t/∂s_{t-1}, Q of shape (S, k).
    pub fn tangent<F: Real>(&self, p: &[F], at: &StepAt<F>, q: ArrayView2<F>) -> Array2<F> {
        match self {
            Model::Rnn(m) => m.tangent(p, at.next, q),
            Model::Lstm(m) => m.tangent(p, at, q),
            Model::Gru(m) => m.tangent(p, at, q),
            Model::Scrn(m) => m.tangent(p, at, q),
            Model::Urnn(m) => m.tangent(p, at, q),
            Model::Warp(m) => m.tangent(p, q),
        }
    }

    /// Reverse mode of [`Model::tangent`] for one trajectory (Elman family
    /// only, see [`Model::supports_flossing`]): given Q̄_new = dL/d(J_t Q)
    /// (S, k), add the parameter gradients through J_t into `grads` and
    /// return (dL/dQ, dL/dh_t through J_t).
    pub fn tangent_vjp<F: Real>(
        &self,
        p: &[F],
        h_t: &[F],
        q_prev: ArrayView2<F>,
        qbar_new: ArrayView2<F>,
        grads: &mut [F],
    ) -> Result<(Array2<F>, Vec<F>)> {
        match self {
            Model::Rnn(m) => Ok(m.tangent_vjp(p, h_t, q_prev, qbar_new, grads)),
            _ => bail!("gradient flossing is implemented for the Elman family (rnn, linear), not {}", self.kind().name()),
        }
    }
}

// ------------------------------------------------------------ GPU side

/// Which recurrent kernel to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    /// persistent when the state fits workgroup memory, else step-wise
    #[default]
    Auto,
    Persistent,
    Step,
    /// WARP only: the linear recurrence solved in ⌈log2(T+1)⌉ doubling
    /// stages of big GEMMs instead of T dependent steps (more FLOPs, far
    /// fewer dispatches)
    Parallel,
}

impl ScanMode {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => ScanMode::Auto,
            "persistent" => ScanMode::Persistent,
            "step" => ScanMode::Step,
            "parallel" => ScanMode::Parallel,
            other => bail!("unknown scan mode '{other}': expected auto, persistent, step or parallel"),
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ScanOptions {
    pub mode: ScanMode,
    /// time steps per dispatch of a persistent kernel (driver watchdogs)
    pub max_steps_per_dispatch: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { mode: ScanMode::Auto, max_steps_per_dispatch: 256 }
    }
}

/// Buffers a family reads and writes; layouts as on the CPU: x `(T, B, I)`,
/// states `(T + 1, B, S)`, d_states `(T, B, S)`, params/grads flat.
pub struct SeqIo<'a> {
    pub params: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    /// dense inputs, or the token ids (u32, T·B) when `tokens` is set
    pub x: &'a wgpu::Buffer,
    /// token inputs: the CSR lists of `input::token_csr` for the gradient
    pub tokens: Option<&'a wgpu::Buffer>,
    pub states: &'a wgpu::Buffer,
    pub d_states: &'a wgpu::Buffer,
}

/// A family's recorded forward (x → states) and backward (d_states →
/// grads, overwriting its own parameters' gradients) for one shape.
pub struct FamilyPlan {
    pub forward: Vec<crate::gpu::ops::Dispatch>,
    pub backward: Vec<crate::gpu::ops::Dispatch>,
    pub persistent: bool,
    pub _scratch: Vec<wgpu::Buffer>,
}

impl Model {
    pub fn gpu_plan(
        &self,
        ctx: &crate::gpu::GpuContext,
        t_len: usize,
        batch: usize,
        io: &SeqIo,
        opts: &ScanOptions,
    ) -> Result<FamilyPlan> {
        each!(self, m => m.gpu_plan(ctx, t_len, batch, io, opts))
    }

    /// The autoregressive plan (fed-back predictions, WARP only): the scan
    /// and the decoding interleave step by step.
    pub fn gpu_ar_plan(
        &self,
        ctx: &crate::gpu::GpuContext,
        t_len: usize,
        batch: usize,
        io: &SeqIo,
        opts: &ScanOptions,
        ar: &warp::gpu::ArIo,
    ) -> Result<FamilyPlan> {
        match self {
            Model::Warp(m) => m.gpu_plan_with(ctx, t_len, batch, io, opts, Some(ar)),
            _ => bail!("fed-back predictions (autoregressive training) are WARP's"),
        }
    }

    /// A family's own decoding in place of the shared readout GEMMs (WARP's
    /// root network); None: the shared readout.
    #[allow(clippy::too_many_arguments)]
    pub fn gpu_readout(
        &self,
        ctx: &crate::gpu::GpuContext,
        t_len: usize,
        batch: usize,
        x: &wgpu::Buffer,
        states: &wgpu::Buffer,
        y: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        d_states: &wgpu::Buffer,
    ) -> Result<Option<warp::gpu::ReadoutPlan>> {
        match self {
            Model::Warp(m) => Ok(Some(m.gpu_readout(ctx, t_len, batch, x, states, y, dy, d_states)?)),
            _ => Ok(None),
        }
    }
}
