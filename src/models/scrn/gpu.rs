//! GPU forward and backward of the SCRN: the context units as a scan that
//! each invocation runs alone over time (shaders/scrn.wgsl,
//! shaders/scrn_backward.wgsl), one GEMM bringing them into the fast layer,
//! and the fast layer as the Elman scan with a sigmoid over rows of width
//! H + M; backwards the same in reverse.

use super::{AlphaMode, Scrn, ScrnForm};
use crate::gpu::context::{Binding, GpuContext};
use crate::gpu::ops::{self, gemm, Dispatch, Mat};
use crate::gpu::shaders;
use crate::models::input::{gpu_project, gpu_project_backward};
use crate::models::rnn::gpu::{elman_scan, ElmanScan, ACT_SIGMOID};
use crate::models::{FamilyPlan, ScanOptions, SeqIo};
use anyhow::Result;
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ScrnUniform {
    batch: u32,
    hidden: u32,
    ctx: u32,
    t0: u32,
    steps: u32,
    t_total: u32,
    alpha_off: u32,
    alpha_mode: u32,
    code_form: u32,
    alpha_fixed: f32,
    _p: [u32; 2],
}

impl Scrn {
    pub fn gpu_plan(&self, ctx: &GpuContext, t_len: usize, batch: usize, io: &SeqIo, opts: &ScanOptions) -> Result<FamilyPlan> {
        let (h, m) = (self.dims.hidden, self.context);
        let s = h + m;
        let rows = t_len * batch;
        let l = &self.layout;
        let pre = ops::storage(ctx, "scrn.pre", rows * s)?;
        let d_pre = ops::storage(ctx, "scrn.d_pre", rows * s)?;
        let gm = ops::storage(ctx, "scrn.gm", rows * m)?;
        let aux = ops::storage(ctx, "scrn.aux", 2 * batch * m)?;
        use Binding::{Read, ReadWrite, Uniform};
        let ctx_fwd = ctx.kernel(&shaders::SCRN, "context_forward", &[], &[Uniform, Read, Read, ReadWrite])?;
        let ctx_bwd = ctx.kernel(&shaders::SCRN_BACKWARD, "context_backward", &[], &[Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite])?;
        let alpha = l.get("alpha").ok();
        let uni = |t0: usize, steps: usize| ScrnUniform {
            batch: batch as u32,
            hidden: h as u32,
            ctx: m as u32,
            t0: t0 as u32,
            steps: steps as u32,
            t_total: t_len as u32,
            alpha_off: alpha.map_or(0, |v| v.offset as u32),
            alpha_mode: match self.alpha_mode {
                AlphaMode::Fixed => 0,
                AlphaMode::Shared => 1,
                AlphaMode::Unit => 2,
            },
            code_form: (self.form == ScrnForm::Code) as u32,
            alpha_fixed: self.alpha as f32,
            _p: [0; 2],
        };
        // the context scan loops over time inside each invocation: chunks keep dispatches short
        let cap = opts.max_steps_per_dispatch.max(1);
        let chunks: Vec<(usize, usize)> = (0..t_len).step_by(cap).map(|t0| (t0, cap.min(t_len - t0))).collect();
        let ctx_groups = ops::grid(ctx, batch * m, 64)?;
        let w_ctx = l.offset("w_ctx");
        // the context state the fast layer reads: s_t (slots 1..=T) or s_{t-1} (0..T)
        let src_off = if self.form == ScrnForm::Paper { batch * s } else { 0 } + h;
        let s_src = Mat { buf: io.states, off: src_off, rs: s, cs: 1 };
        let fast = ElmanScan { hidden: h, stride: s, act: ACT_SIGMOID, w_rec_off: l.offset("w_rec"), pre: &pre, da: &d_pre };
        let (fast_fwd, fast_bwd, persistent) = elman_scan(ctx, t_len, batch, io, &fast, opts)?;

        let mut forward = gpu_project(ctx, l, io, rows, &pre)?;
        for &(t0, steps) in &chunks {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &ctx_fwd, &[&ub, io.params, &pre, io.states]);
            forward.push(Dispatch { kernel: ctx_fwd.clone(), bind, groups: ctx_groups });
        }
        // pre_h += s · Pᵀ for all rows
        forward.extend(gemm(ctx, (rows, h, m), s_src, Mat::transposed(io.params, w_ctx, m), None, Mat { buf: &pre, off: 0, rs: s, cs: 1 }, true)?);
        forward.extend(fast_fwd);

        // the fast layer: da_h into d_pre's first H columns, and dR
        let mut backward = fast_bwd;
        let da_h = Mat { buf: &d_pre, off: 0, rs: s, cs: 1 };
        backward.extend(gemm(ctx, (rows, m, h), da_h, Mat::rows(io.params, w_ctx, m), None, Mat::rows(&gm, 0, m), false)?);
        for &(t0, steps) in chunks.iter().rev() {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &ctx_bwd, &[&ub, io.params, &pre, io.states, io.d_states, &gm, &d_pre, &aux]);
            backward.push(Dispatch { kernel: ctx_bwd.clone(), bind, groups: ctx_groups });
        }
        let da_h_t = Mat { buf: &d_pre, off: 0, rs: 1, cs: s };
        backward.extend(gemm(ctx, (h, m, rows), da_h_t, s_src, None, Mat::rows(io.grads, w_ctx, m), false)?);
        match (self.alpha_mode, alpha) {
            (AlphaMode::Shared, Some(v)) => backward.push(ops::sum(ctx, &aux, batch * m, batch * m, false, io.grads, v.offset)?),
            (AlphaMode::Unit, Some(v)) => backward.push(ops::colsum(ctx, &aux, batch * m, batch, m, io.grads, v.offset)?),
            _ => {}
        }
        backward.extend(gpu_project_backward(ctx, l, io, rows, &d_pre)?);
        Ok(FamilyPlan { forward, backward, persistent, _scratch: vec![pre, d_pre, gm, aux] })
    }
}
