//! Helpers shared by the integration tests that use the real data sets or
//! run the binary: where the data is, the skip rule when it is absent, and
//! scratch directories.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$LONGMEM_DATA`, else ../shared/data beside the checkout.
pub fn data_dir() -> PathBuf {
    match std::env::var("LONGMEM_DATA") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    }
}

/// Whether `file` exists; when it does not, the test says it skipped, or
/// fails under LONGMEM_REQUIRE_DATA=1 (as .ci/run sets). `how` names the
/// variable that points elsewhere.
pub fn have(test: &str, what: &str, file: &std::path::Path, how: &str) -> bool {
    let ok = file.exists();
    if !ok {
        assert!(std::env::var("LONGMEM_REQUIRE_DATA").as_deref() != Ok("1"), "{test}: no {what} data at {}", file.display());
        eprintln!("SKIPPED {test}: no {what} data at {} (set {how})", file.display());
    }
    ok
}

/// A fresh (emptied) scratch path `longmem-<suite>-<name>-<pid>` in the
/// system temp dir; not created.
pub fn tmp(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("longmem-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
