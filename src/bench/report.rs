//! bench.json, bench.md and bench.svg, and `--compare`.

use super::run::{CaseResult, Report};
use super::{Case, SCHEMA};
use crate::train::checkpoint::write_atomic;
use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

pub const JSON_FILE: &str = "bench.json";
pub const MARKDOWN_FILE: &str = "bench.md";
pub const PLOT_FILE: &str = "bench.svg";

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    utc(secs)
}

/// Seconds since the epoch as a UTC date-time (civil-from-days).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.1} ")
    }
}

fn bytes(v: u64) -> String {
    let f = v as f64;
    if f >= 1073741824.0 {
        format!("{:.2} GiB", f / 1073741824.0)
    } else if f >= 1048576.0 {
        format!("{:.1} MiB", f / 1048576.0)
    } else {
        format!("{:.0} KiB", f / 1024.0)
    }
}

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {} on {} ({}, {})\n", r.tool, r.device.name, r.device.backend, r.device.device_type);
    let _ = writeln!(
        s,
        "Suite version {}{}, {} timed runs per case, GPU scan {}, created {}, commit {}. Host: {} ({} cores, {}).\n",
        r.suite_version,
        if r.in_suite { "" } else { " (a custom selection)" },
        r.reps,
        format!("{:?}", r.scan).to_lowercase(),
        r.created,
        r.commit.as_deref().unwrap_or("unknown"),
        r.host.cpu,
        r.host.cores,
        r.host.os
    );
    if let Some(c) = &r.ceilings {
        let _ = writeln!(s, "Ceilings measured in this run: copy bandwidth {:.1} GB/s; GEMM {:.1} GFLOP/s ({}, n = {}).\n", c.bandwidth_gb_s, c.gemm_gflops, c.gemm_kernel, c.gemm_n);
    }
    let _ = writeln!(s, "| model | H | B | T | mode | tokens/s | GFLOP/s | of GEMM peak | median s | spread s | timing | memory |");
    let _ = writeln!(s, "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|");
    for c in &r.cases {
        let k = &c.case;
        if c.status != "ok" {
            let _ = writeln!(s, "| {} | {} | {} | {} | {} | {} | | | | | {} | |", k.model, k.hidden, k.batch, k.seq_len, k.mode.name(), c.status, c.note.as_deref().unwrap_or("").replace('|', "/"));
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.2} | {} | {:.4} | {:.4} | {} | {} |",
            k.model,
            k.hidden,
            k.batch,
            k.seq_len,
            k.mode.name(),
            si(c.tokens_per_s.unwrap_or(0.0)),
            c.gflops.unwrap_or(0.0),
            c.fraction_of_peak.map(|f| format!("{:.1}%", 100.0 * f)).unwrap_or_default(),
            c.median_s.unwrap_or(0.0),
            c.spread_s.unwrap_or(0.0),
            c.timing,
            c.memory_bytes.map(bytes).unwrap_or_default()
        );
    }
    s
}

/// One bar per case that ran: tokens/s on a log scale, coloured by mode.
pub fn svg(path: &Path, r: &Report) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    let ok: Vec<&CaseResult> = r.cases.iter().filter(|c| c.status == "ok" && c.tokens_per_s.is_some_and(|t| t > 0.0)).collect();
    if ok.is_empty() {
        return Ok(());
    }
    let tps = |c: &CaseResult| c.tokens_per_s.unwrap_or(1.0);
    let lo = ok.iter().map(|c| tps(c)).fold(f64::MAX, f64::min) / 3.0;
    let hi = ok.iter().map(|c| tps(c)).fold(f64::MIN, f64::max) * 3.0;
    let n = ok.len();
    let root = SVGBackend::new(path, (1000, (120 + 22 * n) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!("{}: {} ({})", r.tool, r.device.name, r.device.backend);
    let labels: Vec<String> = ok.iter().map(|c| c.case.label()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(260)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..n as f64)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - i as f64 - 0.5).abs() < 1e-6 && i < n {
                labels[n - 1 - i].clone()
            } else {
                String::new()
            }
        })
        .x_desc("tokens / s")
        .draw()
        .map_err(|e| err(&e))?;
    let colour = |m: super::Mode| match m {
        super::Mode::Forward => crate::plot::TAB10[0],
        super::Mode::Train => crate::plot::TAB10[1],
        super::Mode::Lyapunov => crate::plot::TAB10[2],
    };
    for (i, c) in ok.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new([(lo, y + 0.15), (tps(c), y + 0.85)], colour(c.case.mode).filled())))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Write bench.json, bench.md and bench.svg into `dir`.
