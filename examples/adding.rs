//! Train a tanh RNN on the adding problem through the library API, on the
//! device `auto` picks, and evaluate it: `cargo run --example adding`.

use longmem::config::TrainConfig;
use longmem::device::resolve;
use longmem::train::run::{evaluate, train_on, RunOptions};

fn main() -> anyhow::Result<()> {
    let cfg = TrainConfig { steps: 500, ..Default::default() };
    let engine = resolve("auto", None)?;
    let out = std::env::temp_dir().join(format!("longmem-example-adding-{}", std::process::id()));
    let summary = train_on(&cfg, &RunOptions { out: out.clone(), resume: false, verbose: true }, &engine)?;
    let report = evaluate(&out, &engine, 10, None)?;
    println!("trained {} steps on {}: train loss {:.4}, eval loss {:.4}, baseline {:.4}", summary.steps, summary.device, summary.final_loss, report.loss, report.baseline_loss);
    println!("run directory: {}", out.display());
    Ok(())
}
