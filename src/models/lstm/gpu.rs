//! GPU forward and backward of the LSTM (shaders/lstm.wgsl,
//! shaders/lstm_backward.wgsl) as recorded dispatches: one GEMM for the
//! input projection of all steps, the recurrence (persistent when a batch
//! tile's state fits workgroup memory, else one dispatch per step), then
//! GEMMs for the weight gradients.

use super::Lstm;
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
pub(crate) struct GatedScan {
    pub batch: u32,
    pub hidden: u32,
    pub t0: u32,
    pub steps: u32,
    pub w_rec_off: u32,
    pub t_total: u32,
    pub _p: [u32; 2],
}

impl Lstm {
    pub fn gpu_plan(&self, ctx: &GpuContext, t_len: usize, batch: usize, io: &SeqIo, opts: &ScanOptions) -> Result<FamilyPlan> {
        let h = self.dims.hidden;
        let (g, s) = (4 * h, 2 * h);
        let rows = t_len * batch;
        let l = &self.layout;
        let pre = ops::storage(ctx, "lstm.pre", rows * g)?;
        let gates = ops::storage(ctx, "lstm.gates", rows * g)?;
        let da = ops::storage(ctx, "lstm.da", rows * g)?;
        let dc = ops::storage(ctx, "lstm.dc", batch * h)?;
        // the backward kernel keeps 2·4H floats per column
        let shape = scan_shape_for(ctx, h, batch, opts.mode, 8 * h)?;
        let consts_p = [("WG", shape.wg), ("BT", shape.bt), ("HMAX", h as u32)];
        let consts_s = [("WG", shape.wg), ("BT", 1), ("HMAX", 1)];
        let (sfx, consts) = if shape.persistent { ("persistent", &consts_p) } else { ("step", &consts_s) };
        use Binding::{Read, ReadWrite, Uniform};
        let fwd_k = ctx.kernel(&shaders::LSTM, &format!("forward_{sfx}"), consts, &[Uniform, Read, Read, ReadWrite, ReadWrite])?;
        let bwd_k = ctx.kernel(
            &shaders::LSTM_BACKWARD,
            &format!("backward_{sfx}"),
            consts,
            &[Uniform, Read, Read, Read, Read, ReadWrite, ReadWrite],
        )?;
        let w_rec_off = l.offset("w_rec") as u32;
        let uni = |t0: usize, steps: usize| GatedScan {
            batch: batch as u32,
            hidden: h as u32,
            t0: t0 as u32,
            steps: steps as u32,
            w_rec_off,
            t_total: t_len as u32,
            _p: [0; 2],
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
            let bind = ops::bind(ctx, &bwd_k, &[&ub, io.params, io.states, &gates, io.d_states, &da, &dc]);
            backward.push(Dispatch { kernel: bwd_k.clone(), bind, groups });
        }
        // dw_rec = daᵀ · h_{t-1}: the h half of state slots 0..T
        let h_prev = Mat { buf: io.states, off: 0, rs: s, cs: 1 };
        backward.extend(gemm(ctx, (g, h, rows), Mat::transposed(&da, 0, g), h_prev, None, Mat::rows(io.grads, l.offset("w_rec"), h), false)?);
        backward.extend(gpu_project_backward(ctx, l, io, rows, &da)?);
        Ok(FamilyPlan { forward, backward, persistent: shape.persistent, _scratch: vec![pre, gates, da, dc] })
    }
}