pub fn write(dir: &Path, r: &Report) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(&dir.join(JSON_FILE), serde_json::to_string_pretty(r)?.as_bytes())?;
    write_atomic(&dir.join(MARKDOWN_FILE), markdown(r).as_bytes())?;
    svg(&dir.join(PLOT_FILE), r)
}

/// Read a report (bench.json, or a directory holding one).
pub fn load(path: &Path) -> Result<Report> {
    let file = if path.is_dir() { path.join(JSON_FILE) } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let r: Report = serde_json::from_str(&text).with_context(|| format!("{} is not a bench report", file.display()))?;
    if r.schema != SCHEMA {
        bail!("{}: schema '{}', this longmem reads '{SCHEMA}'", file.display(), r.schema);
    }
    Ok(r)
}

fn label(r: &Report) -> String {
    format!("{} on {}", r.tool, r.device.name)
}

/// Case-by-case tokens/s of several reports, each as a ratio to the first.
pub fn compare(reports: &[Report]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Ratios are tokens/s over those of report 1 (above 1: faster).\n");
    for (i, r) in reports.iter().enumerate() {
        let _ = writeln!(s, "{}. {} ({}, suite {}, {})", i + 1, label(r), r.device.backend, r.suite_version, r.created);
    }
    if let Some(v) = reports.iter().map(|r| r.suite_version).find(|&v| v != reports[0].suite_version) {
        let _ = writeln!(s, "\nnote: suite versions differ ({} and {v}); cases with the same name are compared all the same", reports[0].suite_version);
    }
    let mut keys: Vec<Case> = Vec::new();
    let maps: Vec<BTreeMap<Case, &CaseResult>> = reports.iter().map(|r| r.cases.iter().map(|c| (c.case.clone(), c)).collect()).collect();
    for r in reports {
        for c in &r.cases {
            if !keys.contains(&c.case) {
                keys.push(c.case.clone());
            }
        }
    }
    let _ = write!(s, "\n| case |");
    for i in 0..reports.len() {
        let _ = write!(s, " {} tokens/s |", i + 1);
        if i > 0 {
            let _ = write!(s, " {}/1 |", i + 1);
        }
    }
    let _ = write!(s, "\n|---|");
    for i in 0..reports.len() {
        let _ = write!(s, "---:|{}", if i > 0 { "---:|" } else { "" });
    }
    let _ = writeln!(s);
    for k in &keys {
        let _ = write!(s, "| {} |", k.label());
        let base = maps[0].get(k).and_then(|c| c.tokens_per_s);
        for (i, m) in maps.iter().enumerate() {
            let v = m.get(k).and_then(|c| c.tokens_per_s);
            let cell = match (m.get(k), v) {
                (_, Some(v)) => si(v),
                (Some(c), None) => c.status.clone(),
                (None, None) => "-".into(),
            };
            let _ = write!(s, " {cell} |");
            if i > 0 {
                let ratio = match (base, v) {
                    (Some(b), Some(v)) if b > 0.0 => format!("{:.2}", v / b),
                    _ => String::new(),
                };
                let _ = write!(s, " {ratio} |");
            }
        }
        let _ = writeln!(s);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_796_169_600 + 3_723), "2026-12-02T01:02:03Z");
    }
}
