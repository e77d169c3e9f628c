//! The input projection every family starts with: `pre = w_in x_t + b` for
//! all T·B rows at once, with `w_in` of shape (G, I) where G is the family's
//! gate width. Inputs are dense vectors or token ids; a token id `v` stands
//! for the one-hot vector e_v, so its projection is column v of `w_in` (an
//! embedding lookup) and its gradient a scatter-add into that column.

use crate::params::ParamLayout;
use crate::real::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayView3, ArrayViewMut2, Axis};

/// A sequence's inputs, time-major (row `r = t·B + b`).
#[derive(Clone, Copy, Debug)]
pub enum SeqInput<'a, F> {
    /// `(T, B, I)` dense inputs
    Dense(ArrayView3<'a, F>),
    /// `T·B` token ids, each below the input width I
    Tokens { ids: &'a [u32], t_len: usize, batch: usize },
}

impl<'a, F> From<ArrayView3<'a, F>> for SeqInput<'a, F> {
    fn from(x: ArrayView3<'a, F>) -> Self {
        SeqInput::Dense(x)
    }
}

impl<'a, F: Clone> SeqInput<'a, F> {
    pub fn t_len(&self) -> usize {
        match self {
            SeqInput::Dense(x) => x.dim().0,
            SeqInput::Tokens { t_len, .. } => *t_len,
        }
    }
    pub fn batch(&self) -> usize {
        match self {
            SeqInput::Dense(x) => x.dim().1,
            SeqInput::Tokens { batch, .. } => *batch,
        }
    }
    /// Rows `t0..t0 + len` of the sequence.
    pub fn steps(&self, t0: usize, len: usize) -> SeqInput<'a, F> {
        match *self {
            SeqInput::Dense(x) => SeqInput::Dense(x.slice_move(ndarray::s![t0..t0 + len, .., ..])),
            SeqInput::Tokens { ids, batch, .. } => {
                SeqInput::Tokens { ids: &ids[t0 * batch..(t0 + len) * batch], t_len: len, batch }
            }
        }
    }
}

/// Writes `w_in x + b` for every row into `out` (rows, G).
pub fn project_into<F: Real>(p: &[F], layout: &ParamLayout, input: &SeqInput<F>, mut out: ArrayViewMut2<F>) {
    let w = layout.get("w_in").expect("every family has w_in");
    let (g, i_w) = (w.shape[0], w.shape[1]);
    let w_in = ArrayView2::from_shape((g, i_w), &p[w.range()]).expect("w_in shape");
    match input {
        SeqInput::Dense(x) => {
            let rows = x.dim().0 * x.dim().1;
            let x2 = x.to_shape((rows, i_w)).expect("contiguous inputs");
            general_mat_mul(F::one(), &x2, &w_in.t(), F::zero(), &mut out);
        }
        SeqInput::Tokens { ids, .. } => {
            for (mut row, &id) in out.rows_mut().into_iter().zip(ids.iter()) {
                row.assign(&w_in.column(id as usize));
            }
        }
    }
    if let Ok(b) = layout.get("b") {
        let b = &p[b.range()];
        for mut row in out.rows_mut() {
            for (a, &c) in row.iter_mut().zip(b) {
                *a = *a + c;
            }
        }
    }
}

/// `w_in x + b` as a new (rows, G) array.
pub fn project<F: Real>(p: &[F], layout: &ParamLayout, input: &SeqInput<F>) -> Array2<F> {
    let g = layout.get("w_in").expect("every family has w_in").shape[0];
    let mut out = Array2::zeros((input.t_len() * input.batch(), g));
    project_into(p, layout, input, out.view_mut());
    out
}

/// Adds dL/dw_in and dL/db from dL/dpre (rows, G) into `grads`.
pub fn project_backward<F: Real>(layout: &ParamLayout, input: &SeqInput<F>, d_pre: ArrayView2<F>, grads: &mut [F]) {
    let w = layout.get("w_in").expect("every family has w_in");
    let (g, i_w) = (w.shape[0], w.shape[1]);
    let o = w.offset;
    match input {
        SeqInput::Dense(x) => {
            let rows = x.dim().0 * x.dim().1;
            let x2 = x.to_shape((rows, i_w)).expect("contiguous inputs");
            let dw = d_pre.t().dot(&x2);
            for (gr, v) in grads[o..o + g * i_w].iter_mut().zip(dw.iter()) {
                *gr = *gr + *v;
            }
        }
        SeqInput::Tokens { ids, .. } => {
            for (row, &id) in d_pre.rows().into_iter().zip(ids.iter()) {
                for (k, &v) in row.iter().enumerate() {
                    let gi = o + k * i_w + id as usize;
                    grads[gi] = grads[gi] + v;
                }
            }
        }
    }
    if let Ok(b) = layout.get("b") {
        let db = d_pre.sum_axis(Axis(0));
        for (gr, v) in grads[b.range()].iter_mut().zip(db.iter()) {
            *gr = *gr + *v;
        }
    }
}

/// The first token id at or over the input width, if any.
pub fn check_tokens(ids: &[u32], width: usize) -> anyhow::Result<()> {
    if let Some(&bad) = ids.iter().find(|&&v| v as usize >= width) {
        anyhow::bail!("token id {bad} is outside the model's vocabulary of {width}");
    }
    Ok(())
}

