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
