//! The ETT forecasting table: WARP (and an LSTM for comparison) on ETTh1
//! and ETTh2, horizons 96/192/336/720 from a 96-step look-back, test MSE and
//! MAE on the standardised scale beside the naive last-value forecast.
//!
//! `cargo run --release --example ett_table -- [DATA_DIR] [OUT_DIR] [STEPS] [DEVICE] [mse|nll] [relative|absolute]`
//! (defaults: ../shared/data/ett, runs/ett-table, 800, auto, mse, relative:
//! each window forecast relative to its last look-back row). Writes one run
//! directory per row, `table.md` and `table.json` in OUT_DIR.

use longmem::config::TrainConfig;
use longmem::device::resolve;
use longmem::models::warp::Theta0;
use longmem::models::ModelKind;
use longmem::tasks::ett::ForecastLoss;
use longmem::tasks::TaskKind;
use longmem::train::forecast::evaluate;
use longmem::train::run::{train_on, RunOptions};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(args.get(1).cloned().unwrap_or_else(|| "../shared/data/ett".into()));
    let out = PathBuf::from(args.get(2).cloned().unwrap_or_else(|| "runs/ett-table".into()));
    let steps: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(800);
    let engine = resolve(args.get(4).map(String::as_str).unwrap_or("auto"), None)?;
    let loss = ForecastLoss::parse(args.get(5).map(String::as_str).unwrap_or("mse"))?;
    let relative = match args.get(6).map(String::as_str).unwrap_or("relative") {
        "relative" => true,
        "absolute" => false,
        other => anyhow::bail!("expected relative or absolute, got {other}"),
    };
    std::fs::create_dir_all(&out)?;
    let models: [(&str, ModelKind, usize); 2] = [("warp", ModelKind::Warp, 16), ("lstm", ModelKind::Lstm, 64)];
    let mut rows = Vec::new();
    let mut md = String::from("| data | horizon | model | loss | test MSE | test MAE | naive MSE | naive MAE | steps |\n|---|---|---|---|---|---|---|---|---|\n");
    for file in ["ETTh1", "ETTh2"] {
        for horizon in [96, 192, 336, 720] {
            for (name, kind, hidden) in models {
                let dir = out.join(format!("{file}-{horizon}-{name}"));
                let cfg = TrainConfig {
                    task: TaskKind::Ett,
                    data: Some(data.join(format!("{file}.csv")).to_string_lossy().into_owned()),
                    model: kind,
                    hidden,
                    theta0: Theta0::Hyper,
                    forecast_loss: loss,
                    relative,
                    lookback: 96,
                    horizon,
                    batch: 32,
                    steps,
                    // a dense A over 815 steps runs away at 1e-3 (the gradient norm overflows within a few steps)
                    lr: if kind == ModelKind::Warp && horizon > 400 { 2e-4 } else { 1e-3 },
                    log_every: 100,
                    checkpoint_every: steps,
                    ..Default::default()
                };
                let t0 = std::time::Instant::now();
                if !dir.join("checkpoint.safetensors").exists() {
                    let _ = std::fs::remove_dir_all(&dir);
                    if let Err(e) = train_on(&cfg, &RunOptions { out: dir.clone(), resume: false, verbose: true }, &engine) {
                        println!("{file} H={horizon} {name}: training failed: {e:#}");
                                md.push_str(&format!("| {file} | {horizon} | {name}-{hidden} | {loss:?} | failed: {e} | | | | {steps} |\n"));
                        continue;
                    }
                }
                let secs = t0.elapsed().as_secs_f64();
                let cfg = TrainConfig::load(&dir.join("config.toml"))?;
                let r = evaluate(&dir, &cfg)?;
                println!("{file} H={horizon} {name}: test mse {:.4} mae {:.4} (naive {:.4} / {:.4})", r.mse, r.mae, r.naive_mse, r.naive_mae);
                md.push_str(&format!(
                    "| {file} | {horizon} | {name}-{hidden} | {loss:?} | {:.3} | {:.3} | {:.3} | {:.3} | {steps} |\n",
                    r.mse, r.mae, r.naive_mse, r.naive_mae
                ));
                rows.push(serde_json::json!({ "data": file, "horizon": horizon, "model": name, "hidden": hidden, "eval": r, "seconds": secs, "device": engine.describe() }));
            }
        }
    }
    std::fs::write(out.join("table.md"), &md)?;
    std::fs::write(out.join("table.json"), serde_json::to_string_pretty(&rows)?)?;
    println!("{md}");
    Ok(())
}
