//! GPU forward and backward of the SCRN (shaders/scrn.wgsl,
//! shaders/scrn_backward.wgsl): the context units as a scan that each
//! invocation runs alone over time, one GEMM bringing them into the fast
//! layer, then a sigmoid Elman scan; backwards the same in reverse.

use super::{AlphaMode, Scrn, ScrnForm};
use crate::gpu::context::{Binding, GpuContext};
use crate::gpu::ops::{self, gemm, Dispatch, Mat};
use crate::gpu::shaders;
use crate::models::input::{gpu_project, gpu_project_backward};
use crate::models::rnn::gpu::scan_shape_for;
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
    w_rec_off: u32,
    alpha_off: u32,
    alpha_mode: u32,
    code_form: u32,
    alpha_fixed: f32,
    _p: u32,
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
        let shape = scan_shape_for(ctx, h, batch, opts.mode, 2 * h)?;
        let consts_p = [("WG", shape.wg), ("BT", shape.bt), ("HMAX", h as u32)];
        let consts_s = [("WG", shape.wg), ("BT", 1), ("HMAX", 1)];
        let (sfx, consts) = if shape.persistent { ("persistent", &consts_p) } else { ("step", &consts_s) };
        use Binding::{Read, ReadWrite, Uniform};
        let fwd_bind = [Uniform, Read, Read, ReadWrite];
        let bwd_bind = [Uniform, Read, Read, Read, Read, Read, ReadWrite, ReadWrite];
        let ctx_fwd = ctx.kernel(&shaders::SCRN, "context_forward", consts, &fwd_bind)?;
        let hid_fwd = ctx.kernel(&shaders::SCRN, &format!("hidden_{sfx}"), consts, &fwd_bind)?;
        let hid_bwd = ctx.kernel(&shaders::SCRN_BACKWARD, &format!("hidden_back_{sfx}"), consts, &bwd_bind)?;
        let ctx_bwd = ctx.kernel(&shaders::SCRN_BACKWARD, "context_backward", consts, &bwd_bind)?;
        let alpha = l.get("alpha").ok();
        let uni = |t0: usize, steps: usize| ScrnUniform {
            batch: batch as u32,
            hidden: h as u32,
            ctx: m as u32,
            t0: t0 as u32,
            steps: steps as u32,
            t_total: t_len as u32,
            w_rec_off: l.offset("w_rec") as u32,
            alpha_off: alpha.map_or(0, |v| v.offset as u32),
            alpha_mode: match self.alpha_mode {
                AlphaMode::Fixed => 0,
                AlphaMode::Shared => 1,
                AlphaMode::Unit => 2,
            },
            code_form: (self.form == ScrnForm::Code) as u32,
            alpha_fixed: self.alpha as f32,
            _p: 0,
        };
        let cap = opts.max_steps_per_dispatch.max(1);
        let long: Vec<(usize, usize)> = (0..t_len).step_by(cap).map(|t0| (t0, cap.min(t_len - t0))).collect();
        let hid_chunks: Vec<(usize, usize)> = if shape.persistent { long.clone() } else { (0..t_len).map(|t| (t, 1)).collect() };
        let ctx_groups = ops::grid(ctx, batch * m, 64)?;
        let hid_groups = if shape.persistent { (batch.div_ceil(shape.bt as usize) as u32, 1, 1) } else { ops::grid(ctx, batch * h, shape.wg as usize)? };
        let w_ctx = l.offset("w_ctx");
        // the context state the fast layer reads: s_t (slots 1..=T) or s_{t-1} (0..T)
        let src_off = if self.form == ScrnForm::Paper { batch * s } else { 0 } + h;

        let mut forward = gpu_project(ctx, l, io, rows, &pre)?;
        for &(t0, steps) in &long {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &ctx_fwd, &[&ub, io.params, &pre, io.states]);
            forward.push(Dispatch { kernel: ctx_fwd.clone(), bind, groups: ctx_groups });
        }
        // pre_h += s · Pᵀ for all rows
        let s_src = Mat { buf: io.states, off: src_off, rs: s, cs: 1 };
        forward.extend(gemm(ctx, (rows, h, m), s_src, Mat::transposed(io.params, w_ctx, m), None, Mat { buf: &pre, off: 0, rs: s, cs: 1 }, true)?);
        for &(t0, steps) in &hid_chunks {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &hid_fwd, &[&ub, io.params, &pre, io.states]);
            forward.push(Dispatch { kernel: hid_fwd.clone(), bind, groups: hid_groups });
        }

        let mut backward = Vec::new();
        let bwd = |k: &std::sync::Arc<crate::gpu::context::Kernel>, t0: usize, steps: usize| {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            ops::bind(ctx, k, &[&ub, io.params, &pre, io.states, io.d_states, &gm, &d_pre, &aux])
        };
        for &(t0, steps) in hid_chunks.iter().rev() {
            backward.push(Dispatch { kernel: hid_bwd.clone(), bind: bwd(&hid_bwd, t0, steps), groups: hid_groups });
        }
        let da_h = Mat { buf: &d_pre, off: 0, rs: s, cs: 1 };
        backward.extend(gemm(ctx, (rows, m, h), da_h, Mat::rows(io.params, w_ctx, m), None, Mat::rows(&gm, 0, m), false)?);
        for &(t0, steps) in long.iter().rev() {
            backward.push(Dispatch { kernel: ctx_bwd.clone(), bind: bwd(&ctx_bwd, t0, steps), groups: ctx_groups });
        }
        let da_h_t = Mat { buf: &d_pre, off: 0, rs: 1, cs: s };
        let h_prev = Mat { buf: io.states, off: 0, rs: s, cs: 1 };
        backward.extend(gemm(ctx, (h, h, rows), da_h_t, h_prev, None, Mat::rows(io.grads, l.offset("w_rec"), h), false)?);
        backward.extend(gemm(ctx, (h, m, rows), da_h_t, s_src, None, Mat::rows(io.grads, w_ctx, m), false)?);
        match (self.alpha_mode, alpha) {
            (AlphaMode::Shared, Some(v)) => backward.push(ops::sum(ctx, &aux, batch * m, batch * m, false, io.grads, v.offset)?),
            (AlphaMode::Unit, Some(v)) => backward.push(ops::colsum(ctx, &aux, batch * m, batch, m, io.grads, v.offset)?),
            _ => {}
        }
        backward.extend(gpu_project_backward(ctx, l, io, rows, &d_pre)?);
        Ok(FamilyPlan { forward, backward, persistent: shape.persistent, _scratch: vec![pre, d_pre, gm, aux] })
    }
}
