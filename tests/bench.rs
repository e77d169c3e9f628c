//! `longmem bench`: the suite's shape, the report files and schema, every
//! family and mode running on the CPU path and on the GPU (tiny sizes; these
//! check that the suite works and reports, not speed), the pass timer, and
//! `--compare`.

use longmem::bench::report;
use longmem::bench::run::{run_case, BenchOptions};
use longmem::bench::{Case, Mode, Selection, SCHEMA, SUITE_MODELS};
use longmem::device::Engine;
use longmem::gpu::ops::{self, GemmKernel, Mat};
use longmem::gpu::testing::test_context;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_longmem");

fn tmp(test: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("longmem-bench-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn longmem(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("LONGMEM_ADAPTER").output().expect("run longmem")
}

fn describe(args: &[&str], o: &Output) -> String {
    format!("longmem {}\nexit {:?}\n{}\n{}", args.join(" "), o.status.code(), String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every family and mode at tiny sizes.
const TINY: &[&str] = &[
    "--models", "rnn,lstm,gru,scrn,urnn,warp", "--hidden", "8", "--batch", "1,3", "--seq-len", "5", "--lyapunov-hidden", "4,8", "--lyapunov-batch", "2", "--reps", "2",
];

fn check_report(dir: &Path, engine: &str) -> Value {
    let r: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    assert_eq!(r["schema"], SCHEMA);
    assert_eq!(r["suite_version"], 1);
    assert_eq!(r["device"]["engine"], engine, "{}", r["device"]);
    assert_eq!(r["in_suite"], false, "tiny sizes are not the suite's");
    let c = &r["ceilings"];
    assert!(c["bandwidth_gb_s"].as_f64().unwrap() > 0.0 && c["gemm_gflops"].as_f64().unwrap() > 0.0, "{c}");
    let cases = r["cases"].as_array().unwrap();
    // 6 families × 2 batches × 2 modes + 2 Lyapunov sizes
    assert_eq!(cases.len(), 26);
    for c in cases {
        assert_eq!(c["status"], "ok", "{c}");
        for k in ["model", "hidden", "batch", "seq_len", "mode"] {
            assert!(!c[k].is_null(), "{k} missing: {c}");
        }
        for k in ["tokens_per_s", "gflops", "median_s", "flops"] {
            assert!(c[k].as_f64().unwrap() > 0.0, "{k}: {c}");
        }
        assert!(c["spread_s"].as_f64().unwrap() >= 0.0, "{c}");
        let tps = c["tokens_per_s"].as_f64().unwrap();
        let want = (c["batch"].as_u64().unwrap() * c["seq_len"].as_u64().unwrap()) as f64 / c["median_s"].as_f64().unwrap();
        assert!((tps / want - 1.0).abs() < 1e-9, "{c}");
        assert!(c["memory_bytes"].as_u64().unwrap() > 0, "{c}");
        assert_eq!(c["reps"], 2, "{c}");
    }
    let md = std::fs::read_to_string(dir.join("bench.md")).unwrap();
    assert!(md.contains("| urnn | 8 | 3 | 5 | train |"), "{md}");
    assert!(md.contains("| warp | 8 | 3 | 5 | forward |"), "{md}");
    let svg = std::fs::read_to_string(dir.join("bench.svg")).unwrap();
    assert!(svg.contains("<rect") && svg.contains("lstm H=8 B=1 T=5 forward"), "bench.svg lacks bars or labels");
    r
}

#[test]
fn cpu_suite_runs_every_family_and_mode_and_compares() {
    let dir = tmp("cpu");
    let out = dir.join("run");
    let mut args = vec!["bench", "--device", "cpu", "--out", out.to_str().unwrap()];
    args.extend(TINY);
    let o = longmem(&args);
    assert!(o.status.success(), "{}", describe(&args, &o));
    let r = check_report(&out, "cpu");
    assert!(r["cases"].as_array().unwrap().iter().all(|c| c["timing"] == "wall-clock"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[26/26]"), "progress lines");
    // a report against itself: every ratio 1.00
    let json = out.join("bench.json");
    let args = ["bench", "--compare", out.to_str().unwrap(), json.to_str().unwrap()];
    let o = longmem(&args);
    assert!(o.status.success(), "{}", describe(&args, &o));
    let text = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| rnn") || l.starts_with("| urnn")).collect();
    assert_eq!(rows.len(), 10, "{text}");
    assert!(rows.iter().all(|l| l.trim_end().ends_with("| 1.00 |")), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gpu_suite_runs_every_family_and_mode_with_timestamps() {
    let Some(ctx) = test_context("gpu_suite_runs_every_family_and_mode_with_timestamps") else { return };
    let dir = tmp("gpu");
    let out = dir.join("run");
    let mut args = vec!["bench", "--device", "gpu", "--out", out.to_str().unwrap()];
    args.extend(TINY);
    let a = format!("{}", ctx.index);
    args.extend(["--adapter", &a]);
    let o = longmem(&args);
    assert!(o.status.success(), "{}", describe(&args, &o));
    let r = check_report(&out, "gpu");
    let timing = if ctx.has_pass_timing() { "gpu-timestamps" } else { "wall-clock" };
    for c in r["cases"].as_array().unwrap() {
        assert_eq!(c["timing"], timing, "{c}");
        // the device's time inside passes cannot exceed the wall clock around them
        assert!(c["median_s"].as_f64().unwrap() <= c["wall_median_s"].as_f64().unwrap() * 1.001, "{c}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pass timer's figure for a GEMM is positive and within the wall clock.
#[test]
fn pass_timer_times_a_gemm() {
    let Some(ctx) = test_context("pass_timer_times_a_gemm") else { return };
    if !ctx.has_pass_timing() {
        eprintln!("SKIPPED pass_timer_times_a_gemm: the adapter has no timestamp queries");
        return;
    }
    let n = 64;
    let a = ops::storage(&ctx, "a", n * n).unwrap();
    let c = ops::storage(&ctx, "c", n * n).unwrap();
    ops::write_f32(&ctx, &a, 0, &vec![0.5; n * n]);
    let ds = ops::gemm_with(&ctx, GemmKernel::Direct, (n, n, n), Mat::rows(&a, 0, n), Mat::rows(&a, 0, n), None, Mat::rows(&c, 0, n), false).unwrap();
    assert!(ctx.start_pass_timing());
    let t0 = std::time::Instant::now();
    for _ in 0..3 {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        ops::encode(&ctx, &mut enc, &ds);
        ctx.queue.submit([enc.finish()]);
    }
    let out = ops::read_f32(&ctx, &c, 0, 1).unwrap();
    let wall = t0.elapsed().as_secs_f64();
    let gpu = ctx.finish_pass_timing().unwrap().expect("three passes fit the window");
    assert!(gpu > 0.0 && gpu <= wall, "gpu {gpu} s, wall {wall} s");
    assert!((out[0] - 0.25 * n as f32).abs() < 1e-4, "{out:?}");
    // no window open: passes are not timed, and finishing reports nothing timed
    assert!(ctx.timestamp_writes().is_none());
    assert_eq!(ctx.finish_pass_timing().unwrap(), Some(0.0));
}

#[test]
fn suite_shape_and_selection_errors() {
    let full = Selection::full();
    let cases = full.cases();
    // 5 families × 4 sizes × 3 batches × 2 lengths × 2 modes, and 2 × 2 × 2 Lyapunov cases
    assert_eq!(cases.len(), SUITE_MODELS.len() * 4 * 3 * 2 * 2 + 8);
    assert!(full.within_suite() && Selection::quick().within_suite());
    assert!(cases.iter().filter(|c| c.mode == Mode::Lyapunov).all(|c| c.model == "rnn"));
    let mut bad = Selection::quick();
    bad.hidden = vec![100];
    bad.models.push(longmem::models::ModelKind::Urnn);
    assert!(format!("{}", bad.validate().unwrap_err()).contains("power of two"));
    bad.models.pop();
    assert!(!bad.within_suite());
    bad.batch = vec![0];
    assert!(format!("{}", bad.validate().unwrap_err()).contains("--batch"));
    bad.batch = vec![1];
    bad.modes = vec![];
    assert!(bad.validate().is_err());
    assert!(Mode::parse("backward").is_err());
}

#[test]
fn cli_rejects_bad_input() {
    let dir = tmp("bad");
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{\"schema\": \"something-else/9\"}").unwrap();
    for (args, says) in [
        (vec!["bench", "--compare", junk.to_str().unwrap(), junk.to_str().unwrap()], "bench report"),
        (vec!["bench", "--device", "cpu", "--reps", "0"], "--reps"),
        (vec!["bench", "--device", "cpu", "--hidden", "12x"], "--hidden"),
        (vec!["bench", "--device", "cpu", "--models", "warp9"], "unknown model"),
        (vec!["bench", "--device", "cpu", "--modes", "sideways"], "unknown bench mode"),
        (vec!["bench", "--device", "cpu", "--models", "rnn,warp", "--scan", "parallel"], "--models warp"),
        (vec!["bench", "--device", "cpu", "--scan", "sideways"], "unknown scan mode"),
    ] {
        let o = longmem(&args);
        let d = describe(&args, &o);
        assert_eq!(o.status.code(), Some(1), "{d}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(says), "{d}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A case whose work would take longer than the budget even at the GEMM
/// ceiling is skipped with the reason, not run.
#[test]
fn oversized_case_is_skipped_with_the_reason() {
    let ceil = longmem::bench::ceilings::Ceilings { bandwidth_gb_s: 1.0, copy_bytes: 1, gemm_gflops: 1e-6, gemm_n: 1, gemm_kernel: "test".into() };
    let case = Case { model: "lstm".into(), hidden: 16, batch: 4, seq_len: 8, mode: Mode::Train };
    let r = run_case(&Engine::Cpu, &case, &BenchOptions { reps: 1, max_case_s: 1.0, ..Default::default() }, Some(&ceil));
    assert_eq!(r.status, "skipped");
    assert!(r.note.as_deref().unwrap().contains("--max-case-seconds"), "{:?}", r.note);
    assert!(r.tokens_per_s.is_none() && r.flops > 0.0);
    // the report tables carry it
    let rep = longmem::bench::run::Report {
        schema: SCHEMA.into(),
        suite_version: 1,
        tool: "t".into(),
        commit: None,
        created: report::utc_now(),
        device: longmem::bench::run::device_info(&Engine::Cpu),
        host: longmem::bench::run::host(),
        in_suite: false,
        reps: 1,
        ceilings: None,
        scan: Default::default(),
        cases: vec![r],
    };
    assert!(report::markdown(&rep).contains("| skipped |"));
    assert!(report::compare(&[rep.clone(), rep]).contains("| skipped |"));
}

/// `--scan parallel` benches WARP's doubling scan and says so in the report.
#[test]
fn warp_parallel_scan_benches_and_is_recorded() {
    let Some(ctx) = test_context("warp_parallel_scan_benches_and_is_recorded") else { return };
    let dir = tmp("parallel");
    let out = dir.join("run");
    let a = format!("{}", ctx.index);
    let args = [
        "bench", "--device", "gpu", "--adapter", &a, "--models", "warp", "--hidden", "4", "--batch", "2", "--seq-len", "9", "--modes", "forward,train", "--reps",
        "1", "--no-ceilings", "--scan", "parallel", "--out", out.to_str().unwrap(),
    ];
    let o = longmem(&args);
    assert!(o.status.success(), "{}", describe(&args, &o));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(out.join("bench.json")).unwrap()).unwrap();
    assert_eq!(r["scan"], "parallel");
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    assert!(cases.iter().all(|c| c["status"] == "ok" && c["tokens_per_s"].as_f64().unwrap() > 0.0), "{cases:?}");
    assert!(std::fs::read_to_string(out.join("bench.md")).unwrap().contains("GPU scan parallel"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `benches/gpu-session.sh --smoke`, the prepared checks for a GPU loan, runs
/// every step at toy sizes and packs what a loan brings back.
#[test]
fn gpu_session_script_runs_every_step_at_toy_sizes() {
    let Some(ctx) = test_context("gpu_session_script_runs_every_step_at_toy_sizes") else { return };
    let dir = tmp("session");
    let out = dir.join("out");
    let o = Command::new("bash")
        .args(["benches/gpu-session.sh", BIN, out.to_str().unwrap(), "--smoke"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("LONGMEM_ADAPTER", format!("{}", ctx.index))
        .env("TMPDIR", &dir)
        .output()
        .expect("run bash");
    let log = std::fs::read_to_string(out.join("session.log")).unwrap_or_default();
    assert!(o.status.success(), "exit {:?}\n{log}\n{}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    for step in ["info", "bench", "adding400"] {
        assert!(log.contains(&format!(" {step}: exit 0 ")), "{step} did not finish:\n{log}");
    }
    let mnist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    if mnist.is_dir() {
        assert!(log.contains(" mnist512: exit 0 "), "mnist512 did not finish:\n{log}");
    }
    assert!(out.join("compare.txt").is_file());
    let list = Command::new("tar").args(["tzf", out.join("session.tgz").to_str().unwrap()]).output().expect("run tar");
    let list = String::from_utf8_lossy(&list.stdout);
    for f in ["longmem/bench.json", "adding400/metrics.jsonl"] {
        assert!(list.contains(f), "{f} not in session.tgz:\n{list}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
