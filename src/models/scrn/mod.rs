//! SCRN, the structurally constrained recurrent network (Mikolov et al.
//! 2014): slow context units beside a sigmoid RNN. State `[h (H); s (M)]`,
//! `s_t = (1 − α) B x_t + α s_{t-1}`, `h_t = σ(A x_t + R h_{t-1} + P s_t)`,
//! readout on the whole state (`y = U h + V s`). The reference code feeds
//! `P s_{t-1}` instead (`ScrnForm::Code`). `w_in` stacks A (rows 0..H) over
//! B (rows H..H+M), so the shared input projection gives both at once.
//! CPU reference in `cpu.rs`, GPU kernels (shaders/scrn*.wgsl) in `gpu.rs`.

mod cpu;
pub mod gpu;

use super::{Dims, InitConfig};
use crate::params::ParamLayout;
use crate::rng::Rng;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Whether α is fixed or learned (one for all context units, or one each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AlphaMode {
    #[default]
    Fixed,
    Shared,
    Unit,
}

impl AlphaMode {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "fixed" => AlphaMode::Fixed,
            "shared" => AlphaMode::Shared,
            "unit" => AlphaMode::Unit,
            other => bail!("unknown alpha mode '{other}': expected fixed, shared or unit"),
        })
    }
}

/// Which context state the fast layer reads: s_t (the paper) or s_{t-1} (the reference code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScrnForm {
    #[default]
    Paper,
    Code,
}

impl ScrnForm {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "paper" => ScrnForm::Paper,
            "code" => ScrnForm::Code,
            other => bail!("unknown SCRN form '{other}': expected paper or code"),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Scrn {
    pub dims: Dims,
    /// M, the number of context units
    pub context: usize,
    /// α when fixed, its starting value when learned
    pub alpha: f64,
    pub alpha_mode: AlphaMode,
    pub form: ScrnForm,
    pub bias: bool,
    /// BPTT rescales dL/dh_t and dL/ds_t (each over all streams) to norm
    /// at most this before passing them back through step t, as the
    /// reference code does with its gradInput clip; CPU path only. The
    /// gradient is then no longer the loss's exact gradient.
    pub state_grad_clip: Option<f64>,
    pub layout: ParamLayout,
}

impl Scrn {
    pub fn new(dims: Dims, context: usize, alpha: f64, alpha_mode: AlphaMode, form: ScrnForm, bias: bool) -> Self {
        let (h, m) = (dims.hidden, context);
        let mut layout = ParamLayout::new();
        layout.push("w_in", &[h + m, dims.input]);
        layout.push("w_rec", &[h, h]);
        layout.push("w_ctx", &[h, m]);
        if bias {
            layout.push("b", &[h + m]);
        }
        match alpha_mode {
            AlphaMode::Fixed => {}
            AlphaMode::Shared => {
                layout.push("alpha", &[1]);
            }
            AlphaMode::Unit => {
                layout.push("alpha", &[m]);
            }
        }
        super::readout::push_layout(&mut layout, h + m, dims.output, bias);
        Scrn { dims, context, alpha, alpha_mode, form, bias, state_grad_clip: None, layout }
    }

    pub fn state_width(&self) -> usize {
        self.dims.hidden + self.context
    }

    pub fn init(&self, init: &InitConfig, rng: &mut Rng) -> Vec<f32> {
        let Dims { input, hidden: h, output } = self.dims;
        let m = self.context;
        let mut p = vec![0f32; self.layout.len()];
        let s = init.scale;
        let o = self.layout.offset("w_in");
        let sd = (1.0 / input as f64).sqrt() * s;
        for v in &mut p[o..o + (h + m) * input] {
            *v = (rng.normal() * sd) as f32;
        }
        let o = self.layout.offset("w_rec");
        for (k, w) in super::rnn::recurrent_init(h, init, rng).iter().enumerate() {
            p[o + k] = (*w * s) as f32;
        }
        let o = self.layout.offset("w_ctx");
        let sd = (1.0 / m as f64).sqrt() * s;
        for v in &mut p[o..o + h * m] {
            *v = (rng.normal() * sd) as f32;
        }
        if let Ok(a) = self.layout.get("alpha") {
            p[a.range()].iter_mut().for_each(|v| *v = self.alpha as f32);
        }
        super::readout::init(&self.layout, &mut p, h + m, output, s, rng);
        p
    }
}
