//! Recorded dispatches and the shared kernels (GEMM, reductions, loss,
//! optimizer). A training step is a list of `Dispatch`es built once per
//! shape and replayed every step; only uniforms that change are rewritten.

use super::context::{Binding, GpuContext, Kernel};
use super::shaders;
use anyhow::{bail, Result};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;
use wgpu::util::DeviceExt;

pub struct Dispatch {
    pub kernel: Arc<Kernel>,
    pub bind: wgpu::BindGroup,
    pub groups: (u32, u32, u32),
}

/// Record `dispatches` in one compute pass (timed when a timing window is open).
pub fn encode<D: std::borrow::Borrow<Dispatch>>(ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, dispatches: &[D]) {
    let stamps = ctx.timestamp_writes();
    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: super::timer::pass_writes(&stamps) });
    for d in dispatches.iter().map(|d| d.borrow()) {
        pass.set_pipeline(&d.kernel.pipeline);
        pass.set_bind_group(0, &d.bind, &[]);
        pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
    }
}

pub fn uniform<T: Pod>(ctx: &GpuContext, value: &T) -> wgpu::Buffer {
    ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("uniform"),
        contents: bytemuck::bytes_of(value),
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}

/// A storage buffer of `len` f32 (or u32) values, zeroed, checked against
/// the adapter's limits first so the user learns what to lower.
pub fn storage(ctx: &GpuContext, label: &str, len: usize) -> Result<wgpu::Buffer> {
    let bytes = (len.max(1) * 4) as u64;
    let bind = ctx.limits.max_storage_buffer_binding_size;
    if bytes > bind || bytes > ctx.limits.max_buffer_size {
        bail!(
            "buffer '{label}' needs {bytes} bytes, over this adapter's limit ({} = {} bytes); \
             lower --batch, --seq-len or --hidden",
            if bytes > bind { "max_storage_buffer_binding_size" } else { "max_buffer_size" },
            bind.min(ctx.limits.max_buffer_size)
        );
    }
    ctx.allocated.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    Ok(ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    }))
}

pub fn bind(ctx: &GpuContext, kernel: &Kernel, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &kernel.layout, entries: &entries })
}

/// Workgroup counts for `items` work items in groups of `wg`, spread over
/// x and y so no dimension passes the adapter's limit.
pub fn grid(ctx: &GpuContext, items: usize, wg: usize) -> Result<(u32, u32, u32)> {
    let groups = items.div_ceil(wg).max(1);
    let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
    if groups <= max {
        return Ok((groups as u32, 1, 1));
    }
    let y = groups.div_ceil(max);
    if y > max {
        bail!("{items} work items exceed max_compute_workgroups_per_dimension ({max}) squared");
    }
    Ok((max as u32, y as u32, 1))
}

/// Download `len` f32 values from `buf` at element offset `off`.
pub fn read_f32(ctx: &GpuContext, buf: &wgpu::Buffer, off: usize, len: usize) -> Result<Vec<f32>> {
    let bytes = (len * 4) as u64;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback"),
        size: bytes.max(4),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(buf, (off * 4) as u64, &staging, 0, bytes);
    ctx.queue.submit([enc.finish()]);
    map_read(ctx, &staging, len)
}

/// Map a MAP_READ buffer after the work writing it was submitted.
pub fn map_read(ctx: &GpuContext, staging: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
    let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| anyhow::anyhow!("GPU poll failed: {e}"))?;
    match pollster::block_on(rx.receive()) {
        Some(Ok(())) => {}
        Some(Err(e)) => bail!("reading back from the GPU failed: {e}"),
        None => bail!("reading back from the GPU failed: the map request was dropped"),
    }
    ctx.check_errors()?;
    let out = {
        let view = staging.get_mapped_range(..).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        bytemuck::cast_slice::<u8, f32>(&view)[..len].to_vec()
    };
    staging.unmap();
    Ok(out)
}

pub fn write_f32(ctx: &GpuContext, buf: &wgpu::Buffer, off: usize, data: &[f32]) {
    if !data.is_empty() {
        ctx.queue.write_buffer(buf, (off * 4) as u64, bytemuck::cast_slice(data));
    }
}

// ---------------------------------------------------------------- GEMM

