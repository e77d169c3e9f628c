//! The linear-RNN study on the oscillator filter: watch an outlier eigenvalue of W
//! grow out of the bulk to the filter's timescale.
//! `cargo run --release --example filter_oscillator`, then open the run's eigs.svg,
//! outlier.svg and loss.svg.

use longmem::config::TrainConfig;
use longmem::tasks::FilterKind;
use longmem::train::run::{train, RunOptions};

fn main() -> anyhow::Result<()> {
    let cfg = TrainConfig::study(FilterKind::Oscillator);
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let out = std::path::PathBuf::from("runs").join(format!("example-filter-oscillator-{secs}"));
    train(&cfg, &RunOptions { out: out.clone(), resume: false, verbose: true })?;
    println!("plots: {}/{{eigs,outlier,loss}}.svg", out.display());
    Ok(())
}
