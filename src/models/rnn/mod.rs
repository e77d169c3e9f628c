//! Elman RNN family: tanh RNN and linear RNN.
//!
//! `h_t = act(w_rec h_{t-1} + w_in x_t + b)`, readout `y_t = w_out h_t + b_out`.
//! CPU reference in `cpu.rs`, GPU kernels (shaders/rnn_scan.wgsl) in `gpu.rs`.

mod cpu;
pub mod gpu;

use super::{Dims, InitConfig, InitKind};
use crate::params::ParamLayout;
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Tanh,
    Linear,
}

#[derive(Clone, Debug)]
pub struct Rnn {
    pub dims: Dims,
    pub act: Activation,
    /// hidden bias `b` and readout bias `b_out` (the linear-RNN study has none)
    pub bias: bool,
    pub layout: ParamLayout,
}

impl Rnn {
    pub fn new(dims: Dims, act: Activation, bias: bool) -> Self {
        let mut layout = ParamLayout::new();
        layout.push("w_in", &[dims.hidden, dims.input]);
        layout.push("w_rec", &[dims.hidden, dims.hidden]);
        if bias {
            layout.push("b", &[dims.hidden]);
        }
        super::readout::push_layout(&mut layout, dims.hidden, dims.output, bias);
        Rnn { dims, act, bias, layout }
    }

    pub fn init(&self, init: &InitConfig, rng: &mut Rng) -> Vec<f32> {
        let Dims { input, hidden, output } = self.dims;
        let mut p = vec![0f32; self.layout.len()];
        let s = init.scale;
        let w_rec = recurrent_init(hidden, init, rng);
        let o = self.layout.offset("w_rec");
        for (i, w) in w_rec.iter().enumerate() {
            p[o + i] = (*w * s) as f32;
        }
        let o = self.layout.offset("w_in");
        let sd = (1.0 / input as f64).sqrt() * s;
        for i in 0..hidden * input {
            p[o + i] = (rng.normal() * sd) as f32;
        }
        super::readout::init(&self.layout, &mut p, hidden, output, s, rng);
        p
    }
}

/// A square recurrent matrix (row-major, f64) as the init config says.
pub fn recurrent_init(n: usize, init: &InitConfig, rng: &mut Rng) -> Vec<f64> {
    let g = init.gain;
    match init.kind {
        InitKind::Gaussian => {
            let sd = g / (n as f64).sqrt();
            (0..n * n).map(|_| rng.normal() * sd).collect()
        }
        InitKind::Identity => {
            let mut w = vec![0.0; n * n];
            for i in 0..n {
                w[i * n + i] = g;
            }
            w
        }
        InitKind::Orthogonal => {
            let mut q = crate::cpu::random_orthogonal(n, rng);
            q.iter_mut().for_each(|x| *x *= g);
            q
        }
    }
}