/// A strided matrix operand: element (i, j) at `off + i·rs + j·cs`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    pub buf: &'a wgpu::Buffer,
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// Row-major matrix with `cols` columns.
    pub fn rows(buf: &'a wgpu::Buffer, off: usize, cols: usize) -> Self {
        Mat { buf, off, rs: cols, cs: 1 }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(buf: &'a wgpu::Buffer, off: usize, cols: usize) -> Self {
        Mat { buf, off, rs: 1, cs: cols }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GemmUniform {
    m: u32,
    n: u32,
    k: u32,
    accumulate: u32,
    a_off: u32,
    a_rs: u32,
    a_cs: u32,
    bias_off: u32,
    b_off: u32,
    b_rs: u32,
    b_cs: u32,
    has_bias: u32,
    c_off: u32,
    c_rs: u32,
    row0: u32,
    _pad: u32,
}

/// Which GEMM kernel: tiled through workgroup memory, or one invocation
/// per output with no barriers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    Tiled,
    Direct,
}

/// Tiled on hardware; direct on software adapters (lavapipe), where every
/// workgroup barrier costs a coroutine switch per invocation.
pub fn gemm_kernel_for(ctx: &GpuContext) -> GemmKernel {
    if ctx.is_software() {
        GemmKernel::Direct
    } else {
        GemmKernel::Tiled
    }
}

/// C (m×n, rows `c.rs` apart, `c.cs` must be 1) = A·B (+ bias from B's buffer); rows are
/// split over several dispatches when past the workgroup-count limit.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    ctx: &GpuContext,
    mnk: (usize, usize, usize),
    a: Mat,
    b: Mat,
    bias_off: Option<usize>,
    c: Mat,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    gemm_with(ctx, gemm_kernel_for(ctx), mnk, a, b, bias_off, c, accumulate)
}

