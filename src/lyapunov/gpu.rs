//! The Lyapunov spectrum on the GPU, in f32, for the Elman RNN family: the
//! same trajectory, schedule and estimator as the f64 CPU reference
//! (`cpu.rs`), with the kernels of shaders/lyapunov.wgsl.
//!
//! - States: the model's own GPU forward (`Model::gpu_plan`, forward
//!   dispatches only), `CHUNK` steps at a time with the inputs of
//!   `Drive::chunk`; the last state is carried to slot 0 for the next chunk.
//! - Tangent vectors of all B trajectories: one row-major N × (B·k) matrix,
//!   trajectory b's block in columns b·k .. b·k + k, so `W · Q` for every
//!   trajectory is one GEMM; a small kernel then scales row i of block b by
//!   act'(h_t[b, i]) (skipped for the linear RNN, whose act' is 1). Two Q
//!   buffers ping-pong.
//! - Every `reortho` tangent steps, CGS2 QR in place (one workgroup per
//!   trajectory, columns in ranges of `QR_COLS_PER_DISPATCH`), adding
//!   log R_jj into an f32 accumulator of B·k values in the accumulated window.
//! - Read-back: the accumulator is read, added into f64 sums on the host and
//!   zeroed at most `MAX_READS` times over the accumulated window (evenly,
//!   the last at its end). So each f32 partial sum holds at most
//!   ⌈steps / reortho / MAX_READS⌉ terms, and `running_lambda1` has one
//!   point per read, computed as on the CPU (sparser than the CPU's).

use super::{Drive, LyapInput, LyapunovConfig, Spectrum, CHUNK};
use crate::gpu::context::{Binding, GpuContext};
use crate::gpu::ops::{self, gemm, Dispatch, Mat};
use crate::gpu::shaders;
use crate::models::{FamilyPlan, Model, ModelKind, ScanOptions, SeqIo};
use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

