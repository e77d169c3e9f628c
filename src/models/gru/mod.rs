//! GRU family (the cuDNN / PyTorch form): gates (r, z, n),
//! `u = w_rec h_{t-1}`, `r = σ(pre_r + u_r)`, `z = σ(pre_z + u_z)`,
//! `n = tanh(pre_n + r ⊙ (u_n + b_hn))`, `h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}`.
//! The reset gate scales the recurrent part of n only, so that part keeps
//! its own bias `b_hn`. CPU reference in `cpu.rs`, GPU in `gpu.rs`.

mod cpu;
pub mod gpu;

use super::{Dims, InitConfig};
use crate::params::ParamLayout;
use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct Gru {
    pub dims: Dims,
    pub bias: bool,
    pub layout: ParamLayout,
}

impl Gru {
    pub fn new(dims: Dims, bias: bool) -> Self {
        let h = dims.hidden;
        let mut layout = ParamLayout::new();
        layout.push("w_in", &[3 * h, dims.input]);
        layout.push("w_rec", &[3 * h, h]);
        if bias {
            layout.push("b", &[3 * h]);
            layout.push("b_hn", &[h]);
        }
        super::readout::push_layout(&mut layout, h, dims.output, bias);
        Gru { dims, bias, layout }
    }

    pub fn init(&self, init: &InitConfig, rng: &mut Rng) -> Vec<f32> {
        let Dims { input, hidden: h, output } = self.dims;
        let mut p = vec![0f32; self.layout.len()];
        let s = init.scale;
        let o = self.layout.offset("w_in");
        let sd = (1.0 / input as f64).sqrt() * s;
        for v in &mut p[o..o + 3 * h * input] {
            *v = (rng.normal() * sd) as f32;
        }
        let o = self.layout.offset("w_rec");
        for gate in 0..3 {
            let block = super::rnn::recurrent_init(h, init, rng);
            for (k, w) in block.iter().enumerate() {
                p[o + gate * h * h + k] = (*w * s) as f32;
            }
        }
        super::readout::init(&self.layout, &mut p, h, output, s, rng);
        p
    }
}
