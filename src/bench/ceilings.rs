//! The device's own ceilings, measured in the same run as the cases: memory
//! bandwidth from a large copy and FLOP/s from the best GEMM we have, so
//! each case's figure can be read as a fraction of what the device can do.

use crate::gpu::ops::{self, GemmKernel, Mat};
use crate::gpu::GpuContext;
use crate::rng::Rng;
use anyhow::Result;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ceilings {
    /// bytes read plus bytes written per second by a large copy, in GB/s
    pub bandwidth_gb_s: f64,
    pub copy_bytes: u64,
    /// the best GEMM's GFLOP/s and where it was reached
    pub gemm_gflops: f64,
    pub gemm_n: usize,
    pub gemm_kernel: String,
}

fn best_of<F: FnMut() -> Result<f64>>(reps: usize, mut f: F) -> Result<f64> {
    f()?; // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        best = best.min(f()?);
    }
    Ok(best)
}

/// The CPU path: `copy_from_slice` over 64 MiB, and ndarray's GEMM (the
/// one the CPU reference calls) on square f32 matrices.
pub fn cpu() -> Result<Ceilings> {
    let len = 16 << 20;
    let src = vec![1.5f32; len];
    let mut dst = vec![0.0f32; len];
    let t = best_of(3, || {
        let t0 = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&dst);
        Ok(t0.elapsed().as_secs_f64())
    })?;
    let bytes = (2 * len * 4) as u64;
    let mut rng = Rng::seed(7);
    let (mut best, mut best_n) = (0.0f64, 0usize);
    for n in [256usize, 512, 1024] {
        let a = Array2::from_shape_fn((n, n), |_| rng.normal() as f32);
        let b = Array2::from_shape_fn((n, n), |_| rng.normal() as f32);
        let mut c = Array2::<f32>::zeros((n, n));
        let s = best_of(2, || {
            let t0 = Instant::now();
            ndarray::linalg::general_mat_mul(1.0, &a, &b, 0.0, &mut c);
            std::hint::black_box(&c);
            Ok(t0.elapsed().as_secs_f64())
        })?;
        let g = 2.0 * (n * n * n) as f64 / s * 1e-9;
        if g > best {
            (best, best_n) = (g, n);
        }
    }
    Ok(Ceilings { bandwidth_gb_s: bytes as f64 / t * 1e-9, copy_bytes: bytes, gemm_gflops: best, gemm_n: best_n, gemm_kernel: "ndarray general_mat_mul (matrixmultiply)".into() })
}

/// Wall time of `f`'s submitted work, or its compute passes' GPU time where
/// timestamp queries exist.
fn device_seconds(ctx: &GpuContext, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let timed = ctx.start_pass_timing();
    let t0 = Instant::now();
    f()?;
    ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| anyhow::anyhow!("GPU poll failed: {e}"))?;
    let wall = t0.elapsed().as_secs_f64();
    if timed {
        if let Some(s) = ctx.finish_pass_timing()? {
            if s > 0.0 {
                return Ok(s);
            }
        }
    }
    Ok(wall)
}

/// A GPU adapter: ten buffer-to-buffer copies of up to 256 MiB in one
/// submission (wall clock), and the tiled and direct GEMM kernels on square
/// matrices, grown until one run takes a tenth of a second.
pub fn gpu(ctx: &GpuContext) -> Result<Ceilings> {
    let limit = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
    let bytes = (256u64 << 20).min(limit / 4 * 4);
    let len = (bytes / 4) as usize;
    let src = ops::storage(ctx, "bench copy src", len)?;
    let dst = ops::storage(ctx, "bench copy dst", len)?;
    const COPIES: u64 = 10;
    let t = best_of(3, || {
        let t0 = Instant::now();
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        for _ in 0..COPIES {
            enc.copy_buffer_to_buffer(&src, 0, &dst, 0, bytes);
        }
        ctx.queue.submit([enc.finish()]);
        ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| anyhow::anyhow!("GPU poll failed: {e}"))?;
        Ok(t0.elapsed().as_secs_f64())
    })?;
    drop((src, dst));
    let moved = 2 * bytes * COPIES;
    let (mut best, mut best_n, mut best_k) = (0.0f64, 0usize, GemmKernel::Tiled);
    let mut rng = Rng::seed(7);
    for which in [GemmKernel::Tiled, GemmKernel::Direct] {
        let mut n = 128usize;
        loop {
            let data: Vec<f32> = (0..n * n).map(|_| rng.normal() as f32).collect();
            let a = ops::storage(ctx, "bench gemm a", n * n)?;
            let b = ops::storage(ctx, "bench gemm b", n * n)?;
            let c = ops::storage(ctx, "bench gemm c", n * n)?;
            ops::write_f32(ctx, &a, 0, &data);
            ops::write_f32(ctx, &b, 0, &data);
            let ds = ops::gemm_with(ctx, which, (n, n, n), Mat::rows(&a, 0, n), Mat::rows(&b, 0, n), None, Mat::rows(&c, 0, n), false)?;
            let s = best_of(2, || {
                device_seconds(ctx, &mut || {
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    ops::encode(ctx, &mut enc, &ds);
                    ctx.queue.submit([enc.finish()]);
                    Ok(())
                })
            })?;
            ctx.check_errors()?;
            let g = 2.0 * (n * n * n) as f64 / s * 1e-9;
            if g > best {
                (best, best_n, best_k) = (g, n, which);
            }
            if s > 0.1 || n >= 4096 {
                break;
            }
            n *= 2;
        }
    }
    Ok(Ceilings {
        bandwidth_gb_s: moved as f64 / t * 1e-9,
        copy_bytes: moved,
        gemm_gflops: best,
        gemm_n: best_n,
        gemm_kernel: format!("{best_k:?} GEMM (shaders/gemm.wgsl)").to_lowercase(),
    })
}
