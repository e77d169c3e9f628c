//! Model families. Each family is one module with its parameter layout and
//! initialisation, its CPU reference (forward, backward, tangent map) and its
//! GPU kernels. The readout `y_t = w_out · r_t + b_out` on the family's
//! readout features `r_t` (a prefix of the state) is shared by all families.
//!
//! State is always real: a complex state is stored as [re; im], an LSTM's as
//! [h; c], WARP's as the root network's flat weights. States of a sequence
//! are an array `(T + 1, B, S)` whose slot 0 is the initial state.

pub mod readout;
pub mod rnn;

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
    /// linear RNN (identity activation)
    Linear,
}

impl ModelKind {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "rnn" | "tanh" => ModelKind::Rnn,
            "linear" => ModelKind::Linear,
            other => bail!("unknown model '{other}': expected one of rnn, linear"),
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Rnn => "rnn",
            ModelKind::Linear => "linear",
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

/// A model: a family plus its sizes. New families add a variant here and a
/// module beside `rnn`; the trainer, checkpoints and tests go through this.
#[derive(Clone, Debug)]
pub enum Model {
    Rnn(rnn::Rnn),
}

impl Model {
    pub fn new(kind: ModelKind, dims: Dims) -> Result<Self> {
        Self::with_bias(kind, dims, true)
    }

    /// `bias = false` drops the hidden and readout biases.
    pub fn with_bias(kind: ModelKind, dims: Dims, bias: bool) -> Result<Self> {
        if dims.input == 0 || dims.hidden == 0 || dims.output == 0 {
            bail!("model sizes must be positive (input {}, hidden {}, output {})", dims.input, dims.hidden, dims.output);
        }
        Ok(match kind {
            ModelKind::Rnn => Model::Rnn(rnn::Rnn::new(dims, rnn::Activation::Tanh, bias)),
            ModelKind::Linear => Model::Rnn(rnn::Rnn::new(dims, rnn::Activation::Linear, bias)),
        })
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Model::Rnn(m) => match m.act {
                rnn::Activation::Tanh => ModelKind::Rnn,
                rnn::Activation::Linear => ModelKind::Linear,
            },
        }
    }

    pub fn has_bias(&self) -> bool {
        match self {
            Model::Rnn(m) => m.bias,
        }
    }

    pub fn dims(&self) -> Dims {
        match self {
            Model::Rnn(m) => m.dims,
        }
    }

    pub fn layout(&self) -> &ParamLayout {
        match self {
            Model::Rnn(m) => &m.layout,
        }
    }

    /// Width S of the state vector.
    pub fn state_width(&self) -> usize {
        match self {
            Model::Rnn(m) => m.dims.hidden,
        }
    }

    /// The readout reads the first `readout_width` entries of the state.
    pub fn readout_width(&self) -> usize {
        match self {
            Model::Rnn(m) => m.dims.hidden,
        }
    }

    pub fn init(&self, init: &InitConfig, rng: &mut Rng) -> Vec<f32> {
        match self {
            Model::Rnn(m) => m.init(init, rng),
        }
    }

    /// CPU reference forward: states `(T + 1, B, S)` from inputs `(T, B, I)`.
    pub fn forward<F: Real>(&self, p: &[F], x: ArrayView3<F>, h0: ArrayView2<F>) -> Array3<F> {
        match self {
            Model::Rnn(m) => m.forward(p, x, h0),
        }
    }

    /// CPU reference backward: from dL/d(states 1..=T) `(T, B, S)` add the
    /// parameter gradients into `grads` (same layout as params) and return
    /// dL/d(initial state).
    pub fn backward<F: Real>(
        &self,
        p: &[F],
        x: ArrayView3<F>,
        states: ArrayView3<F>,
        d_states: ArrayView3<F>,
        grads: &mut [F],
    ) -> Array2<F> {
        match self {
            Model::Rnn(m) => m.backward(p, x, states, d_states, grads),
        }
    }

    /// Tangent map of one step for one trajectory: J_t · Q with
    /// J_t = ∂h_t/∂h_{t-1}, Q of shape (S, k). `h_t` is the new state.
    pub fn tangent<F: Real>(&self, p: &[F], h_t: &[F], q: ArrayView2<F>) -> Array2<F> {
        match self {
            Model::Rnn(m) => m.tangent(p, h_t, q),
        }
    }

    /// Reverse mode of [`Model::tangent`] for one trajectory: given
    /// Q̄_new = dL/d(J_t Q) (S, k), add the parameter gradients through J_t
    /// into `grads` and return (dL/dQ, dL/dh_t through J_t).
    pub fn tangent_vjp<F: Real>(
        &self,
        p: &[F],
        h_t: &[F],
        q_prev: ArrayView2<F>,
        qbar_new: ArrayView2<F>,
        grads: &mut [F],
    ) -> (Array2<F>, Vec<F>) {
        match self {
            Model::Rnn(m) => m.tangent_vjp(p, h_t, q_prev, qbar_new, grads),
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
}

impl ScanMode {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "auto" => ScanMode::Auto,
            "persistent" => ScanMode::Persistent,
            "step" => ScanMode::Step,
            other => bail!("unknown scan mode '{other}': expected auto, persistent or step"),
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
    pub x: &'a wgpu::Buffer,
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
        match self {
            Model::Rnn(m) => m.gpu_plan(ctx, t_len, batch, io, opts),
        }
    }
}
