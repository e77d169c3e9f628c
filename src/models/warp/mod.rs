//! WARP, the weight-space linear RNN (Nzoyem et al. 2025): the state θ_t is
//! the flat weight vector of a small root MLP, driven by input differences,
//!
//! `θ_t = A θ_{t-1} + B [x_t − x_{t-1}; τ_t − τ_{t-1}]`,   `y_t = root(τ_t; θ_t)`,
//!
//! with τ_t = t/(T−1) also fed to B as a time channel (so B is D×(d+1)) and
//! x_{-1} = x_0 (the first step only applies A). A starts at the identity and
//! B at zero, so at start θ_t = θ_0 for every t. θ_0 is a learned vector or
//! the output of a small hypernetwork MLP on x_0. WARP decodes with its own
//! root network in place of the shared readout (`Model::readout_*`).
//!
//! State slot 0 of a sequence is θ_0 (the model writes it; a carried state
//! is not used), slot t+1 the weights after input x_t. CPU reference in
//! `cpu.rs`, GPU kernels (shaders/warp*.wgsl) in `gpu.rs`.

pub mod ar;
mod cpu;
pub mod gpu;
pub mod phys;

use super::{Dims, InitConfig};
use crate::params::ParamLayout;
use crate::rng::Rng;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The root network's hidden activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RootAct {
    #[default]
    Relu,
    Tanh,
}

impl RootAct {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "relu" => RootAct::Relu,
            "tanh" => RootAct::Tanh,
            other => bail!("unknown root activation '{other}': expected relu or tanh"),
        })
    }
    /// The code the kernels take.
    pub fn code(self) -> u32 {
        match self {
            RootAct::Relu => 0,
            RootAct::Tanh => 1,
        }
    }
}

/// Where θ_0 comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Theta0 {
    /// one learned vector for every sequence
    #[default]
    Learned,
    /// a one-hidden-layer MLP on the first input x_0
    Hyper,
}

impl Theta0 {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "learned" => Theta0::Learned,
            "hyper" => Theta0::Hyper,
            other => bail!("unknown theta0 mode '{other}': expected learned or hyper"),
        })
    }
}

/// One dense layer of the root network inside θ: `W` (out×in, row-major) at
/// `w`, then its bias at `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootLayer {
    pub inp: usize,
    pub out: usize,
    pub w: usize,
    pub b: usize,
}

/// The root MLP: input τ (width 1, or 1 + d with the step's input x_t),
/// `depth` hidden layers of width `width`, a linear output layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub layers: Vec<RootLayer>,
    /// D: the number of root weights, the state width
    pub size: usize,
}

impl Root {
    pub fn new(width: usize, depth: usize, output: usize, x_in: usize) -> Self {
        let mut layers = Vec::new();
        let mut off = 0;
        let mut inp = 1 + x_in;
        for l in 0..=depth {
            let out = if l == depth { output } else { width };
            layers.push(RootLayer { inp, out, w: off, b: off + inp * out });
            off += inp * out + out;
            inp = out;
        }
        Root { layers, size: off }
    }
    /// Width of the hidden activations of one row (all hidden layers).
    pub fn hidden_total(&self) -> usize {
        self.layers[..self.layers.len() - 1].iter().map(|l| l.out).sum()
    }
}

#[derive(Clone, Debug)]
pub struct Warp {
    /// input d, hidden = the root's width, output = the root's output width
    pub dims: Dims,
    pub depth: usize,
    pub act: RootAct,
    pub theta0: Theta0,
    /// width of the hypernetwork's hidden layer (Theta0::Hyper)
    pub hyper_hidden: usize,
    pub root: Root,
    /// WARP-Phys: the root outputs this system's parameters and one
    /// integration step predicts the next state (fed-back mode only)
    pub phys: Option<crate::tasks::dynamics::System>,
    /// the root network also reads the step's input x_t (the row before the one it predicts)
    pub root_x: bool,
    /// the root network always has biases
    pub bias: bool,
    pub layout: ParamLayout,
}

/// Widest state the engine takes: A alone is D² parameters.
pub const MAX_STATE: usize = 8192;

impl Warp {
    pub fn new(dims: Dims, depth: usize, act: RootAct, theta0: Theta0, phys: Option<crate::tasks::dynamics::System>, root_x: bool) -> Result<Self> {
        if depth == 0 {
            bail!("WARP's root network needs --root-depth >= 1 hidden layers");
        }
        let root_out = match phys {
            Some(sys) => {
                if dims.input != sys.channels() || dims.output != sys.channels() {
                    bail!("WARP-Phys for the {} reads and predicts its {} state variables, not {} and {}", sys.name(), sys.channels(), dims.input, dims.output);
                }
                phys::n_params(sys)
            }
            None => dims.output,
        };
        let root = Root::new(dims.hidden, depth, root_out, if root_x { dims.input } else { 0 });
        let d = root.size;
        if d > MAX_STATE {
            bail!("the root network has {d} weights (width {}, depth {depth}): A would be {d}×{d}; lower --hidden or --root-depth (at most {MAX_STATE} weights)", dims.hidden);
        }
        let mut layout = ParamLayout::new();
        layout.push("A", &[d, d]);
        layout.push("B", &[d, dims.input + 1]);
        // the hypernetwork's hidden width sits between its input and output widths
        let hyper_hidden = (dims.input + d).div_ceil(2);
        match theta0 {
            Theta0::Learned => {
                layout.push("theta0", &[d]);
            }
            Theta0::Hyper => {
                layout.push("hyper_w1", &[hyper_hidden, dims.input]);
                layout.push("hyper_b1", &[hyper_hidden]);
                layout.push("hyper_w2", &[d, hyper_hidden]);
                layout.push("hyper_b2", &[d]);
            }
        }
        Ok(Warp { dims, depth, act, theta0, hyper_hidden, root, phys, root_x, bias: true, layout })
    }

    pub fn state_width(&self) -> usize {
        self.root.size
    }

    /// A = I, B = 0; θ_0 (or the hypernetwork) like a fresh MLP: weights and
    /// biases U(±1/√fan_in), times the init scale.
    pub fn init(&self, init: &InitConfig, rng: &mut Rng) -> Vec<f32> {
        let mut p = vec![0f32; self.layout.len()];
        let d = self.root.size;
        let a = self.layout.offset("A");
        for i in 0..d {
            p[a + i * d + i] = 1.0;
        }
        let s = init.scale;
        let mut uniform = |p: &mut [f32], off: usize, len: usize, fan_in: usize| {
            let lim = s / (fan_in as f64).sqrt();
            for v in &mut p[off..off + len] {
                *v = (rng.uniform_in(-lim, lim)) as f32;
            }
        };
        match self.theta0 {
            Theta0::Learned => {
                let o = self.layout.offset("theta0");
                for l in &self.root.layers {
                    uniform(&mut p, o + l.w, l.inp * l.out + l.out, l.inp);
                }
            }
            Theta0::Hyper => {
                let (i, h) = (self.dims.input, self.hyper_hidden);
                let w1 = self.layout.offset("hyper_w1");
                uniform(&mut p, w1, h * i + h, i);
                let w2 = self.layout.offset("hyper_w2");
                uniform(&mut p, w2, d * h + d, h);
            }
        }
        p
    }
}
