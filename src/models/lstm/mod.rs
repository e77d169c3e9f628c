//! LSTM family: state `[h; c]` (width 2H), gates (i, f, g, o) in that order.
//!
//! `a_t = w_in x_t + b + w_rec h_{t-1}` (4H), `i, f, o = σ(a)`, `g = tanh(a)`,
//! `c_t = f c_{t-1} + i g`, `h_t = o tanh(c_t)`; the readout reads h.
//! CPU reference in `cpu.rs`, GPU kernels (shaders/lstm.wgsl) in `gpu.rs`.

pub(crate) mod cpu;
pub mod gpu;

use super::{Dims, InitConfig};
use crate::params::ParamLayout;
use crate::rng::Rng;

#[derive(Clone, Debug)]
pub struct Lstm {
    pub dims: Dims,
    pub bias: bool,
    /// initial forget-gate bias (1 keeps memories at the start of training)
    pub forget_bias: f64,
    pub layout: ParamLayout,
}

impl Lstm {
    pub fn new(dims: Dims, bias: bool, forget_bias: f64) -> Self {
        let h = dims.hidden;
        let mut layout = ParamLayout::new();
        layout.push("w_in", &[4 * h, dims.input]);
        layout.push("w_rec", &[4 * h, h]);
        if bias {
            layout.push("b", &[4 * h]);
        }
        super::readout::push_layout(&mut layout, h, dims.output, bias);
        Lstm { dims, bias, forget_bias, layout }
    }

    /// w_in ~ N(0, 1/I); each gate's block of w_rec as the init config says;
    /// biases 0 except the forget gate's.
    pub fn init(&self, init: &InitConfig, rng: &mut Rng) -> Vec<f32> {
        let Dims { input, hidden: h, output } = self.dims;
        let mut p = vec![0f32; self.layout.len()];
        let s = init.scale;
        let o = self.layout.offset("w_in");
        let sd = (1.0 / input as f64).sqrt() * s;
        for v in &mut p[o..o + 4 * h * input] {
            *v = (rng.normal() * sd) as f32;
        }
        let o = self.layout.offset("w_rec");
        for gate in 0..4 {
            let block = super::rnn::recurrent_init(h, init, rng);
            for (k, w) in block.iter().enumerate() {
                p[o + gate * h * h + k] = (*w * s) as f32;
            }
        }
        if self.bias {
            let o = self.layout.offset("b");
            for v in &mut p[o + h..o + 2 * h] {
                *v = self.forget_bias as f32;
            }
        }
        super::readout::init(&self.layout, &mut p, h, output, s, rng);
        p
    }
}
