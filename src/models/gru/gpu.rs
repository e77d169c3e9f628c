//! GPU forward and backward of the GRU (shaders/gru.wgsl,
//! shaders/gru_backward.wgsl), shaped like the LSTM's.

use super::Gru;
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
struct GruScan {
    batch: u32,
    hidden: u32,
    t0: u32,
    steps: u32,
    w_rec_off: u32,
    t_total: u32,
    bhn_off: u32,
    has_bhn: u32,
}

impl Gru {
    pub fn gpu_plan(&self, ctx: &GpuContext, t_len: usize, batch: usize, io: &SeqIo, opts: &ScanOptions) -> Result<FamilyPlan> {
        let h = self.dims.hidden;
        let g = 3 * h;
        let rows = t_len * batch;
        let l = &self.layout;
        let pre = ops::storage(ctx, "gru.pre", rows * g)?;
        let gates = ops::storage(ctx, "gru.gates", rows * 4 * h)?;
        let da = ops::storage(ctx, "gru.da", rows * g)?;
        let dun = ops::storage(ctx, "gru.dun", rows * h)?;
        let dhz = ops::storage(ctx, "gru.dhz", batch * h)?;
        // the backward kernel keeps 2·3H floats per column
        let shape = scan_shape_for(ctx, h, batch, opts.mode, 6 * h)?;
        let consts_p = [("WG", shape.wg), ("BT", shape.bt), ("HMAX", h as u32)];
        let consts_s = [("WG", shape.wg), ("BT", 1), ("HMAX", 1)];
        let (sfx, consts) = if shape.persistent { ("persistent", &consts_p) } else { ("step", &consts_s) };
        use Binding::{Read, ReadWrite, Uniform};
        let fwd_k = ctx.kernel(&shaders::GRU, &format!("forward_{sfx}"), consts, &[Uniform, Read, Read, ReadWrite, ReadWrite])?;
        let bwd_k = ctx.kernel(
            &shaders::GRU_BACKWARD,
            &format!("backward_{sfx}"),
            consts,
            &[Uniform, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite],
        )?;
        let bhn = l.get("b_hn").ok();
        let uni = |t0: usize, steps: usize| GruScan {
            batch: batch as u32,
            hidden: h as u32,
            t0: t0 as u32,
            steps: steps as u32,
            w_rec_off: l.offset("w_rec") as u32,
            t_total: t_len as u32,
            bhn_off: bhn.map_or(0, |v| v.offset as u32),
            has_bhn: bhn.is_some() as u32,
        };
        let chunk = if shape.persistent { opts.max_steps_per_dispatch.max(1) } else { 1 };
        let chunks: Vec<(usize, usize)> = (0..t_len).step_by(chunk).map(|t0| (t0, chunk.min(t_len - t0))).collect();
        let groups = if shape.persistent { (batch.div_ceil(shape.bt as usize) as u32, 1, 1) } else { ops::grid(ctx, batch * h, shape.wg as usize)? };

        let mut forward = gpu_project(ctx, l, io, rows, &pre)?;
        for &(t0, steps) in &chunks {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &fwd_k, &[&ub, io.params, &pre, io.states, &gates]);
            forward.push(Dispatch { kernel: fwd_k.clone(), bind, groups });
        }

        let mut backward = Vec::new();
        for &(t0, steps) in chunks.iter().rev() {
            let ub = ops::uniform(ctx, &uni(t0, steps));
            let bind = ops::bind(ctx, &bwd_k, &[&ub, io.params, io.states, &gates, io.d_states, &da, &dun, &dhz]);
            backward.push(Dispatch { kernel: bwd_k.clone(), bind, groups });
        }
        // dw_rec: the r and z blocks from da, the n block from dun, against h_{t-1}
        let w_off = l.offset("w_rec");
        let h_prev = Mat::rows(io.states, 0, h);
        backward.extend(gemm(ctx, (2 * h, h, rows), Mat::transposed(&da, 0, g), h_prev, None, Mat::rows(io.grads, w_off, h), false)?);
        backward.extend(gemm(ctx, (h, h, rows), Mat::transposed(&dun, 0, h), h_prev, None, Mat::rows(io.grads, w_off + 2 * h * h, h), false)?);
        if let Some(v) = bhn {
            backward.push(ops::colsum(ctx, &dun, 0, rows, h, io.grads, v.offset)?);
        }
        backward.extend(gpu_project_backward(ctx, l, io, rows, &da)?);
        Ok(FamilyPlan { forward, backward, persistent: shape.persistent, _scratch: vec![pre, gates, da, dun, dhz] })
    }
}
