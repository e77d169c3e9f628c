//! Forecasting on the real ETTh1 file: the loader and splits, a short WARP
//! run through the command line that beats the naive last-value forecast on
//! the test split, `longmem forecast` on a new series, the fed-back mode
//! end to end, and clear errors for bad input.

use longmem::data::ett;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_longmem");

mod common;

fn etth1() -> PathBuf {
    common::data_dir().join("ett/ETTh1.csv")
}

fn have_data(test: &str) -> bool {
    common::have(test, "ETT", &etth1(), "LONGMEM_DATA")
}

fn tmp(name: &str) -> PathBuf {
    common::tmp("forecast-it", name)
}

fn longmem(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("the binary runs")
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn etth1_loads_with_the_standard_splits() {
    if !have_data("etth1_loads_with_the_standard_splits") {
        return;
    }
    let s = ett::load(&etth1()).unwrap();
    assert_eq!(s.columns, vec!["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]);
    assert_eq!(s.len(), 17420);
    let sp = ett::splits(&s, 96).unwrap();
    assert_eq!((sp.train.dim().0, sp.valid.dim().0, sp.test.dim().0), (8640, 2880 + 96, 2880 + 96));
    // the test split starts 96 rows before row 11,520 of the file
    let want = (s.values[[11520 - 96, 6]] as f64 - sp.scaler.mean[6]) / sp.scaler.std[6];
    assert!((sp.test[[0, 6]] as f64 - want).abs() < 1e-5);
}

/// Train a small WARP on ETTh1 (CPU), evaluate it, forecast from a new context.
#[test]
fn short_warp_run_beats_the_naive_forecast_and_forecasts_a_new_series() {
    if !have_data("short_warp_run_beats_the_naive_forecast") {
        return;
    }
    let dir = tmp("warp");
    let data = etth1();
    let d = dir.to_str().unwrap();
    ok(&longmem(&[
        "train", "--task", "ett", "--data", data.to_str().unwrap(), "--model", "warp", "--theta0", "hyper", "--hidden", "8", "--lookback", "48",
        "--horizon", "24", "--steps", "300", "--batch", "16", "--device", "cpu", "--quiet", "--out", d,
    ]));
    assert!(dir.join("scaler.json").exists(), "the run keeps its training statistics");
    let r: Value = serde_json::from_str(&ok(&longmem(&["eval", "--run", d, "--json"]))).unwrap();
    let (mse, naive) = (r["mse"].as_f64().unwrap(), r["naive_mse"].as_f64().unwrap());
    assert!(r["mae"].as_f64().unwrap() > 0.0 && r["naive_mae"].as_f64().unwrap() > 0.0);
    assert_eq!(r["test"]["windows"], 2880 - 24 + 1);
    eprintln!("ETTh1 L=48 H=24 after 300 steps: test mse {mse:.4} (naive {naive:.4})");
    assert!(mse < 0.9 * naive, "test MSE {mse} is not clearly below the naive forecast's {naive}");

    // a new series: the first 200 rows of the file as its context
    let text = std::fs::read_to_string(&data).unwrap();
    let ctx = dir.join("context.csv");
    std::fs::write(&ctx, text.lines().take(201).collect::<Vec<_>>().join("\n")).unwrap();
    let csv = ok(&longmem(&["forecast", "--run", d, "--context", ctx.to_str().unwrap(), "--horizon", "10"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "step,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT");
    assert_eq!(lines.len(), 11);
    // in the data's own units: the oil temperature stays within the series' range
    let s = ett::load(&data).unwrap();
    let (lo, hi) = s.values.column(6).iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    for l in &lines[1..] {
        let v: Vec<f32> = l.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(v.len(), 8);
        assert!(v[7] > lo - (hi - lo) && v[7] < hi + (hi - lo), "OT forecast {} outside any plausible range", v[7]);
    }
    // more rows than the run forecasts directly, and a file with other columns
    let e = longmem(&["forecast", "--run", d, "--context", ctx.to_str().unwrap(), "--horizon", "25"]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("at most"));
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "date,a,b\nx,1,2\n").unwrap();
    let e = longmem(&["forecast", "--run", d, "--context", bad.to_str().unwrap()]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("columns"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fed_back_mode_trains_and_evaluates() {
    if !have_data("fed_back_mode_trains_and_evaluates") {
        return;
    }
    let dir = tmp("feedback");
    let d = dir.to_str().unwrap();
    ok(&longmem(&[
        "train", "--task", "ett", "--data", etth1().to_str().unwrap(), "--model", "warp", "--theta0", "hyper", "--hidden", "8", "--lookback", "48",
        "--horizon", "24", "--steps", "100", "--batch", "16", "--lr", "3e-4", "--forecast-mode", "feedback", "--forcing", "0.5", "--device", "cpu",
        "--quiet", "--out", d,
    ]));
    let r: Value = serde_json::from_str(&ok(&longmem(&["eval", "--run", d, "--json"]))).unwrap();
    assert_eq!(r["mode"], "feedback");
    assert!(r["mse"].as_f64().unwrap().is_finite());
    // feedback is WARP's alone
    let e = longmem(&["train", "--task", "ett", "--data", etth1().to_str().unwrap(), "--model", "lstm", "--forecast-mode", "feedback", "--out", d]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("warp"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_forecasting_settings_are_refused() {
    let dir = tmp("bad");
    let d = dir.to_str().unwrap();
    let e = longmem(&["train", "--task", "ett", "--model", "warp", "--out", d]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("--data"));
    if have_data("bad_forecasting_settings_are_refused") {
        let f = etth1();
        let e = longmem(&["train", "--task", "ett", "--data", f.to_str().unwrap(), "--lookback", "9000", "--out", d]);
        assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("look-back"), "{}", String::from_utf8_lossy(&e.stderr));
        let e = longmem(&["train", "--task", "ett", "--data", f.to_str().unwrap(), "--model", "warp", "--forcing", "1.5", "--out", d]);
        assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("probability"));
    }
    let missing = longmem(&["train", "--task", "ett", "--data", "/nonexistent.csv", "--out", d]);
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

/// Lotka–Volterra: WARP-Phys (root → α, β, δ, γ, one Euler step, its
/// predictions fed back) against black-box WARP decoding (direct mode),
/// same data, at the README's Adam lr 1e-3. Over seeds 0-9 WARP-Phys was at
/// 0.06-0.13 of the naive forecast's test MSE, the black box at 0.21-0.53,
/// their ratio at most 0.63. (The black box fed back is left out: at this
/// size its forecasts went non-finite at 8 of those 10 seeds, as the
/// README's larger run diverged; and at lr 3e-3 one Adam step sent
/// WARP-Phys to NaN at 4 of them. The old check passed by its seed.)
#[test]
fn warp_phys_beats_black_box_warp_on_lotka_volterra() {
    let mut mse = Vec::new();
    for phys in [true, false] {
        let dir = tmp(if phys { "phys" } else { "blackbox" });
        let d = dir.to_str().unwrap();
        let mode = if phys { "feedback" } else { "direct" };
        let mut args = vec![
            "train", "--task", "lotka", "--model", "warp", "--theta0", "hyper", "--hidden", "8", "--lookback", "30", "--horizon", "30", "--steps", "300",
            "--batch", "16", "--sim-trajectories", "128", "--lr", "1e-3", "--forecast-mode", mode, "--device", "cpu", "--quiet", "--out", d,
        ];
        if phys {
            args.extend(["--forcing", "0.5", "--warp-phys"]);
        }
        ok(&longmem(&args));
        let r: Value = serde_json::from_str(&ok(&longmem(&["eval", "--run", d, "--json"]))).unwrap();
        assert_eq!(r["test"]["windows"], 256, "one window per test trajectory");
        let (m, naive) = (r["mse"].as_f64().unwrap(), r["naive_mse"].as_f64().unwrap());
        let bound = if phys { 0.5 } else { 1.0 };
        assert!(m < bound * naive, "phys {phys}: test MSE {m} vs naive {naive}");
        assert!(dir.join("forecast.svg").exists(), "eval plots forecasts against the truth");
        mse.push(m);
        let _ = std::fs::remove_dir_all(&dir);
    }
    eprintln!("Lotka-Volterra H=30: WARP-Phys test mse {:.4}, black-box (direct) {:.4}", mse[0], mse[1]);
    assert!(mse[0] < 0.7 * mse[1], "WARP-Phys {} is not clearly better than black-box WARP {}", mse[0], mse[1]);
}

#[test]
fn warp_phys_settings_are_checked() {
    let dir = tmp("phys-bad");
    let d = dir.to_str().unwrap();
    // direct mode cannot integrate from the held inputs
    let e = longmem(&["train", "--task", "msd", "--model", "warp", "--warp-phys", "--out", d]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("feedback"));
    let e = longmem(&["train", "--task", "adding", "--model", "warp", "--warp-phys", "--forecast-mode", "feedback", "--out", d]);
    assert!(!e.status.success());
}

fn mnist_dir() -> PathBuf {
    common::data_dir().join("mnist")
}

/// Image completion: the last 392 pixels of each test image from its first
/// 392, a short WARP run on 500 training images.
#[test]
fn mnist_completion_runs_end_to_end() {
    if !common::have("mnist_completion_runs_end_to_end", "MNIST", &mnist_dir().join("train-images-idx3-ubyte.gz"), "LONGMEM_DATA") {
        return;
    }
    let dir = tmp("completion");
    let d = dir.to_str().unwrap();
    ok(&longmem(&[
        "train", "--task", "mnist-completion", "--data", mnist_dir().to_str().unwrap(), "--model", "warp", "--hidden", "16", "--lookback", "392",
        "--steps", "200", "--batch", "16", "--lr", "1e-4", "--train-examples", "500", "--device", "cpu", "--quiet", "--out", d,
    ]));
    let cfg = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(cfg.contains("horizon = 392") && cfg.contains("seq_len = 783"), "{cfg}");
    let r: Value = serde_json::from_str(&ok(&longmem(&["eval", "--run", d, "--json"]))).unwrap();
    assert_eq!(r["test"]["windows"], 10_000);
    assert_eq!(r["valid"]["windows"], 5_000);
    let (m, naive) = (r["mse"].as_f64().unwrap(), r["naive_mse"].as_f64().unwrap());
    assert!(m < naive, "completion MSE {m} not below repeating the last given pixel ({naive})");
    assert!(dir.join("completion.svg").exists());
    let e = longmem(&["train", "--task", "mnist-completion", "--data", mnist_dir().to_str().unwrap(), "--lookback", "784", "--out", d]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("pixels given"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Gaussian NLL: the model predicts each channel's mean and sd; the
/// forecast is the means.
#[test]
fn gaussian_nll_forecaster_beats_the_naive_forecast() {
    if !have_data("gaussian_nll_forecaster_beats_the_naive_forecast") {
        return;
    }
    let dir = tmp("nll");
    let d = dir.to_str().unwrap();
    ok(&longmem(&[
        "train", "--task", "ett", "--data", etth1().to_str().unwrap(), "--model", "warp", "--theta0", "hyper", "--hidden", "8", "--lookback", "48",
        "--horizon", "24", "--steps", "300", "--batch", "16", "--lr", "1e-3", "--forecast-loss", "nll", "--device", "cpu", "--quiet", "--out", d,
    ]));
    let r: Value = serde_json::from_str(&ok(&longmem(&["eval", "--run", d, "--json"]))).unwrap();
    let (m, naive) = (r["mse"].as_f64().unwrap(), r["naive_mse"].as_f64().unwrap());
    assert!(m < 0.9 * naive, "NLL-trained test MSE {m} vs naive {naive}");
    let e = longmem(&["train", "--task", "adding", "--forecast-loss", "nll", "--out", d]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("forecasting"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// ETTh2's test months sit away from its training months: forecasting the
/// change from the last look-back row (--relative) is what beats the naive
/// forecast there. (At hidden 8, batch 16 and 300 steps the outcome hung on
/// the seed: one seed in four lost to the naive forecast, and an 8th-digit
/// change in the gradient norm flipped seed 0. This setting beat it by 5% or
/// more in 16 runs: seeds 0-9, and seeds 0 and 5-9 on the build before.)
#[test]
fn relative_forecasts_beat_the_naive_forecast_on_etth2() {
    let f = etth1().with_file_name("ETTh2.csv");
    if !f.exists() {
        assert!(std::env::var("LONGMEM_REQUIRE_DATA").as_deref() != Ok("1"), "no ETTh2 at {}", f.display());
        eprintln!("SKIPPED relative_forecasts_beat_the_naive_forecast_on_etth2: no data at {}", f.display());
        return;
    }
    let dir = tmp("relative");
    let d = dir.to_str().unwrap();
    ok(&longmem(&[
        "train", "--task", "ett", "--data", f.to_str().unwrap(), "--model", "warp", "--theta0", "hyper", "--hidden", "16", "--lookback", "48",
        "--horizon", "24", "--steps", "400", "--batch", "32", "--lr", "1e-3", "--relative", "--device", "cpu", "--quiet", "--out", d,
    ]));
    let r: Value = serde_json::from_str(&ok(&longmem(&["eval", "--run", d, "--json"]))).unwrap();
    let (m, naive) = (r["mse"].as_f64().unwrap(), r["naive_mse"].as_f64().unwrap());
    eprintln!("ETTh2 L=48 H=24 relative: test mse {m:.4} (naive {naive:.4})");
    assert!(m < naive, "relative test MSE {m} vs naive {naive}");
    // the forecast command works in the same frame
    let text = std::fs::read_to_string(&f).unwrap();
    let ctx = dir.join("context.csv");
    std::fs::write(&ctx, text.lines().take(101).collect::<Vec<_>>().join("\n")).unwrap();
    let csv = ok(&longmem(&["forecast", "--run", d, "--context", ctx.to_str().unwrap()]));
    assert_eq!(csv.lines().count(), 25);
    let _ = std::fs::remove_dir_all(&dir);
}

/// WARP's parallel (doubling) scan trains as the step scan does: the same
/// seeded run on the GPU both ways ends at the same test error; other
/// families refuse `--scan parallel`.
#[test]
fn parallel_scan_trains_like_the_step_scan() {
    let dir = tmp("parallel");
    let d = dir.to_str().unwrap();
    let e = longmem(&["train", "--task", "adding", "--model", "lstm", "--scan", "parallel", "--out", d]);
    assert!(!e.status.success() && String::from_utf8_lossy(&e.stderr).contains("warp"), "{}", String::from_utf8_lossy(&e.stderr));
    let Some(ctx) = longmem::gpu::testing::test_context("parallel_scan_trains_like_the_step_scan") else { return };
    let adapter = ctx.index.to_string();
    let mut mse = Vec::new();
    for scan in ["step", "parallel"] {
        let out = dir.join(scan);
        let o = out.to_str().unwrap();
        ok(&longmem(&[
            "train", "--task", "msd", "--model", "warp", "--hidden", "6", "--lookback", "12", "--horizon", "12", "--steps", "30", "--batch", "8",
            "--lr", "1e-3", "--seed", "5", "--scan", scan, "--device", "gpu", "--adapter", &adapter, "--quiet", "--out", o,
        ]));
        let r: Value = serde_json::from_str(&ok(&longmem(&["eval", "--run", o, "--json"]))).unwrap();
        mse.push(r["mse"].as_f64().unwrap());
    }
    eprintln!("test MSE: step {} parallel {}", mse[0], mse[1]);
    assert!(mse[0].is_finite() && ((mse[0] - mse[1]) / mse[0]).abs() < 1e-3, "step scan test MSE {} vs parallel {}", mse[0], mse[1]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fed-back training on the GPU: the same seeded msd run with teacher
/// forcing 0.5, black box and WARP-Phys, ends at the same test error on the
/// GPU as on the CPU.
#[test]
fn fed_back_training_on_the_gpu_matches_the_cpu() {
    let Some(ctx) = longmem::gpu::testing::test_context("fed_back_training_on_the_gpu_matches_the_cpu") else { return };
    let dir = tmp("fed-gpu");
    let adapter = ctx.index.to_string();
    for phys in [false, true] {
        let mut mse = Vec::new();
        for device in ["cpu", "gpu"] {
            let out = dir.join(format!("{device}-{phys}"));
            let o = out.to_str().unwrap();
            let mut args = vec![
                "train", "--task", "msd", "--model", "warp", "--theta0", "hyper", "--hidden", "6", "--lookback", "12", "--horizon", "12", "--steps", "30",
                "--batch", "8", "--lr", "1e-3", "--seed", "5", "--forecast-mode", "feedback", "--forcing", "0.5", "--device", device, "--quiet", "--out", o,
            ];
            if device == "gpu" {
                args.extend(["--adapter", &adapter]);
            }
            if phys {
                args.push("--warp-phys");
            }
            ok(&longmem(&args));
            let r: Value = serde_json::from_str(&ok(&longmem(&["eval", "--run", o, "--json"]))).unwrap();
            mse.push(r["mse"].as_f64().unwrap());
        }
        eprintln!("fed-back test MSE (phys {phys}): cpu {} gpu {}", mse[0], mse[1]);
        assert!(mse[0].is_finite() && ((mse[0] - mse[1]) / mse[0]).abs() < 1e-3, "phys {phys}: CPU test MSE {} vs GPU {}", mse[0], mse[1]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
