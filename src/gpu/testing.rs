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
