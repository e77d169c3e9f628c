//! Elman RNN family: tanh RNN, sigmoid RNN (Mikolov's SRN) and linear RNN.
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
    Sigmoid,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn gram(w: &[f64], n: usize) -> Vec<f64> {
        let mut g = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                g[i * n + j] = (0..n).map(|k| w[k * n + i] * w[k * n + j]).sum();
            }
        }
        g
    }

    #[test]
    fn orthogonal_identity_and_gaussian_inits() {
        let n = 40;
        let mut rng = Rng::seed(2);
        let o = recurrent_init(n, &InitConfig { kind: InitKind::Orthogonal, gain: 1.5, scale: 1.0 }, &mut rng);
        let g = gram(&o, n);
        for i in 0..n {
            for j in 0..n {
                let want = if i == j { 2.25 } else { 0.0 };
                assert!((g[i * n + j] - want).abs() < 1e-10, "WᵀW[{i},{j}] = {}", g[i * n + j]);
            }
        }
        let id = recurrent_init(n, &InitConfig { kind: InitKind::Identity, gain: 0.7, scale: 1.0 }, &mut rng);
        for i in 0..n {
            for j in 0..n {
                assert_eq!(id[i * n + j], if i == j { 0.7 } else { 0.0 });
            }
        }
        // gaussian: entries N(0, g²/N), so the mean square is g²/N
        let n = 200;
        let w = recurrent_init(n, &InitConfig { kind: InitKind::Gaussian, gain: 2.0, scale: 1.0 }, &mut rng);
        let ms = w.iter().map(|x| x * x).sum::<f64>() / (n * n) as f64;
        assert!((ms * n as f64 / 4.0 - 1.0).abs() < 0.02, "mean square {ms}");
    }

    #[test]
    fn init_scale_multiplies_every_weight() {
        let dims = Dims { input: 3, hidden: 6, output: 2 };
        let rnn = Rnn::new(dims, Activation::Tanh, true);
        let a = rnn.init(&InitConfig { scale: 1.0, ..Default::default() }, &mut Rng::seed(4));
        let b = rnn.init(&InitConfig { scale: 0.05, ..Default::default() }, &mut Rng::seed(4));
        for (x, y) in a.iter().zip(&b) {
            assert!((x * 0.05 - y).abs() <= 1e-6 * x.abs().max(1e-3), "{x} {y}");
        }
    }
}
