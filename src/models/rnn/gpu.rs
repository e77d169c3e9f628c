//! GPU forward and backward of the Elman RNN (shaders/rnn_forward.wgsl,
//! shaders/rnn_backward.wgsl) built as recorded dispatches. The scan also
//! runs the SCRN's sigmoid fast layer, over state rows wider than h.

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
    act: u32,
    t_total: u32,
    /// floats between consecutive rows of pre, states, d_states and da
    stride: u32,
}

/// Activation codes of the Elman scan kernels.
pub const ACT_LINEAR: u32 = 0;
pub const ACT_TANH: u32 = 1;
pub const ACT_SIGMOID: u32 = 2;

/// How the recurrence will run on this adapter for this shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanShape {
    pub persistent: bool,
    /// threads per workgroup
    pub wg: u32,
    /// batch columns per workgroup (persistent only)
    pub bt: u32,
}

impl ScanShape {
    /// The kernels' constants: workgroup size, batch tile, state size.
    pub fn consts(&self, hidden: usize) -> [(&'static str, u32); 3] {
        if self.persistent {
            [("WG", self.wg), ("BT", self.bt), ("HMAX", hidden as u32)]
        } else {
            [("WG", self.wg), ("BT", 1), ("HMAX", 1)]
        }
    }

    /// "persistent" or "step", the suffix of the entry points.
    pub fn entry(&self) -> &'static str {
        if self.persistent {
            "persistent"
        } else {
            "step"
        }
    }

    /// (t0, steps) of each dispatch: up to the per-dispatch cap for the
    /// persistent kernel (driver watchdogs), one step otherwise.
    pub fn chunks(&self, t_len: usize, opts: &ScanOptions) -> Vec<(usize, usize)> {
        let chunk = if self.persistent { opts.max_steps_per_dispatch.max(1) } else { 1 };
        (0..t_len).step_by(chunk).map(|t0| (t0, chunk.min(t_len - t0))).collect()
    }

    /// Workgroups: one per batch tile, or one invocation per (b, unit).
    pub fn groups(&self, ctx: &GpuContext, batch: usize, hidden: usize) -> Result<(u32, u32, u32)> {
        if self.persistent {
            Ok((batch.div_ceil(self.bt as usize) as u32, 1, 1))
        } else {
            ops::grid(ctx, batch * hidden, self.wg as usize)
        }
    }
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
        (ScanMode::Parallel, _) => anyhow::bail!("--scan parallel (the log-depth solve of a linear recurrence) is implemented for WARP only: use --scan auto, persistent or step"),
        (ScanMode::Step, _) | (ScanMode::Auto, None) => Ok(ScanShape { persistent: false, wg, bt: 1 }),
        (_, Some(bt)) => Ok(ScanShape { persistent: true, wg, bt: bt as u32 }),
        (ScanMode::Persistent, None) => anyhow::bail!(
            "the persistent scan needs {} bytes of workgroup memory for hidden {hidden}, over this adapter's \
             max_compute_workgroup_storage_size ({storage}); lower --hidden or use --scan step",
            floats_per_column * 4
        ),
    }
}

/// An Elman scan `h_t = act(pre_t + W h_{t-1})` over the first `hidden`
/// entries of rows `stride` apart in `pre`, the states, `d_states` and `da`.
pub struct ElmanScan<'a> {
    pub hidden: usize,
    pub stride: usize,
    pub act: u32,
    pub w_rec_off: usize,
    pub pre: &'a wgpu::Buffer,
    pub da: &'a wgpu::Buffer,
}

/// The scan's forward dispatches, and its backward ones: da_t =
/// (d_states_t + Wᵀ da_{t+1}) ⊙ act'(h_t), then dW = daᵀ h_{t-1} over all
/// rows (overwriting W's gradient). Also whether it runs persistent.
pub fn elman_scan(ctx: &GpuContext, t_len: usize, batch: usize, io: &SeqIo, e: &ElmanScan, opts: &ScanOptions) -> Result<(Vec<Dispatch>, Vec<Dispatch>, bool)> {
    let h = e.hidden;
    let shape = scan_shape(ctx, h, batch, opts.mode)?;
    let consts = shape.consts(h);
    use Binding::{Read, ReadWrite, Uniform};
    let fwd_k = ctx.kernel(&shaders::RNN_FORWARD, shape.entry(), &consts, &[Uniform, Read, Read, ReadWrite])?;
    let bwd_k = ctx.kernel(&shaders::RNN_BACKWARD, shape.entry(), &consts, &[Uniform, Read, Read, Read, ReadWrite])?;
    let uni = |t0: usize, steps: usize| ScanUniform {
        batch: batch as u32,
        hidden: h as u32,
        t0: t0 as u32,
        steps: steps as u32,
        w_rec_off: e.w_rec_off as u32,
        act: e.act,
        t_total: t_len as u32,
        stride: e.stride as u32,
    };
    let chunks = shape.chunks(t_len, opts);
    let groups = shape.groups(ctx, batch, h)?;
    let mut forward = Vec::new();
    for &(t0, steps) in &chunks {
        let ub = ops::uniform(ctx, &uni(t0, steps));
        let bind = ops::bind(ctx, &fwd_k, &[&ub, io.params, e.pre, io.states]);
        forward.push(Dispatch { kernel: fwd_k.clone(), bind, groups });
    }
    let mut backward = Vec::new();
    for &(t0, steps) in chunks.iter().rev() {
        let ub = ops::uniform(ctx, &uni(t0, steps));
        let bind = ops::bind(ctx, &bwd_k, &[&ub, io.params, io.states, io.d_states, e.da]);
        backward.push(Dispatch { kernel: bwd_k.clone(), bind, groups });
    }
    // dW = daᵀ · h_{t-1}: state slots 0..T are the previous states
    let rows = t_len * batch;
    let da_t = Mat { buf: e.da, off: 0, rs: 1, cs: e.stride };
    let h_prev = Mat { buf: io.states, off: 0, rs: e.stride, cs: 1 };
    backward.extend(gemm(ctx, (h, h, rows), da_t, h_prev, None, Mat::rows(io.grads, e.w_rec_off, h), false)?);
    Ok((forward, backward, shape.persistent))
}

impl Rnn {
    pub fn gpu_plan(&self, ctx: &GpuContext, t_len: usize, batch: usize, io: &SeqIo, opts: &ScanOptions) -> Result<FamilyPlan> {
        let h = self.dims.hidden;
        let rows = t_len * batch;
        let l = &self.layout;
        let pre = ops::storage(ctx, "rnn.pre", rows * h)?;
        let da = ops::storage(ctx, "rnn.da", rows * h)?;
        let act = match self.act {
            Activation::Tanh => ACT_TANH,
            Activation::Sigmoid => ACT_SIGMOID,
            Activation::Linear => ACT_LINEAR,
        };
        let scan = ElmanScan { hidden: h, stride: h, act, w_rec_off: l.offset("w_rec"), pre: &pre, da: &da };
        let (scan_fwd, scan_bwd, persistent) = elman_scan(ctx, t_len, batch, io, &scan, opts)?;
        // pre = x · w_inᵀ + b for all T·B rows in one GEMM (or a gather of token columns)
        let mut forward = crate::models::input::gpu_project(ctx, l, io, rows, &pre)?;
        forward.extend(scan_fwd);
        let mut backward = scan_bwd;
        backward.extend(crate::models::input::gpu_project_backward(ctx, l, io, rows, &da)?);
        Ok(FamilyPlan { forward, backward, persistent, _scratch: vec![pre, da] })
    }
}
