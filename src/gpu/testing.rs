//! One shared device per test binary, and the skip rule for GPU tests:
//! with no adapter they print that they skipped, unless
//! `LONGMEM_REQUIRE_GPU=1`, in which case they fail.

use super::GpuContext;
use std::sync::{Arc, OnceLock};

pub fn require_gpu() -> bool {
    std::env::var("LONGMEM_REQUIRE_GPU").map(|v| v == "1").unwrap_or(false)
}

/// The test device, or None (after printing why) when the test should skip.
pub fn test_context(test: &str) -> Option<Arc<GpuContext>> {
    static CTX: OnceLock<Result<Arc<GpuContext>, String>> = OnceLock::new();
    let ctx = CTX.get_or_init(|| {
        let wanted = std::env::var("LONGMEM_ADAPTER").ok();
        match GpuContext::open(wanted.as_deref()) {
            Ok(Some(c)) => Ok(Arc::new(c)),
            Ok(None) => Err(super::context::NO_ADAPTER_HELP.to_string()),
            Err(e) => Err(format!("{e:#}")),
        }
    });
    match ctx {
        Ok(c) => Some(c.clone()),
        Err(why) if require_gpu() => panic!("{test}: LONGMEM_REQUIRE_GPU=1 but no GPU device: {why}"),
        Err(why) => {
            eprintln!("SKIPPED {test}: no GPU adapter ({why})");
            None
        }
    }
}

/// A seed for fresh random test inputs, printed so a failure can be
/// replayed with `LONGMEM_TEST_SEED=<seed>`.
pub fn fresh_seed(test: &str) -> u64 {
    let seed = std::env::var("LONGMEM_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0)
    });
    eprintln!("{test}: LONGMEM_TEST_SEED={seed}");
    seed
}

/// A storage buffer holding `data`.
pub fn upload(ctx: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    let b = super::ops::storage(ctx, "test", data.len()).expect("test buffer within limits");
    super::ops::write_f32(ctx, &b, 0, data);
    b
}

/// Encode and submit recorded dispatches (a later read waits for them).
pub fn submit(ctx: &GpuContext, ds: &[super::ops::Dispatch]) {
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    super::ops::encode(ctx, &mut enc, ds);
    ctx.queue.submit([enc.finish()]);
}

/// The CPU reference's gradient in f64 at `params`: the yardstick for both
/// f32 sides (GPU and f32 CPU) in GPU-against-CPU tests.
pub fn grads_f64(model: &crate::models::Model, params: &[f32], batch: &crate::tasks::Batch) -> Vec<f64> {
    let p: Vec<f64> = params.iter().map(|&x| x as f64).collect();
    crate::train::cpu::loss_grads::<f64>(model, &p, batch).1
}

/// Holds a GPU gradient to the f64 one, group by group: within 1e-4 of the
/// group's size, or within 8× the f32 CPU's own error where that is larger.
/// A gradient may be ill-conditioned (examples' residuals cancelling after
/// a few Adam steps; modReLU's (|z|+b)/|z| at small |z|) and there f32
/// cannot do better on either side: a CI seed found the f32 CPU 1e-3 off
/// f64 on a 1024-unit uRNN and the GPU just as far.
pub fn assert_grads_close(label: &str, model: &crate::models::Model, g_gpu: &[f32], g_cpu: &[f32], g64: &[f64]) {
    for v in model.layout().views() {
        let r = v.range();
        let (e_gpu, e_cpu, size) = (dist(&g_gpu[r.clone()], &g64[r.clone()]), dist(&g_cpu[r.clone()], &g64[r.clone()]), norm(&g64[r]));
        assert!(e_gpu <= (1e-4 * size).max(8.0 * e_cpu), "{label}: grad {} off f64 by {e_gpu} (f32 CPU {e_cpu}, size {size})", v.name);
    }
}

/// Euclidean distance between an f32 and an f64 vector.
pub fn dist(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).powi(2)).sum::<f64>().sqrt()
}

pub fn norm(a: &[f64]) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The CPU reference's loss in f64 at `params`.
pub fn loss_f64(model: &crate::models::Model, params: &[f32], batch: &crate::tasks::Batch) -> f64 {
    let p: Vec<f64> = params.iter().map(|&x| x as f64).collect();
    crate::train::cpu::loss_grads::<f64>(model, &p, batch).0
}

/// Holds a GPU scalar to its f64 value as [`assert_grads_close`] holds a
/// gradient: within `tol` relative, or 8× the f32 CPU's own error (a
/// Gaussian head near its sd floor makes losses of 1e4 whose f32 rounding
/// passes any fixed tolerance).
pub fn assert_value_close(label: &str, gpu: f64, cpu: f64, v64: f64, tol: f64) {
    let (e_gpu, e_cpu) = ((gpu - v64).abs(), (cpu - v64).abs());
    assert!(e_gpu <= (tol * v64.abs()).max(8.0 * e_cpu), "{label}: {gpu} off f64 {v64} by {e_gpu} (f32 CPU {cpu})");
}
