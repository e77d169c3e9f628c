//! GPU forward and backward of WARP (shaders/warp.wgsl, shaders/warp_root.wgsl):
//! B·Δ for all steps as one GEMM, then the recurrence θ_{t+1} = A θ_t + B Δ_t
//! either step-wise (one small dispatch per step adding A·θ_t) or in
//! parallel: ⌈log2(T+1)⌉ doubling stages, stage i adding A^(2^i) θ_{t−2^i}
//! to every slot at once (one GEMM over all T·B rows, ping-ponging between
//! two buffers), with the powers A^(2^i) made by squaring. Backwards the
//! reverse sweep the same two ways, then dA and dB each as one GEMM over all
//! T·B rows. The decoding runs the root MLP of every row in parallel.

use super::{Theta0, Warp};
use crate::gpu::context::{Binding, GpuContext};
use crate::gpu::ops::{self, gemm, Dispatch, Mat};
use crate::gpu::shaders;
use crate::models::{FamilyPlan, ScanMode, ScanOptions, SeqIo};
use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct WarpUniform {
    batch: u32,
    dd: u32,
    din: u32,
    t_len: u32,
    t: u32,
    act: u32,
    a_off: u32,
    n: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RootUniform {
    batch: u32,
    t_len: u32,
    width: u32,
    depth: u32,
    out_w: u32,
    dd: u32,
    scratch_w: u32,
    act: u32,
    din: u32,
    root_x: u32,
    row0: u32,
    nrows: u32,
    dx_out: u32,
    phys: u32,
    y_w: u32,
    dt: f32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ArUniform {
    batch: u32,
    c: u32,
    out_w: u32,
    t_len: u32,
    t: u32,
    n: u32,
    _p: [u32; 2],
}

/// The extra buffers of autoregressive training on the GPU: the feedback
/// flags (one per row), the outputs and their gradient.
pub struct ArIo<'a> {
    pub fb: &'a wgpu::Buffer,
    pub y: &'a wgpu::Buffer,
    pub dy: &'a wgpu::Buffer,
}

/// The decoding's dispatches: states → y, and dy → d_states (every entry).
pub struct ReadoutPlan {
    pub forward: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
    pub _scratch: Vec<wgpu::Buffer>,
}

/// Doubling stages of a linear recurrence over `slots` slots of `slot`
/// floats, starting in `main`: stage i copies the current buffer to the
/// other one, then `stage(i, current, other)` accumulates into the other;
/// the result is copied back to `main` when it ends in `pong`.
#[allow(clippy::type_complexity)]
fn doubling(
    dispatch: &dyn Fn(&str, WarpUniform, &wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer, usize) -> Result<Dispatch>,
    uni: &dyn Fn(usize, usize, usize) -> WarpUniform,
    main: &wgpu::Buffer,
    pong: &wgpu::Buffer,
    slots: usize,
    slot: usize,
    stage: &dyn Fn(usize, &wgpu::Buffer, &wgpu::Buffer) -> Result<Vec<Dispatch>>,
) -> Result<Vec<Dispatch>> {
    let n = slots * slot;
    let mut out = Vec::new();
    let (mut cur, mut other) = (main, pong);
    for i in 0..stages(slots) {
        out.push(dispatch("copy", uni(0, 0, n), cur, cur, other, n)?);
        out.extend(stage(i, cur, other)?);
        std::mem::swap(&mut cur, &mut other);
    }
    if !std::ptr::eq(cur, main) {
        out.push(dispatch("copy", uni(0, 0, n), cur, cur, main, n)?);
    }
    Ok(out)
}

/// ⌈log2 n⌉: doubling stages until a window covers n slots.
fn stages(n: usize) -> usize {
    let mut s = 0;
    while (1usize << s) < n {
        s += 1;
    }
    s
}

/// Whether the recurrence runs in doubling stages. `auto` weighs the step
/// scan's T dependent dispatches against the stages' ⌈log2(T+1)⌉ GEMMs of
/// all T·B rows (log2 T times the FLOPs) with rough figures for a hardware
/// GPU (10 µs a dispatch, 5 TFLOP/s; not measured on this project's
/// devices yet); a software adapter (lavapipe) computes too slowly for the
/// extra FLOPs to pay, so it keeps the step scan.
pub fn parallel_scan(ctx: &GpuContext, mode: ScanMode, t_len: usize, batch: usize, d: usize) -> bool {
    match mode {
        ScanMode::Parallel => true,
        ScanMode::Step | ScanMode::Persistent => false,
        ScanMode::Auto => !ctx.is_software() && parallel_pays(t_len, batch, d),
    }
}

/// The `auto` cost model of [`parallel_scan`] (forward; the backward mirrors it).
pub fn parallel_pays(t_len: usize, batch: usize, d: usize) -> bool {
    let (launch, rate) = (10e-6, 5e12);
    let (t, b, d) = (t_len as f64, batch as f64, d as f64);
    let step_flops = 2.0 * b * d * d;
    let sequential = t * (launch + step_flops / rate);
    let levels = stages(t_len + 1) as f64;
    let parallel = levels * (2.0 * launch + (t + 1.0) * step_flops / rate) + (levels - 1.0).max(0.0) * (launch + 2.0 * d * d * d / rate);
    parallel < sequential
}

impl Warp {
    pub fn gpu_plan(&self, ctx: &GpuContext, t_len: usize, batch: usize, io: &SeqIo, opts: &ScanOptions) -> Result<FamilyPlan> {
        self.gpu_plan_with(ctx, t_len, batch, io, opts, None)
    }

    /// With `ar`, the autoregressive plan: the scan and the decoding
    /// interleave step by step (each step's inputs may be the previous
    /// step's predictions), so the plan holds the decoding too, and its
    /// backward runs the decoding's backward step by step as well.
    pub fn gpu_plan_with(&self, ctx: &GpuContext, t_len: usize, batch: usize, io: &SeqIo, opts: &ScanOptions, ar: Option<&ArIo>) -> Result<FamilyPlan> {
        if ar.is_some() && self.dims.output != self.dims.input && self.dims.output != 2 * self.dims.input {
            bail!("autoregressive WARP predicts its own inputs: {} outputs for {} inputs", self.dims.output, self.dims.input);
        }
        if io.tokens.is_some() {
            bail!("WARP on the GPU takes dense inputs, not token ids");
        }
        if self.phys.is_some() && ar.is_none() {
            bail!("WARP-Phys decodes through an integration step from each row's input: it trains with --forecast-mode feedback");
        }
        let (d, din) = (self.root.size, self.dims.input);
        let rows = t_len * batch;
        let l = &self.layout;
        let (a_off, b_off) = (l.offset("A"), l.offset("B"));
        let dx = ops::storage(ctx, "warp.delta", rows * (din + 1))?;
        let g0 = ops::storage(ctx, "warp.g0", batch * d)?;
        let a_t = ops::storage(ctx, "warp.a_transposed", d * d)?;
        let hh = self.hyper_hidden;
        let z = ops::storage(ctx, "warp.hyper_z", if self.theta0 == Theta0::Hyper { batch * hh } else { 1 })?;
        let dz = ops::storage(ctx, "warp.hyper_dz", if self.theta0 == Theta0::Hyper { batch * hh } else { 1 })?;
        use Binding::{Read, ReadWrite, Uniform};
        let k = |entry: &str| ctx.kernel(&shaders::WARP, entry, &[], &[Uniform, Read, Read, ReadWrite]);
        let uni = |t: usize, a: usize, n: usize| WarpUniform {
            batch: batch as u32,
            dd: d as u32,
            din: din as u32,
            t_len: t_len as u32,
            t: t as u32,
            act: self.act.code(),
            a_off: a as u32,
            n: n as u32,
        };
        let dispatch = |entry: &str, u: WarpUniform, src: &wgpu::Buffer, src2: &wgpu::Buffer, dst: &wgpu::Buffer, items: usize| -> Result<Dispatch> {
            let kernel = k(entry)?;
            let ub = ops::uniform(ctx, &u);
            let bind = ops::bind(ctx, &kernel, &[&ub, src, src2, dst]);
            Ok(Dispatch { kernel, bind, groups: ops::grid(ctx, items, 64)? })
        };
        let x0 = Mat::rows(io.x, 0, din);
        // autoregressive: the inputs fed (data or predictions), dL/du, and g_t B
        let inputs = ops::storage(ctx, "warp.ar_inputs", if ar.is_some() { rows * din } else { 1 })?;
        let gu = ops::storage(ctx, "warp.ar_du", if ar.is_some() { rows * din } else { 1 })?;
        let gd = ops::storage(ctx, "warp.ar_gb", if ar.is_some() { batch * (din + 1) } else { 1 })?;
        let root_scratch = self.root_scratch(ctx, if ar.is_some() { rows } else { 1 })?;
        let mut keep = vec![];
        let ar_dispatch = |entry: &str, t: usize, items: usize, ar: &ArIo| -> Result<Dispatch> {
            let kernel = ctx.kernel(&shaders::WARP_AR, entry, &[], &[Uniform, Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite])?;
            let u = ArUniform { batch: batch as u32, c: din as u32, out_w: self.dims.output as u32, t_len: t_len as u32, t: t as u32, n: items as u32, _p: [0; 2] };
            let ub = ops::uniform(ctx, &u);
            let bind = ops::bind(ctx, &kernel, &[&ub, io.x, ar.fb, ar.y, &gd, &inputs, &dx, &gu, ar.dy]);
            Ok(Dispatch { kernel, bind, groups: ops::grid(ctx, items, 64)? })
        };
        // the autoregressive scan is step by step by nature
        let parallel = ar.is_none() && parallel_scan(ctx, opts.mode, t_len, batch, d);
        // the doubling stages need A^(2^i) up to the larger of the forward's
        // ⌈log2(T+1)⌉ and the backward's ⌈log2 T⌉ stages: i = 1.. kept here
        let levels = if parallel { stages(t_len + 1) } else { 0 };
        let powers = (1..levels).map(|_| ops::storage(ctx, "warp.a_power", d * d)).collect::<Result<Vec<_>>>()?;
        let pong = ops::storage(ctx, "warp.scan_pong", if parallel { (t_len + 1) * batch * d } else { 1 })?;
        // A^(2^i) as the right factor of a row: transposed for θ A^kᵀ (forward), as is for g A^k (backward)
        let power = |i: usize, transposed: bool| -> Mat {
            let (buf, off) = if i == 0 { (io.params, a_off) } else { (&powers[i - 1], 0) };
            if transposed {
                Mat::transposed(buf, off, d)
            } else {
                Mat::rows(buf, off, d)
            }
        };
        let mut forward = Vec::new();
        if t_len > 0 {
            // θ_0 into slot 0
            match self.theta0 {
                Theta0::Learned => forward.push(dispatch("theta0_broadcast", uni(0, l.offset("theta0"), 0), io.params, io.params, io.states, batch * d)?),
                Theta0::Hyper => {
                    let (w1, w2) = (l.offset("hyper_w1"), l.offset("hyper_w2"));
                    forward.extend(gemm(ctx, (batch, hh, din), x0, Mat::transposed(io.params, w1, din), Some(l.offset("hyper_b1")), Mat::rows(&z, 0, hh), false)?);
                    forward.push(dispatch("act_forward", uni(0, 0, batch * hh), io.params, io.params, &z, batch * hh)?);
                    forward.extend(gemm(ctx, (batch, d, hh), Mat::rows(&z, 0, hh), Mat::transposed(io.params, w2, hh), Some(l.offset("hyper_b2")), Mat::rows(io.states, 0, d), false)?);
                }
            }
            if ar.is_none() {
                forward.push(dispatch("delta", uni(0, 0, 0), io.x, io.x, &dx, rows * (din + 1))?);
                // slots 1..=T = Δ · Bᵀ, then each step adds A θ_t
                forward.extend(gemm(ctx, (rows, d, din + 1), Mat::rows(&dx, 0, din + 1), Mat::transposed(io.params, b_off, din + 1), None, Mat::rows(io.states, batch * d, d), false)?);
            }
            if !parallel {
                // both step scans read Aᵀ
                forward.push(dispatch("transpose", uni(0, a_off, 0), io.params, io.params, &a_t, d * d)?);
            }
            if let Some(ar) = ar {
                for t in 0..t_len {
                    // u_t and Δ_t, slot t+1 = Δ_t Bᵀ + A θ_t, then this step's outputs
                    forward.push(ar_dispatch("ar_input", t, batch * (din + 1), ar)?);
                    forward.extend(gemm(ctx, (batch, d, din + 1), Mat::rows(&dx, t * batch * (din + 1), din + 1), Mat::transposed(io.params, b_off, din + 1), None, Mat::rows(io.states, (t + 1) * batch * d, d), false)?);
                    forward.push(dispatch("scan_step", uni(t, 0, 0), &a_t, &a_t, io.states, batch * d)?);
                    let (dec, ub) = self.root_dispatch(ctx, t_len, batch, &inputs, io.states, ar.y, ar.dy, io.d_states, &root_scratch, &gu, false, t * batch, batch, false)?;
                    forward.push(dec);
                    keep.push(ub);
                }
            } else if parallel {
                // powers[i-1] = A^(2^i) by squaring (A itself is read from the parameters)
                for (i, pw) in powers.iter().enumerate() {
                    let sq = if i == 0 { Mat::rows(io.params, a_off, d) } else { Mat::rows(&powers[i - 1], 0, d) };
                    forward.extend(gemm(ctx, (d, d, d), sq, sq, None, Mat::rows(pw, 0, d), false)?);
                }
                // stage i: slot t += A^k slot (t − k), k = 2^i, for all t ≥ k at once
                forward.extend(doubling(&dispatch, &uni, io.states, &pong, t_len + 1, batch * d, &|i, src, dst| {
                    let k = 1 << i;
                    gemm(ctx, ((t_len + 1 - k) * batch, d, d), Mat::rows(src, 0, d), power(i, true), None, Mat::rows(dst, k * batch * d, d), true)
                })?);
            } else {
                for t in 0..t_len {
                    forward.push(dispatch("scan_step", uni(t, 0, 0), &a_t, &a_t, io.states, batch * d)?);
                }
            }
        }

        let mut backward = Vec::new();
        if let (true, Some(ar)) = (t_len > 0, ar) {
            backward.push(ar_dispatch("ar_zero", 0, rows * din, ar)?);
            for t in (0..t_len).rev() {
                // dL/dŷ_t gets what its use as u_{t+1} passed back; then
                // slot t = this step's decoding gradient + slot (t+1) · A
                backward.push(ar_dispatch("ar_dy", t, batch * din, ar)?);
                let (dec, ub) = self.root_dispatch(ctx, t_len, batch, &inputs, io.states, ar.y, ar.dy, io.d_states, &root_scratch, &gu, true, t * batch, batch, true)?;
                backward.push(dec);
                keep.push(ub);
                if t + 1 < t_len {
                    backward.push(dispatch("scan_back", uni(t + 1, a_off, 0), io.params, io.params, io.d_states, batch * d)?);
                }
                if t > 0 {
                    // through Δ_t = u_t − u_{t-1}: g_t B
                    backward.extend(gemm(ctx, (batch, din + 1, d), Mat::rows(io.d_states, t * batch * d, d), Mat::rows(io.params, b_off, din + 1), None, Mat::rows(&gd, 0, din + 1), false)?);
                    backward.push(ar_dispatch("ar_gu", t, batch * din, ar)?);
                }
            }
        }
        if t_len > 0 && ar.is_none() {
            if parallel {
                // stage i: slot t += slot (t + k) · A^k, k = 2^i, for all t + k < T at once
                backward.extend(doubling(&dispatch, &uni, io.d_states, &pong, t_len, batch * d, &|i, src, dst| {
                    let k = 1 << i;
                    gemm(ctx, ((t_len - k) * batch, d, d), Mat::rows(src, k * batch * d, d), power(i, false), None, Mat::rows(dst, 0, d), true)
                })?);
            } else {
                for t in (1..t_len).rev() {
                    backward.push(dispatch("scan_back", uni(t, a_off, 0), io.params, io.params, io.d_states, batch * d)?);
                }
            }
        }
        if t_len > 0 {
            // d_states slot t now holds dL/dθ_{t+1} in full: dA = Σ g_tᵀ θ_t, dB = Σ g_tᵀ Δ_t
            let g_t = Mat { buf: io.d_states, off: 0, rs: 1, cs: d };
            backward.extend(gemm(ctx, (d, d, rows), g_t, Mat::rows(io.states, 0, d), None, Mat::rows(io.grads, a_off, d), false)?);
            backward.extend(gemm(ctx, (d, din + 1, rows), g_t, Mat::rows(&dx, 0, din + 1), None, Mat::rows(io.grads, b_off, din + 1), false)?);
            // dL/dθ_0 = g_0 A
            backward.extend(gemm(ctx, (batch, d, d), Mat::rows(io.d_states, 0, d), Mat::rows(io.params, a_off, d), None, Mat::rows(&g0, 0, d), false)?);
            match self.theta0 {
                Theta0::Learned => backward.push(ops::colsum(ctx, &g0, 0, batch, d, io.grads, l.offset("theta0"))?),
                Theta0::Hyper => {
                    let (w1, w2) = (l.offset("hyper_w1"), l.offset("hyper_w2"));
                    let g0_t = Mat { buf: &g0, off: 0, rs: 1, cs: d };
                    backward.extend(gemm(ctx, (d, hh, batch), g0_t, Mat::rows(&z, 0, hh), None, Mat::rows(io.grads, w2, hh), false)?);
                    backward.push(ops::colsum(ctx, &g0, 0, batch, d, io.grads, l.offset("hyper_b2"))?);
                    backward.extend(gemm(ctx, (batch, hh, d), Mat::rows(&g0, 0, d), Mat::rows(io.params, w2, hh), None, Mat::rows(&dz, 0, hh), false)?);
                    backward.push(dispatch("act_backward", uni(0, 0, batch * hh), &z, &z, &dz, batch * hh)?);
                    let dz_t = Mat { buf: &dz, off: 0, rs: 1, cs: hh };
                    backward.extend(gemm(ctx, (hh, din, batch), dz_t, x0, None, Mat::rows(io.grads, w1, din), false)?);
                    backward.push(ops::colsum(ctx, &dz, 0, batch, hh, io.grads, l.offset("hyper_b1"))?);
                }
            }
        }
        let mut scratch = vec![dx, g0, z, dz, a_t, pong, inputs, gu, gd, root_scratch];
        scratch.extend(keep);
        scratch.extend(powers);
        Ok(FamilyPlan { forward, backward, persistent: false, _scratch: scratch })
    }

    /// The decoding on the GPU: `y` (T·B, O) from the states, and `d_states`
    /// (T, B, D) from `dy`.
    #[allow(clippy::too_many_arguments)]
    pub fn gpu_readout(&self, ctx: &GpuContext, t_len: usize, batch: usize, x: &wgpu::Buffer, states: &wgpu::Buffer, y: &wgpu::Buffer, dy: &wgpu::Buffer, d_states: &wgpu::Buffer) -> Result<ReadoutPlan> {
        let rows = t_len * batch;
        let scratch = self.root_scratch(ctx, rows)?;
        // nothing takes dL/dx here: a one-float stand-in for the binding
        let no_dx = ops::storage(ctx, "warp.no_dx", 1)?;
        let (forward, ub) = self.root_dispatch(ctx, t_len, batch, x, states, y, dy, d_states, &scratch, &no_dx, false, 0, rows, false)?;
        let (backward, ub2) = self.root_dispatch(ctx, t_len, batch, x, states, y, dy, d_states, &scratch, &no_dx, false, 0, rows, true)?;
        Ok(ReadoutPlan { forward: vec![forward], backward: vec![backward], _scratch: vec![scratch, no_dx, ub, ub2] })
    }

    /// Scratch rows of the root network (activations, and backwards dz/da)
    /// for `rows` rows, indexed by row.
    fn root_scratch(&self, ctx: &GpuContext, rows: usize) -> Result<wgpu::Buffer> {
        ops::storage(ctx, "warp.root_scratch", rows.max(1) * self.root_scratch_width())
    }

    /// The root's output width: the model's outputs, or WARP-Phys's raw parameters.
    fn root_out(&self) -> usize {
        self.root.layers.last().expect("a layer").out
    }

    fn root_scratch_width(&self) -> usize {
        let (w, o) = (self.dims.hidden, self.root_out());
        // dz/da of layer 0 are 1 + d wide when the root reads x
        let in0 = 1 + if self.root_x { self.dims.input } else { 0 };
        self.depth * w + 2 * w.max(o).max(in0)
    }

    /// The root network of rows `row0 .. row0 + nrows`: outputs into `y`, or
    /// (`backward`) every entry of their `d_states` rows from `dy`. `x` is
    /// what the root reads besides τ (with `root_x`); `dx`, where the
    /// backward adds dL/dx when `write_dx` (autoregressive, with `root_x` or
    /// WARP-Phys: the fed inputs' gradient). Also its uniform, to keep.
    #[allow(clippy::too_many_arguments)]
    fn root_dispatch(
        &self,
        ctx: &GpuContext,
        t_len: usize,
        batch: usize,
        x: &wgpu::Buffer,
        states: &wgpu::Buffer,
        y: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        d_states: &wgpu::Buffer,
        scratch: &wgpu::Buffer,
        dx: &wgpu::Buffer,
        write_dx: bool,
        row0: usize,
        nrows: usize,
        backward: bool,
    ) -> Result<(Dispatch, wgpu::Buffer)> {
        let (w, depth, o) = (self.dims.hidden, self.depth, self.root_out());
        let scratch_w = self.root_scratch_width();
        use Binding::{Read, ReadWrite, Uniform};
        let bindings = [Uniform, Read, Read, ReadWrite, ReadWrite, Read, ReadWrite];
        let u = RootUniform {
            batch: batch as u32,
            t_len: t_len as u32,
            width: w as u32,
            depth: depth as u32,
            out_w: o as u32,
            dd: self.root.size as u32,
            scratch_w: scratch_w as u32,
            act: self.act.code(),
            din: self.dims.input as u32,
            root_x: self.root_x as u32,
            row0: row0 as u32,
            nrows: nrows as u32,
            dx_out: (backward && (self.root_x || self.phys.is_some()) && write_dx) as u32,
            phys: match self.phys {
                None => 0,
                Some(crate::tasks::dynamics::System::Msd) => 1,
                Some(crate::tasks::dynamics::System::Lotka) => 2,
            },
            y_w: self.dims.output as u32,
            dt: crate::tasks::dynamics::DT as f32,
        };
        let ub = ops::uniform(ctx, &u);
        let groups = ops::grid(ctx, nrows, 64)?;
        let (entry, second, out) = if backward { ("decode_backward", dy, d_states) } else { ("decode", states, y) };
        let k = ctx.kernel(&shaders::WARP_ROOT, entry, &[], &bindings)?;
        let bind = ops::bind(ctx, &k, &[&ub, states, second, out, scratch, x, dx]);
        Ok((Dispatch { kernel: k, bind, groups }, ub))
    }
}

#[cfg(test)]
mod tests {
    use super::{parallel_pays, stages};

    #[test]
    fn stage_counts_cover_the_slots() {
        assert_eq!([1, 2, 3, 4, 5, 8, 9].map(stages), [0, 1, 2, 2, 3, 3, 4]);
    }

    /// Long sequences of a small state are launch-bound: the stages pay.
    /// A few steps of a big state and batch are FLOP-bound: they do not.
    #[test]
    fn auto_takes_the_parallel_scan_only_where_launches_dominate() {
        assert!(parallel_pays(1000, 8, 150));
        assert!(!parallel_pays(4, 256, 2000));
        assert!(!parallel_pays(1, 1, 16));
    }
}
