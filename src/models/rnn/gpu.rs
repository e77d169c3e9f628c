//! GPU forward and backward of the Elman RNN (shaders/rnn_forward.wgsl,
//! shaders/rnn_backward.wgsl) built as recorded dispatches.

use super::{Activation, Rnn};
use crate::gpu::context::{Binding, GpuContext};
use crate::gpu::ops::{self, gemm, Dispatch, Mat};
use crate::gpu::shaders;
use crate::models::{FamilyPlan, ScanMode, ScanOptions, SeqIo};
use anyhow::Result;
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ScanUniform {
    batch: u32,
    hidden: u32,
    t0: u32,
    steps: u32,
    w_rec_off: u32,
    tanh_act: u32,
    t_total: u32,
    _p: u32,
}

/// How the recurrence will run on this adapter for this shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanShape {
    pub persistent: bool,
    /// threads per workgroup
    pub wg: u32,
    /// batch columns per workgroup (persistent only)
    pub bt: u32,
}

/// Choose the persistent kernel when the batch tile's state fits the
/// adapter's workgroup memory, by the limits, never by vendor.
pub fn scan_shape(ctx: &GpuContext, hidden: usize, batch: usize, mode: ScanMode) -> Result<ScanShape> {
    scan_shape_for(ctx, hidden, batch, mode, 2 * hidden)
}

/// As [`scan_shape`] for a kernel keeping `floats_per_column` f32 of
/// workgroup memory per batch column.
pub fn scan_shape_for(ctx: &GpuContext, hidden: usize, batch: usize, mode: ScanMode, floats_per_column: usize) -> Result<ScanShape> {
    let lim = &ctx.limits;
    let max_threads = lim.max_compute_invocations_per_workgroup.min(lim.max_compute_workgroup_size_x);
    let wg = (hidden.next_power_of_two() as u32).clamp(32, 256).min(max_threads);
    let storage = lim.max_compute_workgroup_storage_size as usize;
    let bt = [8usize, 4, 2, 1].into_iter().find(|&bt| bt <= batch.max(1) && bt * floats_per_column * 4 <= storage);
    match (mode, bt) {
        (ScanMode::Step, _) | (ScanMode::Auto, None) => Ok(ScanShape { persistent: false, wg, bt: 1 }),
        (_, Some(bt)) => Ok(ScanShape { persistent: true, wg, bt: bt as u32 }),
        (ScanMode::Persistent, None) => anyhow::bail!(
            "the persistent scan needs {} bytes of workgroup memory for hidden {hidden}, over this adapter's \
             max_compute_workgroup_storage_size ({storage}); lower --hidden or use --scan step",
            floats_per_column * 4
        ),
    }
}

impl Rnn {
    pub fn gpu_plan(&self, ctx: &GpuContext, t_len: usize, batch: usize, io: &SeqIo, opts: &ScanOptions) -> Result<FamilyPlan> {
        let h = self.dims.hidden;
        let rows = t_len * batch;
        let l = &self.layout;
        let pre = ops::storage(ctx, "rnn.pre", rows * h)?;
        let da = ops::storage(ctx, "rnn.da", rows * h)?;
        let shape = scan_shape(ctx, h, batch, opts.mode)?;
        let consts_p = [("WG", shape.wg), ("BT", shape.bt), ("HMAX", h as u32)];
        let consts_s = [("WG", shape.wg), ("BT", 1), ("HMAX", 1)];
        let (entry, consts) = if shape.persistent { ("persistent", &consts_p) } else { ("step", &consts_s) };
        let fwd_k = ctx.kernel(&shaders::RNN_FORWARD, entry, consts, &[Binding::Uniform, Binding::Read, Binding::Read, Binding::ReadWrite])?;
        let bwd_k = ctx.kernel(
            &shaders::RNN_BACKWARD,
            entry,
            consts,
            &[Binding::Uniform, Binding::Read, Binding::Read, Binding::Read, Binding::ReadWrite],
        )?;
        let tanh_act = (self.act == Activation::Tanh) as u32;
        let w_rec_off = l.offset("w_rec") as u32;
        let uni = |t0: usize, steps: usize| ScanUniform {
            batch: batch as u32,
            hidden: h as u32,
            t0: t0 as u32,
            steps: steps as u32,
            w_rec_off,
            tanh_act,
            t_total: t_len as u32,
            _p: 0,
        };
        // time chunks: each dispatch stays short (driver watchdogs)
        let chunk = if shape.persistent { opts.max_steps_per_dispatch.max(1) } else { 1 };
        let chunks: Vec<(usize, usize)> = (0..t_len).step_by(chunk).map(|t0| (t0, chunk.min(t_len - t0))).collect();
        let groups = if shape.persistent { (batch.div_ceil(shape.bt as usize) as u32, 1, 1) } else { ops::grid(ctx, batch * h, shape.wg as usize)? };

        let mut forward = Vec::new();
        // pre = x · w_inᵀ + b for all T·B rows in one GEMM
        forward.extend(crate::models::input::gpu_project(ctx, l, io, rows, &pre)?);
        for &(t0, steps) in &chunks {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &fwd_k, &[&ub, io.params, &pre, io.states]);
            forward.push(Dispatch { kernel: fwd_k.clone(), bind, groups });
        }

        let mut backward = Vec::new();
        for &(t0, steps) in chunks.iter().rev() {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &bwd_k, &[&ub, io.params, io.states, io.d_states, &da]);
            backward.push(Dispatch { kernel: bwd_k.clone(), bind, groups });
        }
        // dw_rec = daᵀ · h_{t-1} over all rows: states slots 0..T are the previous states
        backward.extend(gemm(ctx, (h, h, rows), Mat::transposed(&da, 0, h), Mat::rows(io.states, 0, h), None, Mat::rows(io.grads, l.offset("w_rec"), h), false)?);
        backward.extend(crate::models::input::gpu_project_backward(ctx, l, io, rows, &da)?);
        Ok(FamilyPlan { forward, backward, persistent: shape.persistent, _scratch: vec![pre, da] })
    }
}