/// Columns of each trajectory's block one QR dispatch orthonormalises.
pub const QR_COLS_PER_DISPATCH: usize = 64;
/// Most read-backs of the accumulator (and points of `running_lambda1`).
pub const MAX_READS: usize = 50;
/// Threads per workgroup of both kernels (`WG` in the shader): the state
/// width rounded up to a power of two, 16 to 256. Small blocks get small
/// workgroups, which matters on CPU adapters where every barrier costs a
/// switch per group of invocations.
fn workgroup(ctx: &GpuContext, n: usize) -> u32 {
    let lim = &ctx.limits;
    let max = lim.max_compute_invocations_per_workgroup.min(lim.max_compute_workgroup_size_x);
    (n.next_power_of_two() as u32).clamp(16, 256).min(max)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LyapUniform {
    n: u32,
    k: u32,
    ld: u32,
    batch: u32,
    slot: u32,
    j0: u32,
    j1: u32,
    accumulate: u32,
}

/// CGS2 QR of `batch` blocks of `n × k` held in `q` as one row-major
/// `n × (batch·k)` matrix (block b in columns b·k .. b·k + k), in place:
/// Q's columns become orthonormal with R_jj > 0. With `accumulate`,
/// `acc[b·k + j] += ln R_jj` (`acc` holds batch·k f32). The columns run in
/// ranges of `QR_COLS_PER_DISPATCH`, one dispatch each, in order.
pub fn qr_dispatches(
    ctx: &GpuContext,
    q: &wgpu::Buffer,
    acc: &wgpu::Buffer,
    n: usize,
    k: usize,
    batch: usize,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    if n == 0 || k == 0 || k > n || batch == 0 {
        bail!("QR of {batch} blocks of {n} × {k}: need 1 ≤ k ≤ n and at least one block");
    }
    let max_groups = ctx.limits.max_compute_workgroups_per_dimension as usize;
    if batch > max_groups {
        bail!("{batch} trajectories exceed max_compute_workgroups_per_dimension ({max_groups})");
    }
    let kernel = ctx.kernel(&shaders::LYAPUNOV, "qr", &[("WG", workgroup(ctx, n))], &[Binding::Uniform, Binding::ReadWrite, Binding::ReadWrite])?;
    let mut out = Vec::new();
    for j0 in (0..k).step_by(QR_COLS_PER_DISPATCH) {
        let j1 = (j0 + QR_COLS_PER_DISPATCH).min(k);
        let u = LyapUniform {
            n: n as u32,
            k: k as u32,
            ld: (batch * k) as u32,
            batch: batch as u32,
            slot: 0,
            j0: j0 as u32,
            j1: j1 as u32,
            accumulate: accumulate as u32,
        };
        let ub = ops::uniform(ctx, &u);
        let bind = ops::bind(ctx, &kernel, &[&ub, q, acc]);
        out.push(Dispatch { kernel: kernel.clone(), bind, groups: (batch as u32, 1, 1) });
    }
    Ok(out)
}

/// Lyapunov spectrum of `model` with parameters `params` along the driven
/// trajectories, on the GPU in f32 (sums returned in f64). Same estimator
/// and schedule as `cpu::spectrum`; no `mean_log_det`.
pub fn spectrum(ctx: &GpuContext, model: &Model, params: &[f32], drive: &Drive, cfg: &LyapunovConfig) -> Result<Spectrum> {
    super::check_model(model, cfg)?;
    #[allow(unreachable_patterns)]
    let tanh = match model {
        // the sigmoid SRN's tangent map runs on the CPU path only
        Model::Rnn(_) if model.kind() != ModelKind::Srn => model.kind() == ModelKind::Rnn,
        _ => bail!("the GPU Lyapunov spectrum supports the Elman RNN family (rnn, linear) only (the sigmoid srn: use --device cpu)"),
    };
    let dims = model.dims();
    let n = model.state_width();
    if params.len() != model.layout().len() {
        bail!("{} parameters given, the model has {}", params.len(), model.layout().len());
    }
    if drive.input_width != dims.input {
        bail!("the drive makes inputs of width {}, the model takes {}", drive.input_width, dims.input);
    }
    if drive.cfg.trajectories != cfg.trajectories || drive.cfg.k != cfg.k {
        bail!("the drive was made for other settings (trajectories, k) than the spectrum's");
    }
    if cfg.input == LyapInput::Task && drive.task.is_none() {
        bail!("input 'task' needs a task");
    }
    let b = cfg.trajectories;
    let k = cfg.k;
    let ld = b * k;
    let total = cfg.total_steps();
    let start_tangent = cfg.transient;
    let start_accum = cfg.transient + cfg.tangent_transient;
    let chunk_len = CHUNK.min(total);

    // buffers: the model's sequence I/O for one chunk, tangents, accumulator
    let params_buf = ops::storage(ctx, "lyap.params", params.len())?;
    ops::write_f32(ctx, &params_buf, 0, params);
    let grads = ops::storage(ctx, "lyap.grads", params.len())?;
    let x = ops::storage(ctx, "lyap.x", chunk_len * b * dims.input)?;
    let states = ops::storage(ctx, "lyap.states", (chunk_len + 1) * b * n)?;
    let d_states = ops::storage(ctx, "lyap.d_states", chunk_len * b * n)?;
    let carry = ops::storage(ctx, "lyap.carry", b * n)?;
    let qbufs = [ops::storage(ctx, "lyap.q0", n * ld)?, ops::storage(ctx, "lyap.q1", n * ld)?];
    let acc = ops::storage(ctx, "lyap.acc", ld)?;

    let h0 = drive.h0(n);
    ops::write_f32(ctx, &states, 0, h0.as_standard_layout().as_slice().expect("contiguous"));
    let q0 = drive.q0(n);
    let mut qf = vec![0f32; n * ld];
    for (bi, qb) in q0.iter().enumerate() {
        for i in 0..n {
            for j in 0..k {
                qf[i * ld + bi * k + j] = qb[(i, j)] as f32;
            }
        }
    }
    ops::write_f32(ctx, &qbufs[0], 0, &qf);

    // the model's forward for a full chunk and, if different, the last one
    let io = SeqIo { params: &params_buf, grads: &grads, x: &x, tokens: None, states: &states, d_states: &d_states };
    let opts = ScanOptions::default();
    let full_plan = model.gpu_plan(ctx, chunk_len, b, &io, &opts)?;
    let last_len = total - (total - 1) / CHUNK * CHUNK;
    let last_plan: Option<FamilyPlan> = if last_len != chunk_len { Some(model.gpu_plan(ctx, last_len, b, &io, &opts)?) } else { None };

    // tangent step: Q[1-p] = W · Q[p] (one GEMM for all trajectories) ...
    let w_off = model.layout().offset("w_rec");
    let mut gemms = Vec::new();
    for p in 0..2 {
        gemms.push(gemm(ctx, (n, ld, n), Mat::rows(&params_buf, w_off, n), Mat::rows(&qbufs[p], 0, ld), None, Mat::rows(&qbufs[1 - p], 0, ld), false)?);
    }
    // ... then rows scaled by act'(h_t) from states slot s + 1 (tanh only):
    // scales[p][s] scales Q[p] at step s of a chunk
    let mut scales: [Vec<Dispatch>; 2] = [Vec::new(), Vec::new()];
    if tanh {
        let wg = workgroup(ctx, n);
        let kernel = ctx.kernel(&shaders::LYAPUNOV, "scale", &[("WG", wg)], &[Binding::Uniform, Binding::ReadWrite, Binding::ReadWrite, Binding::Read])?;
        let groups = ops::grid(ctx, n * ld, wg as usize)?;
        for slot in 1..=chunk_len {
            let u = LyapUniform { n: n as u32, k: k as u32, ld: ld as u32, batch: b as u32, slot: slot as u32, j0: 0, j1: 0, accumulate: 0 };
            let ub = ops::uniform(ctx, &u);
            for (p, v) in scales.iter_mut().enumerate() {
                let bind = ops::bind(ctx, &kernel, &[&ub, &qbufs[p], &acc, &states]);
                v.push(Dispatch { kernel: kernel.clone(), bind, groups });
            }
        }
    }
    // QR of Q[p], without / with accumulation
    let mut qrs = Vec::new();
    for qb in &qbufs {
        qrs.push([qr_dispatches(ctx, qb, &acc, n, k, b, false)?, qr_dispatches(ctx, qb, &acc, n, k, b, true)?]);
    }
    ctx.check_errors()?;

    let events_total = cfg.steps / cfg.reortho;
    let every = events_total.div_ceil(MAX_READS).max(1);
    let mut events = 0;
    let mut sums = vec![vec![0f64; k]; b];
    let mut running = Vec::new();
    let zeros = vec![0f32; ld];
    let mut cur = 0;
    let mut t = 0;
    let mut c = 0;
    while t < total {
        let len = CHUNK.min(total - t);
        let plan = if len == chunk_len { &full_plan } else { last_plan.as_ref().expect("plan for the last chunk") };
        let xc = drive.chunk(c, len);
        ops::write_f32(ctx, &x, 0, xc.as_standard_layout().as_slice().expect("contiguous"));
        let mut rec: Vec<&Dispatch> = plan.forward.iter().collect();
        for s in 0..len {
            if t >= start_tangent {
                rec.extend(gemms[cur].iter());
                cur = 1 - cur;
                // act'(h_t) from slot s + 1 (no scaling for the linear family)
                if let Some(d) = scales[cur].get(s) {
                    rec.push(d);
                }
                if (t + 1 - start_tangent).is_multiple_of(cfg.reortho) {
                    let accumulate = t >= start_accum;
                    rec.extend(qrs[cur][accumulate as usize].iter());
                    if accumulate {
                        events += 1;
                        if events % every == 0 || events == events_total {
                            submit(ctx, &rec, None);
                            rec.clear();
                            let part = ops::read_f32(ctx, &acc, 0, ld)?;
                            ops::write_f32(ctx, &acc, 0, &zeros);
                            for (bi, sb) in sums.iter_mut().enumerate() {
                                for (j, v) in sb.iter_mut().enumerate() {
                                    *v += part[bi * k + j] as f64;
                                }
                            }
                            let done = t + 1 - start_accum;
                            let l1 = sums.iter().map(|s| s.iter().cloned().fold(f64::NEG_INFINITY, f64::max)).sum::<f64>() / (b as f64 * done as f64);
                            running.push((done, l1));
                        }
                    }
                }
            }
            t += 1;
        }
        // carry the last state to slot 0 (a buffer cannot copy onto itself)
        let bytes = (b * n * 4) as u64;
        submit(ctx, &rec, Some([(&states, (len * b * n * 4) as u64, &carry, 0, bytes), (&carry, 0, &states, 0, bytes)]));
        c += 1;
    }
    ctx.check_errors()?;
    if sums.iter().flatten().any(|v| v.is_nan()) {
        bail!("the tangent vectors overflowed f32 between re-orthonormalisations; lower --reortho");
    }
    Ok(Spectrum::from_sums(&sums, cfg.steps, running, None))
}

type BufCopy<'a> = (&'a wgpu::Buffer, u64, &'a wgpu::Buffer, u64, u64);

/// Record `ds` in one compute pass, then the buffer copies, and submit.
fn submit(ctx: &GpuContext, ds: &[&Dispatch], copies: Option<[BufCopy; 2]>) {
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    if !ds.is_empty() {
        let stamps = ctx.timestamp_writes();
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("lyapunov"), timestamp_writes: crate::gpu::timer::pass_writes(&stamps) });
        for d in ds {
            pass.set_pipeline(&d.kernel.pipeline);
            pass.set_bind_group(0, &d.bind, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
        }
    }
    for (src, src_off, dst, dst_off, bytes) in copies.into_iter().flatten() {
        enc.copy_buffer_to_buffer(src, src_off, dst, dst_off, bytes);
    }
    ctx.queue.submit([enc.finish()]);
}
