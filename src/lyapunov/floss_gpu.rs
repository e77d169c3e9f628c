//! The gradient-flossing loss and its exact gradient on the GPU, in f32, for
//! the Elman RNN family: the same definition as the f64 CPU reference
//! [`super::floss::floss_loss_grad`], with the kernels of shaders/floss.wgsl.
//!
//! 1. States: the model's GPU forward over all T steps (one plan), h0 in slot 0.
//! 2. Forward tangent, t = 1..=Tp: `tmp = W · Q_{t−1}` (one GEMM over the
//!    N × (B·k) frame of all trajectories), `Q_t = diag(act'(h_t)) tmp`, then
//!    CGS2 QR of every trajectory's block in place, one workgroup each,
//!    keeping R_t (k × k per trajectory). All Q_0..Q_Tp and R_1..R_Tp stay
//!    in GPU memory: (Tp + 1)·N·B·k + Tp·B·k² floats.
//! 3. R is read back once; λ_{b,i} = Σ_t log R_t,ii / Tp, the loss and the
//!    coefficients c_{b,i} = 2 λ_{b,i} / (k·Tp·B) (so R̄_t,ii = c_{b,i} / R_t,ii)
//!    are formed on the host in f64, and c is written back.
//! 4. Reverse, t = Tp..1: the QR adjoint (copyltu(M) per (b, i, j), then one
//!    invocation per row solves against Rᵀ), `Z = W Q_{t−1}` (GEMM, tanh
//!    only), the tangent VJP kernel (Z̄_t = D Ā, h̄_t into `d_states` row
//!    T0 + t − 1), and `Q̄_{t−1} = Wᵀ Z̄_t` (GEMM).
//! 5. The model's GPU backward with those `d_states` (it overwrites the
//!    gradients of w_in, w_rec, b), then `W̄ += Z̄_t Q_{t−1}ᵀ` for every t
//!    (GEMMs accumulating into the w_rec gradient). Readout gradients are 0.
//!
//! Two submissions and two read-backs (R, then the gradient) per call;
//! O(Tp) short dispatches.

use super::floss::{validate_inputs, FlossOut, FlossShape};
use crate::gpu::context::{Binding, GpuContext};
use crate::gpu::ops::{self, gemm, Dispatch, Mat};
use crate::gpu::shaders;
use crate::models::{Model, ModelKind, ScanOptions, SeqIo};
use anyhow::{bail, ensure, Result};
use bytemuck::{Pod, Zeroable};
use ndarray::{Array2, ArrayView2, ArrayView3};

/// Columns of each trajectory's block one QR dispatch orthonormalises.
const QR_COLS_PER_DISPATCH: usize = 64;