// ------------------------------------------------------------ GPU side

use crate::gpu::ops::{self, Dispatch, Mat};
use crate::gpu::GpuContext;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EmbedUniform {
    rows: u32,
    g: u32,
    vocab: u32,
    w_off: u32,
    b_off: u32,
    has_bias: u32,
    _p: [u32; 2],
}

fn embed_uniform(layout: &ParamLayout, rows: usize) -> anyhow::Result<EmbedUniform> {
    let w = layout.get("w_in")?;
    let b = layout.get("b").ok();
    Ok(EmbedUniform {
        rows: rows as u32,
        g: w.shape[0] as u32,
        vocab: w.shape[1] as u32,
        w_off: w.offset as u32,
        b_off: b.map_or(0, |v| v.offset as u32),
        has_bias: b.is_some() as u32,
        _p: [0; 2],
    })
}

/// The CSR lists the token-gradient kernel reads: `[n_unique, tokens
/// (rows), starts (rows + 1), row order (rows)]`, padded to `3·rows + 2`.
pub fn token_csr(ids: &[u32]) -> Vec<u32> {
    let rows = ids.len();
    let mut order: Vec<u32> = (0..rows as u32).collect();
    order.sort_by_key(|&r| (ids[r as usize], r));
    let mut tokens = Vec::new();
    let mut starts = Vec::new();
    for (j, &r) in order.iter().enumerate() {
        let t = ids[r as usize];
        if tokens.last() != Some(&t) {
            tokens.push(t);
            starts.push(j as u32);
        }
    }
    starts.push(rows as u32);
    let n = tokens.len();
    let mut out = vec![0u32; 3 * rows + 2];
    out[0] = n as u32;
    out[1..1 + n].copy_from_slice(&tokens);
    out[1 + rows..1 + rows + n + 1].copy_from_slice(&starts);
    out[2 + 2 * rows..].copy_from_slice(&order);
    out
}

/// Dispatches writing `pre` (rows, G) = x w_inᵀ + b, or the columns of w_in
/// for token inputs (`io.x` then holds the ids).
pub fn gpu_project(ctx: &GpuContext, layout: &ParamLayout, io: &super::SeqIo, rows: usize, pre: &wgpu::Buffer) -> anyhow::Result<Vec<Dispatch>> {
    let w = layout.get("w_in")?;
    let (g, i_w) = (w.shape[0], w.shape[1]);
    if io.tokens.is_some() {
        use crate::gpu::context::Binding::{Read, ReadWrite, Uniform};
        let k = ctx.kernel(&crate::gpu::shaders::EMBED, "gather", &[], &[Uniform, Read, Read, ReadWrite])?;
        let ub = ops::uniform(ctx, &embed_uniform(layout, rows)?);
        let bind = ops::bind(ctx, &k, &[&ub, io.params, io.x, pre]);
        return Ok(vec![Dispatch { kernel: k, bind, groups: ops::grid(ctx, rows * g, 64)? }]);
    }
    ops::gemm(
        ctx,
        (rows, g, i_w),
        Mat::rows(io.x, 0, i_w),
        Mat::transposed(io.params, w.offset, i_w),
        layout.get("b").ok().map(|v| v.offset),
        Mat::rows(pre, 0, g),
        false,
    )
}

/// Dispatches writing dL/dw_in and dL/db (overwriting) from `d_pre` (rows, G).
pub fn gpu_project_backward(
    ctx: &GpuContext,
    layout: &ParamLayout,
    io: &super::SeqIo,
    rows: usize,
    d_pre: &wgpu::Buffer,
) -> anyhow::Result<Vec<Dispatch>> {
    let w = layout.get("w_in")?;
    let (g, i_w) = (w.shape[0], w.shape[1]);
    let mut out = match io.tokens {
        Some(csr) => {
            use crate::gpu::context::Binding::{Read, ReadWrite, Uniform};
            let zero = ctx.kernel(&crate::gpu::shaders::EMBED_GRAD, "zero", &[], &[Uniform, Read, Read, ReadWrite])?;
            let scatter = ctx.kernel(&crate::gpu::shaders::EMBED_GRAD, "scatter", &[], &[Uniform, Read, Read, ReadWrite])?;
            let ub = ops::uniform(ctx, &embed_uniform(layout, rows)?);
            vec![
                Dispatch { bind: ops::bind(ctx, &zero, &[&ub, d_pre, csr, io.grads]), kernel: zero, groups: ops::grid(ctx, g * i_w, 64)? },
                Dispatch { bind: ops::bind(ctx, &scatter, &[&ub, d_pre, csr, io.grads]), kernel: scatter, groups: ops::grid(ctx, rows * 64, 64)? },
            ]
        }
        None => ops::gemm(ctx, (g, i_w, rows), Mat::transposed(d_pre, 0, g), Mat::rows(io.x, 0, i_w), None, Mat::rows(io.grads, w.offset, i_w), false)?,
    };
    if let Ok(b) = layout.get("b") {
        out.push(ops::colsum(ctx, d_pre, 0, rows, g, io.grads, b.offset)?);
    }
    Ok(out)
}
