//! `longmem bench`: the flags, progress lines, and `--compare`.

use anyhow::{bail, Result};
use clap::Args;
use longmem::bench::report;
use longmem::bench::run::{run_suite, BenchOptions, CaseResult};
use longmem::bench::{parse_list, parse_sizes, Mode, Selection};
use longmem::models::{ModelKind, ScanMode};
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchArgs {
    /// print case-by-case ratios of these reports (bench.json files or their directories) instead of running
    #[arg(long, num_args = 2.., value_name = "REPORT")]
    compare: Vec<PathBuf>,
    /// a one-minute subset: rnn and lstm at H = 128, B = 32, T = 256, and one Lyapunov case
    #[arg(long)]
    quick: bool,
    /// families, comma-separated (default: rnn,lstm,gru,scrn,urnn)
    #[arg(long)]
    models: Option<String>,
    /// hidden sizes (default 128,256,512,1024)
    #[arg(long)]
    hidden: Option<String>,
    /// batch sizes (default 1,32,256)
    #[arg(long)]
    batch: Option<String>,
    /// sequence lengths, also the Lyapunov steps (default 256,1024)
    #[arg(long)]
    seq_len: Option<String>,
    /// forward, train, lyapunov (default all three)
    #[arg(long)]
    modes: Option<String>,
    /// Lyapunov state sizes N, k = N (default 128,512)
    #[arg(long)]
    lyapunov_hidden: Option<String>,
    /// Lyapunov trajectories (default 1,32)
    #[arg(long)]
    lyapunov_batch: Option<String>,
    /// timed runs per case after the warm-up
    #[arg(long, default_value_t = 5)]
    reps: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// stop repeating a case after this long; skip a case that would take longer even at the GEMM ceiling
    #[arg(long, default_value_t = 30.0)]
    max_case_seconds: f64,
    /// do not measure the copy and GEMM ceilings
    #[arg(long)]
    no_ceilings: bool,
    /// the GPU recurrent kernel: auto | persistent | step | parallel (WARP only)
    #[arg(long, default_value = "auto")]
    scan: String,
    #[command(flatten)]
    dev: crate::DeviceArgs,
    /// where bench.json, bench.md and bench.svg go (default runs/bench-<time>)
    #[arg(long)]
    out: Option<PathBuf>,
    /// print the report as JSON on stdout
    #[arg(long)]
    json: bool,
}

fn selection(a: &BenchArgs) -> Result<Selection> {
    let mut s = if a.quick { Selection::quick() } else { Selection::full() };
    if let Some(m) = &a.models {
        s.models = parse_list(m, ModelKind::parse)?;
    }
    for (flag, val, list) in [
        ("--hidden", &a.hidden, &mut s.hidden),
        ("--batch", &a.batch, &mut s.batch),
        ("--seq-len", &a.seq_len, &mut s.seq_len),
        ("--lyapunov-hidden", &a.lyapunov_hidden, &mut s.lyapunov_hidden),
        ("--lyapunov-batch", &a.lyapunov_batch, &mut s.lyapunov_batch),
    ] {
        if let Some(v) = val {
            *list = parse_sizes(flag, v)?;
        }
    }
    if let Some(m) = &a.modes {
        s.modes = parse_list(m, Mode::parse)?;
    }
    s.validate()?;
    Ok(s)
}

fn line(c: &CaseResult) -> String {
    match (c.status.as_str(), c.tokens_per_s) {
        ("ok", Some(t)) => format!(
            "{}: {:.0} tokens/s, {:.2} GFLOP/s (median {:.4} s, spread {:.4} s, {} runs, {})",
            c.case.label(),
            t,
            c.gflops.unwrap_or(0.0),
            c.median_s.unwrap_or(0.0),
            c.spread_s.unwrap_or(0.0),
            c.reps,
            c.timing
        ),
        (status, _) => format!("{}: {status}: {}", c.case.label(), c.note.as_deref().unwrap_or("")),
    }
}

pub fn bench(a: BenchArgs) -> Result<()> {
    if !a.compare.is_empty() {
        let reports = a.compare.iter().map(|p| report::load(p)).collect::<Result<Vec<_>>>()?;
        print!("{}", report::compare(&reports));
        return Ok(());
    }
    if a.reps == 0 {
        bail!("--reps must be at least 1");
    }
    // NaN fails this too
    if a.max_case_seconds.is_nan() || a.max_case_seconds <= 0.0 {
        bail!("--max-case-seconds must be positive");
    }
    let sel = selection(&a)?;
    let scan = ScanMode::parse(&a.scan)?;
    if scan == ScanMode::Parallel && sel.models.iter().any(|&m| m != ModelKind::Warp) {
        bail!("--scan parallel is implemented for WARP only: pass --models warp");
    }
    let engine = a.dev.resolve()?;
    let out = a.out.clone().unwrap_or_else(|| longmem::rundir::fresh("bench"));
    eprintln!("bench on {} ({} cases)", engine.describe(), sel.cases().len());
    let opts = BenchOptions { reps: a.reps, warmup: a.warmup, max_case_s: a.max_case_seconds, measure_ceilings: !a.no_ceilings, scan };
    let rep = run_suite(&engine, &sel, &opts, |i, n, c| eprintln!("[{i}/{n}] {}", line(c)))?;
    if let Some(c) = &rep.ceilings {
        eprintln!("ceilings: copy {:.1} GB/s, GEMM {:.1} GFLOP/s ({}, n = {})", c.bandwidth_gb_s, c.gemm_gflops, c.gemm_kernel, c.gemm_n);
    }
    report::write(&out, &rep)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", report::markdown(&rep));
        println!("\nwritten: {}", out.join(report::JSON_FILE).display());
    }
    let failed = rep.cases.iter().filter(|c| c.status == "failed").count();
    if failed > 0 {
        bail!("{failed} of {} cases failed (see the report)", rep.cases.len());
    }
    Ok(())
}
