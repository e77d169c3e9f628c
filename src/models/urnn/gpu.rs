//! GPU forward and backward of the uRNN (shaders/urnn_common.wgsl with
//! shaders/urnn.wgsl and shaders/urnn_backward.wgsl): the input projection
//! as one GEMM, then one workgroup per batch row looping over time with the
//! FFTs, reflections and modReLU fused; backward the exact adjoints, per-row
//! parameter gradients summed over rows at the end, dL/dV as one GEMM.

use super::Urnn;
use crate::gpu::context::{Binding, GpuContext};
use crate::gpu::ops::{self, Dispatch};
use crate::gpu::shaders;
use crate::models::input::{gpu_project, gpu_project_backward};
use crate::models::{FamilyPlan, ScanMode, ScanOptions, SeqIo};
use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UrnnUniform {
    batch: u32,
    n: u32,
    t0: u32,
    steps: u32,
    t_total: u32,
    log2n: u32,
    theta_off: u32,
    refl_off: u32,
    bmod_off: u32,
    has_bias: u32,
    /// scratch floats per row (storage scratch)
    scw: u32,
    /// gradient floats per row in aux
    gw: u32,
    db_off: u32,
    dh0_off: u32,
    _p: [u32; 2],
}

/// How the uRNN kernels run on this adapter: threads per workgroup, and
/// whether the scratch vectors fit workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrnnShape {
    pub wg: u32,
    pub workgroup_scratch: bool,
    /// floats of scratch per batch row (the backward's, the larger)
    pub scratch: usize,
}

pub fn urnn_shape(ctx: &GpuContext, n: usize, mode: ScanMode) -> Result<UrnnShape> {
    let max_t = ctx.limits.max_compute_invocations_per_workgroup.min(ctx.limits.max_compute_workgroup_size_x);
    // a power of two for the tree reductions; no more threads than butterflies
    let mut wg = 1u32;
    while wg * 2 <= 256.min(max_t) && (wg * 2) as usize <= (n / 2).max(1) {
        wg *= 2;
    }
    // backward: X1, X2, G, A (2N floats each) and the reduction (2·WG)
    let scratch = 8 * n + 2 * wg as usize;
    let fits = (scratch * 4) as u64 <= ctx.limits.max_compute_workgroup_storage_size as u64;
    let workgroup_scratch = match mode {
        ScanMode::Auto => fits,
        ScanMode::Persistent if fits => true,
        ScanMode::Persistent => bail!(
            "the uRNN's state for N = {n} needs {} bytes of workgroup memory, over this adapter's {}; use --scan auto",
            scratch * 4,
            ctx.limits.max_compute_workgroup_storage_size
        ),
        ScanMode::Step => false,
        ScanMode::Parallel => bail!("--scan parallel (the log-depth solve of a linear recurrence) is implemented for WARP only: use --scan auto, persistent or step"),
    };
    Ok(UrnnShape { wg, workgroup_scratch, scratch })
}

impl Urnn {
    pub fn gpu_plan(&self, ctx: &GpuContext, t_len: usize, batch: usize, io: &SeqIo, opts: &ScanOptions) -> Result<FamilyPlan> {
        let n = self.dims.hidden;
        let rows = t_len * batch;
        let l = &self.layout;
        if batch > ctx.limits.max_compute_workgroups_per_dimension as usize {
            bail!("the uRNN runs one workgroup per batch row: --batch {batch} is over this adapter's {}", ctx.limits.max_compute_workgroups_per_dimension);
        }
        let shape = urnn_shape(ctx, n, opts.mode)?;
        let pre = ops::storage(ctx, "urnn.pre", rows * 2 * n)?;
        let d_pre = ops::storage(ctx, "urnn.d_pre", rows * 2 * n)?;
        let perm = ops::storage(ctx, "urnn.perm", n)?;
        let perm_u32: Vec<u32> = self.perm.iter().map(|&p| p as u32).collect();
        ctx.queue.write_buffer(&perm, 0, bytemuck::cast_slice(&perm_u32));
        let scratch = ops::storage(ctx, "urnn.scratch", if shape.workgroup_scratch { 1 } else { batch * shape.scratch })?;
        let bias = self.layout.get("b_mod").ok();
        let db_off = 7 * n;
        let dh0_off = db_off + if bias.is_some() { n } else { 0 };
        let gw = dh0_off + 2 * n;
        let aux = ops::storage(ctx, "urnn.aux", batch * (gw + 2 * n))?;
        let wsc = if shape.workgroup_scratch { shape.scratch as u32 } else { 1 };
        let consts = [("WG", shape.wg), ("USE_WG", shape.workgroup_scratch as u32), ("WSC", wsc)];
        use Binding::{Read, ReadWrite, Uniform};
        let common = [Uniform, Read, Read, Read, ReadWrite];
        let fwd_k = ctx.kernel(&shaders::URNN, "forward", &consts, &[&common[..], &[ReadWrite]].concat())?;
        let bwd_k = ctx.kernel(&shaders::URNN_BACKWARD, "backward", &consts, &[&common[..], &[Read, Read, ReadWrite, ReadWrite]].concat())?;
        let theta_off = l.offset("theta");
        let uni = |t0: usize, steps: usize| UrnnUniform {
            batch: batch as u32,
            n: n as u32,
            t0: t0 as u32,
            steps: steps as u32,
            t_total: t_len as u32,
            log2n: n.trailing_zeros(),
            theta_off: theta_off as u32,
            refl_off: l.offset("refl") as u32,
            bmod_off: bias.map_or(0, |v| v.offset as u32),
            has_bias: bias.is_some() as u32,
            scw: if shape.workgroup_scratch { 0 } else { shape.scratch as u32 },
            gw: gw as u32,
            db_off: db_off as u32,
            dh0_off: dh0_off as u32,
            _p: [0; 2],
        };
        // every dispatch loops over time: chunks keep each one short
        let cap = opts.max_steps_per_dispatch.max(1);
        let chunks: Vec<(usize, usize)> = (0..t_len).step_by(cap).map(|t0| (t0, cap.min(t_len - t0))).collect();
        let groups = (batch as u32, 1, 1);

        let mut forward = gpu_project(ctx, l, io, rows, &pre)?;
        for &(t0, steps) in &chunks {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &fwd_k, &[&ub, io.params, &pre, &perm, &scratch, io.states]);
            forward.push(Dispatch { kernel: fwd_k.clone(), bind, groups });
        }
        let mut backward = Vec::new();
        for &(t0, steps) in chunks.iter().rev() {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &bwd_k, &[&ub, io.params, &pre, &perm, &scratch, io.states, io.d_states, &d_pre, &aux]);
            backward.push(Dispatch { kernel: bwd_k.clone(), bind, groups });
        }
        // θ, reflections, b_mod and h0 lie one after another in the layout, as in aux
        debug_assert_eq!(l.offset("h0"), theta_off + dh0_off);
        backward.push(ops::colsum(ctx, &aux, 0, batch, gw, io.grads, theta_off)?);
        backward.extend(gpu_project_backward(ctx, l, io, rows, &d_pre)?);
        Ok(FamilyPlan { forward, backward, persistent: shape.workgroup_scratch, _scratch: vec![pre, d_pre, perm, scratch, aux] })
    }
}