/// Threads per workgroup (`WG`): the state width rounded up to a power of
/// two, 16 to 256, as for the Lyapunov kernels.
fn workgroup(ctx: &GpuContext, n: usize) -> u32 {
    let lim = &ctx.limits;
    let max = lim.max_compute_invocations_per_workgroup.min(lim.max_compute_workgroup_size_x);
    (n.next_power_of_two() as u32).clamp(16, 256).min(max)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct FlossUniform {
    n: u32,
    k: u32,
    ld: u32,
    batch: u32,
    q_off: u32,
    r_off: u32,
    h_off: u32,
    d_off: u32,
    zb_off: u32,
    ab_off: u32,
    coef_off: u32,
    m_off: u32,
    j0: u32,
    j1: u32,
    tanh_act: u32,
    _pad: u32,
}

/// GPU version of [`super::floss::floss_loss_grad`] (f32): B = `x.dim().1`
/// trajectories, k = `q0[0].ncols()` tangent vectors, Tp = T − `transient`
/// tangent steps with a QR every step; loss = mean_b (1/k) Σ_i λ_{b,i}², its
/// gradient over all parameters (readout entries 0) and the exponents λ_i
/// averaged over trajectories (column order). Elman RNN family only.
pub fn floss_loss_grad_gpu(
    ctx: &GpuContext,
    model: &Model,
    params: &[f32],
    x: ArrayView3<f32>,
    h0: ArrayView2<f32>,
    q0: &[Array2<f32>],
    transient: usize,
) -> Result<FlossOut<f32>> {
    #[allow(unreachable_patterns)]
    let tanh = match model {
        // the sigmoid SRN's tangent map runs on the CPU path only
        Model::Rnn(_) if model.kind() != ModelKind::Srn => model.kind() == ModelKind::Rnn,
        _ => bail!("GPU flossing supports the Elman RNN family (rnn, linear) only (the sigmoid srn: use --device cpu)"),
    };
    let FlossShape { n, t_len, batch, k } = validate_inputs(model, params, x, h0, q0, transient)?;
    let max_groups = ctx.limits.max_compute_workgroups_per_dimension as usize;
    ensure!(batch <= max_groups, "flossing: {batch} trajectories exceed max_compute_workgroups_per_dimension ({max_groups})");
    ensure!(
        ctx.limits.max_storage_buffers_per_shader_stage >= 7,
        "flossing needs 7 storage buffers per shader stage, this adapter allows {}",
        ctx.limits.max_storage_buffers_per_shader_stage
    );

    let tp = t_len - transient;
    let ld = batch * k;
    let frame = n * ld;
    let kk = k * k;
    let w_off = model.layout().offset("w_rec");

    // buffers
    let params_buf = ops::storage(ctx, "floss.params", params.len())?;
    ops::write_f32(ctx, &params_buf, 0, params);
    let grads = ops::storage(ctx, "floss.grads", params.len())?;
    let x_buf = ops::storage(ctx, "floss.x", t_len * batch * model.dims().input)?;
    ops::write_f32(ctx, &x_buf, 0, x.as_standard_layout().as_slice().expect("contiguous"));
    let states = ops::storage(ctx, "floss.states", (t_len + 1) * batch * n)?;
    ops::write_f32(ctx, &states, 0, h0.as_standard_layout().as_slice().expect("contiguous"));
    let d_states = ops::storage(ctx, "floss.d_states", t_len * batch * n)?;
    let qs = ops::storage(ctx, "floss.q", (tp + 1) * frame)?;
    let mut qf = vec![0f32; frame];
    for (bi, qb) in q0.iter().enumerate() {
        for i in 0..n {
            for j in 0..k {
                qf[i * ld + bi * k + j] = qb[(i, j)];
            }
        }
    }
    ops::write_f32(ctx, &qs, 0, &qf);
    let coef_off = tp * batch * kk;
    let m_off = coef_off + ld;
    let rs = ops::storage(ctx, "floss.r", m_off + batch * kk)?;
    let tmp = ops::storage(ctx, "floss.tmp", frame)?;
    let qbar = ops::storage(ctx, "floss.qbar", frame)?;
    let ab_off = tp * frame;
    let zb = ops::storage(ctx, "floss.zbar", (tp + 1) * frame)?;

    let io = SeqIo { params: &params_buf, grads: &grads, x: &x_buf, tokens: None, states: &states, d_states: &d_states };
    let plan = model.gpu_plan(ctx, t_len, batch, &io, &ScanOptions::default())?;

    let wg = workgroup(ctx, n);
    let layout = [Binding::Uniform, Binding::ReadWrite, Binding::ReadWrite, Binding::ReadWrite, Binding::ReadWrite, Binding::ReadWrite, Binding::ReadWrite, Binding::ReadWrite];
    let kern = |entry: &str| ctx.kernel(&shaders::FLOSS, entry, &[("WG", wg)], &layout);
    let (k_scale, k_qr, k_m, k_solve, k_vjp) = (kern("scale_copy")?, kern("qr")?, kern("adj_m")?, kern("adj_solve")?, kern("vjp")?);
    let base = FlossUniform {
        n: n as u32,
        k: k as u32,
        ld: ld as u32,
        batch: batch as u32,
        coef_off: coef_off as u32,
        m_off: m_off as u32,
        ab_off: ab_off as u32,
        tanh_act: tanh as u32,
        ..Default::default()
    };
    // (a bind group keeps its uniform buffer alive)
    let mk = |kernel: &std::sync::Arc<crate::gpu::context::Kernel>, u: FlossUniform, groups: (u32, u32, u32)| -> Dispatch {
        let ub = ops::uniform(ctx, &u);
        let bind = ops::bind(ctx, kernel, &[&ub, &qs, &rs, &states, &tmp, &qbar, &zb, &d_states]);
        Dispatch { kernel: kernel.clone(), bind, groups }
    };
    let g_frame = ops::grid(ctx, frame, wg as usize)?;
    let g_rows = ops::grid(ctx, n * batch, wg as usize)?;
    let g_m = ops::grid(ctx, batch * kk, wg as usize)?;

    // forward: states, then the tangent steps with QR
    let mut fwd: Vec<Dispatch> = Vec::new();
    for t in 1..=tp {
        fwd.extend(gemm(ctx, (n, ld, n), Mat::rows(&params_buf, w_off, n), Mat::rows(&qs, (t - 1) * frame, ld), None, Mat::rows(&tmp, 0, ld), false)?);
        let slot = transient + t;
        let u = FlossUniform { q_off: (t * frame) as u32, h_off: (slot * batch * n) as u32, ..base };
        fwd.push(mk(&k_scale, u, g_frame));
        for j0 in (0..k).step_by(QR_COLS_PER_DISPATCH) {
            let j1 = (j0 + QR_COLS_PER_DISPATCH).min(k);
            let u = FlossUniform { q_off: (t * frame) as u32, r_off: ((t - 1) * batch * kk) as u32, j0: j0 as u32, j1: j1 as u32, ..base };
            fwd.push(mk(&k_qr, u, (batch as u32, 1, 1)));
        }
    }
    ctx.check_errors()?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    ops::encode(ctx, &mut enc, &plan.forward);
    ops::encode(ctx, &mut enc, &fwd);
    ctx.queue.submit([enc.finish()]);
    let r = ops::read_f32(ctx, &rs, 0, coef_off)?;

    // exponents, loss and the coefficients of R̄ on the host (f64 sums)
    let mut lambda = vec![0f64; ld];
    for t in 1..=tp {
        for b in 0..batch {
            for i in 0..k {
                let d = r[(t - 1) * batch * kk + b * kk + i * k + i];
                if !(d > 0.0 && d.is_finite()) {
                    bail!(
                        "flossing: tangent vector {i} of trajectory {b} collapsed or blew up at tangent step {t} (R_ii = {d}); \
                         shorten the flossing window or lower k"
                    );
                }
                lambda[b * k + i] += (d as f64).ln();
            }
        }
    }
    lambda.iter_mut().for_each(|l| *l /= tp as f64);
    let loss = lambda.iter().map(|l| l * l).sum::<f64>() / (k * batch) as f64;
    let exponents: Vec<f32> = (0..k).map(|i| ((0..batch).map(|b| lambda[b * k + i]).sum::<f64>() / batch as f64) as f32).collect();
    let scale = 2.0 / (k * tp * batch) as f64;
    let coef: Vec<f32> = lambda.iter().map(|l| (scale * l) as f32).collect();
    ops::write_f32(ctx, &rs, coef_off, &coef);

    // reverse through the QRs and tangent maps (Q̄_Tp = 0: fresh buffer)
    let mut rev: Vec<Dispatch> = Vec::new();
    for t in (1..=tp).rev() {
        let slot = transient + t;
        let u = FlossUniform {
            q_off: (t * frame) as u32,
            r_off: ((t - 1) * batch * kk) as u32,
            h_off: (slot * batch * n) as u32,
            d_off: ((slot - 1) * batch * n) as u32,
            zb_off: ((t - 1) * frame) as u32,
            ..base
        };
        rev.push(mk(&k_m, u, g_m));
        rev.push(mk(&k_solve, u, g_rows));
        if tanh {
            rev.extend(gemm(ctx, (n, ld, n), Mat::rows(&params_buf, w_off, n), Mat::rows(&qs, (t - 1) * frame, ld), None, Mat::rows(&tmp, 0, ld), false)?);
        }
        rev.push(mk(&k_vjp, u, g_rows));
        if t > 1 {
            // Q̄_{t−1} = Wᵀ Z̄_t
            rev.extend(gemm(ctx, (n, ld, n), Mat::transposed(&params_buf, w_off, n), Mat::rows(&zb, (t - 1) * frame, ld), None, Mat::rows(&qbar, 0, ld), false)?);
        }
    }
    // the state backward overwrites the family's gradients, then W̄ += Z̄_t Q_{t−1}ᵀ
    let mut wbar: Vec<Dispatch> = Vec::new();
    for t in 1..=tp {
        wbar.extend(gemm(
            ctx,
            (n, n, ld),
            Mat::rows(&zb, (t - 1) * frame, ld),
            Mat::transposed(&qs, (t - 1) * frame, ld),
            None,
            Mat::rows(&grads, w_off, n),
            true,
        )?);
    }
    ctx.check_errors()?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    ops::encode(ctx, &mut enc, &rev);
    ops::encode(ctx, &mut enc, &plan.backward);
    ops::encode(ctx, &mut enc, &wbar);
    ctx.queue.submit([enc.finish()]);
    let g = ops::read_f32(ctx, &grads, 0, params.len())?;
    ctx.check_errors()?;
    ensure!(loss.is_finite() && g.iter().all(|v| v.is_finite()), "flossing: the loss or its gradient is not finite (loss {loss})");
    Ok(FlossOut { loss: loss as f32, grads: g, exponents })
}