#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    ctx: &GpuContext,
    which: GemmKernel,
    (m, n, k): (usize, usize, usize),
    a: Mat,
    b: Mat,
    bias_off: Option<usize>,
    c: Mat,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let entry = if which == GemmKernel::Tiled { "main" } else { "direct" };
    let kernel = ctx.kernel(&shaders::GEMM, entry, &[], &[Binding::Uniform, Binding::Read, Binding::Read, Binding::ReadWrite])?;
    assert_eq!(c.cs, 1, "GEMM output rows must be contiguous");
    let max = ctx.limits.max_compute_workgroups_per_dimension as usize;
    let cols = n.div_ceil(16);
    if cols > max {
        bail!("GEMM with {n} columns exceeds the workgroup-count limit");
    }
    // direct: rows per dispatch such that rows·n invocations fit one grid
    let rows_per = if which == GemmKernel::Tiled { max * 16 } else { (max * 64 / n.max(1)).max(1) };
    let mut out = Vec::new();
    let mut row0 = 0;
    while row0 < m.max(1) {
        let rows = (m - row0).min(rows_per);
        let u = GemmUniform {
            m: (row0 + rows) as u32, // this dispatch's last row + 1
            n: n as u32,
            k: k as u32,
            accumulate: accumulate as u32,
            a_off: a.off as u32,
            a_rs: a.rs as u32,
            a_cs: a.cs as u32,
            bias_off: bias_off.unwrap_or(0) as u32,
            b_off: b.off as u32,
            b_rs: b.rs as u32,
            b_cs: b.cs as u32,
            has_bias: bias_off.is_some() as u32,
            c_off: c.off as u32,
            c_rs: c.rs as u32,
            row0: row0 as u32,
            _pad: 0,
        };
        let ub = uniform(ctx, &u);
        let bind = bind(ctx, &kernel, &[&ub, a.buf, b.buf, c.buf]);
        let groups = match which {
            GemmKernel::Tiled => (cols.max(1) as u32, rows.div_ceil(16).max(1) as u32, 1),
            GemmKernel::Direct => grid(ctx, rows * n, 64)?,
        };
        out.push(Dispatch { kernel: kernel.clone(), bind, groups });
        row0 += rows;
        if m == 0 {
            break;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------- reductions

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceUniform {
    n: u32,
    src_off: u32,
    dst_off: u32,
    square: u32,
    cols: u32,
    _p: [u32; 3],
}

/// dst[dst_off] = Σ src[src_off..src_off+n] (of squares if `square`).
pub fn sum(ctx: &GpuContext, src: &wgpu::Buffer, src_off: usize, n: usize, square: bool, dst: &wgpu::Buffer, dst_off: usize) -> Result<Dispatch> {
    let kernel = ctx.kernel(&shaders::REDUCE, "sum", &[], &[Binding::Uniform, Binding::Read, Binding::ReadWrite])?;
    let u = ReduceUniform { n: n as u32, src_off: src_off as u32, dst_off: dst_off as u32, square: square as u32, cols: 0, _p: [0; 3] };
    let ub = uniform(ctx, &u);
    Ok(Dispatch { bind: bind(ctx, &kernel, &[&ub, src, dst]), kernel, groups: (1, 1, 1) })
}

/// dst[dst_off + j] = Σ_i src[src_off + i·cols + j] over `rows` rows.
pub fn colsum(ctx: &GpuContext, src: &wgpu::Buffer, src_off: usize, rows: usize, cols: usize, dst: &wgpu::Buffer, dst_off: usize) -> Result<Dispatch> {
    let kernel = ctx.kernel(&shaders::REDUCE, "colsum", &[], &[Binding::Uniform, Binding::Read, Binding::ReadWrite])?;
    let u = ReduceUniform { n: rows as u32, src_off: src_off as u32, dst_off: dst_off as u32, square: 0, cols: cols as u32, _p: [0; 3] };
    let ub = uniform(ctx, &u);
    Ok(Dispatch { bind: bind(ctx, &kernel, &[&ub, src, dst]), kernel, groups: grid(ctx, cols, 64)? })
}

// ---------------------------------------------------------------- loss

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossUniform {
    rows: u32,
    outs: u32,
    kind: u32,
    _p0: u32,
    norm: f32,
    _p: [f32; 3],
}

pub struct LossBuffers<'a> {
    pub y: &'a wgpu::Buffer,
    pub cls: &'a wgpu::Buffer,
    pub tgt: &'a wgpu::Buffer,
    pub mask: &'a wgpu::Buffer,
    pub dy: &'a wgpu::Buffer,
    pub row_loss: &'a wgpu::Buffer,
}

/// The loss kernel; returns its dispatch and the uniform buffer, whose
/// `norm` changes with the batch's mask.
/// The loss kernel's `kind`: cross-entropy, squared error, Gaussian NLL.
pub const LOSS_CE: u32 = 0;
pub const LOSS_MSE: u32 = 1;
pub const LOSS_GAUSSIAN: u32 = 2;

/// The kernel code of a target.
pub fn loss_kind(t: &crate::tasks::Target) -> u32 {
    match t {
        crate::tasks::Target::Classes(_) => LOSS_CE,
        crate::tasks::Target::Values(_) => LOSS_MSE,
        crate::tasks::Target::Gaussian(_) => LOSS_GAUSSIAN,
    }
}

pub fn loss(ctx: &GpuContext, rows: usize, outs: usize, kind: u32, b: &LossBuffers) -> Result<(Dispatch, wgpu::Buffer)> {
    let kernel = ctx.kernel(
        &shaders::LOSS,
        "main",
        &[],
        &[Binding::Uniform, Binding::Read, Binding::Read, Binding::Read, Binding::Read, Binding::ReadWrite, Binding::ReadWrite],
    )?;
    let ub = uniform(ctx, &loss_uniform(rows, outs, kind, 1.0));
    let bind = bind(ctx, &kernel, &[&ub, b.y, b.cls, b.tgt, b.mask, b.dy, b.row_loss]);
    Ok((Dispatch { kernel, bind, groups: grid(ctx, rows, 64)? }, ub))
}

pub fn write_loss_norm(ctx: &GpuContext, ub: &wgpu::Buffer, rows: usize, outs: usize, kind: u32, norm: f32) {
    ctx.queue.write_buffer(ub, 0, bytemuck::bytes_of(&loss_uniform(rows, outs, kind, norm)));
}

fn loss_uniform(rows: usize, outs: usize, kind: u32, norm: f32) -> LossUniform {
    LossUniform { rows: rows as u32, outs: outs as u32, kind, _p0: 0, norm, _p: [0.0; 3] }
}

// ----------------------------------------------------------- optimizer

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug)]
pub struct OptUniform {
    pub n: u32,
    pub kind: u32,
    pub wd: f32,
    pub _p1: u32,
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub momentum: f32,
    pub clip: f32,
    pub c1: f32,
    pub c2: f32,
}

pub struct OptBuffers<'a> {
    pub params: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    pub m: &'a wgpu::Buffer,
    pub v: &'a wgpu::Buffer,
    pub stats: &'a wgpu::Buffer,
}

pub fn optimizer(ctx: &GpuContext, n: usize, b: &OptBuffers) -> Result<(Dispatch, wgpu::Buffer)> {
    let kernel = ctx.kernel(
        &shaders::OPTIM,
        "main",
        &[],
        &[Binding::Uniform, Binding::ReadWrite, Binding::Read, Binding::ReadWrite, Binding::ReadWrite, Binding::Read],
    )?;
    let ub = uniform(ctx, &OptUniform::zeroed());
    let bind = bind(ctx, &kernel, &[&ub, b.params, b.grads, b.m, b.v, b.stats]);
    Ok((Dispatch { kernel, bind, groups: grid(ctx, n, 64)? }, ub))
}
