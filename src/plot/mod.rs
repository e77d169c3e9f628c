//! SVG plots of a run (plotters, no system fonts needed for SVG output).

use crate::analysis::eigs::EigRecord;
use crate::train::metrics::MetricsLine;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

pub mod forecast;
pub use forecast::{completion_svg, forecast_svg, ForecastPanel};

/// loss.svg: training loss against step, with the task's baseline.
pub fn loss_svg(path: &Path, lines: &[MetricsLine], title: &str) -> Result<()> {
    let lines: Vec<MetricsLine> = lines.iter().filter(|l| l.is_training()).cloned().collect();
    let lines = &lines[..];
    if lines.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let max_step = lines.iter().map(|l| l.step).max().unwrap_or(1).max(1) as f64;
    let finite = lines.iter().map(|l| l.loss).filter(|x| x.is_finite());
    let mut y_max = finite.fold(0.0f64, f64::max);
    if let Some(b) = lines[0].baseline_loss {
        y_max = y_max.max(b);
    }
    let y_max = if y_max > 0.0 { y_max * 1.05 } else { 1.0 };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_step, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("step").y_desc("loss").draw().map_err(|e| err(&e))?;
    let pts: Vec<(f64, f64)> = lines.iter().filter(|l| l.loss.is_finite()).map(|l| (l.step as f64, l.loss)).collect();
    chart
        .draw_series(LineSeries::new(pts, BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("training loss")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if let Some(b) = lines[0].baseline_loss {
        chart
            .draw_series(LineSeries::new(vec![(0.0, b), (max_step, b)], RED.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label("memoryless baseline")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Colour ramp for training progress `t` in [0, 1]: light blue, purple, dark red.
fn step_colour(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 3] = [(150.0, 200.0, 245.0), (120.0, 60.0, 170.0), (150.0, 0.0, 25.0)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let (a, b, f) = if t < 0.5 { (STOPS[0], STOPS[1], t * 2.0) } else { (STOPS[1], STOPS[2], t * 2.0 - 1.0) };
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// At most `max` records, evenly spaced, always the first and the last.
fn thin_records(records: &[EigRecord], max: usize) -> Vec<&EigRecord> {
    if records.len() <= max {
        return records.iter().collect();
    }
    let last = records.len() - 1;
    let mut idx: Vec<usize> = (0..max).map(|k| (k * last + (max - 1) / 2) / (max - 1)).collect();
    idx.dedup();
    idx.into_iter().map(|i| &records[i]).collect()
}

/// eigs.svg: every record's eigenvalues in the complex plane, coloured by training step (early = light/blue, late = dark/red, a continuous colour ramp), the unit circle drawn, and the targets (e.g. [λ,0] or λe^{±iω}) marked with a distinct large marker (e.g. black crosses). Axes from -1.1 to 1.1 both, equal aspect (square plot area), labels "Re λ", "Im λ", a caption `title`.
///
/// The axes grow (still square and centred) when an eigenvalue or target lies
/// outside ±1.1; non-finite values are skipped; with more than 400 records,
/// 400 evenly spaced ones (first and last included) are drawn.
pub fn eigs_svg(path: &Path, records: &[EigRecord], targets: &[[f64; 2]], title: &str) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    let finite = |z: &[f64; 2]| z[0].is_finite() && z[1].is_finite();
    let records = thin_records(records, 400);
    let extent = records
        .iter()
        .flat_map(|r| r.eigs.iter())
        .chain(targets)
        .filter(|z| finite(z))
        .map(|z| z[0].abs().max(z[1].abs()))
        .fold(0.0f64, f64::max);
    let lim = if extent > 1.1 { (extent * 1.05).min(1e6) } else { 1.1 };

    let (width, height) = (720u32, 760u32);
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let area = root.titled(title, ("sans-serif", 20)).map_err(|e| err(&e))?;
    // square plotting area: share out what the labels leave
    let (aw, ah) = area.dim_in_pixel();
    let (x_label, y_label, pad) = (45u32, 55u32, 15u32);
    let side = aw.saturating_sub(y_label + 2 * pad).min(ah.saturating_sub(x_label + 2 * pad)).max(10);
    let (mx, my) = (aw.saturating_sub(y_label + side), ah.saturating_sub(x_label + side));
    // "0.0", never "-0.0"
    let tick = |v: &f64| format!("{:.1}", if v.abs() < 1e-9 * lim { 0.0 } else { *v });
    let mut chart = ChartBuilder::on(&area)
        .margin_left(mx / 2)
        .margin_right(mx - mx / 2)
        .margin_top(my / 2)
        .margin_bottom(my - my / 2)
        .x_label_area_size(x_label)
        .y_label_area_size(y_label)
        .build_cartesian_2d(-lim..lim, -lim..lim)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("Re λ")
        .y_desc("Im λ")
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(|e| err(&e))?;
    let circle: Vec<(f64, f64)> = (0..=360).map(|k| (k as f64).to_radians()).map(|a| (a.cos(), a.sin())).collect();
    chart
        .draw_series(LineSeries::new(circle, BLACK.mix(0.5).stroke_width(1)))
        .map_err(|e| err(&e))?
        .label("unit circle")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.5)));

    let first = records[0].step as f64;
    let last = records[records.len() - 1].step as f64;
    let (lo, hi) = records.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| (lo.min(r.step as f64), hi.max(r.step as f64)));
    let progress = |step: u64| if hi > lo { (step as f64 - lo) / (hi - lo) } else { 1.0 };
    // early records first so the late ones are on top
    let mut order: Vec<&EigRecord> = records.clone();
    order.sort_by_key(|r| r.step);
    for r in &order {
        let colour = step_colour(progress(r.step));
        let pts = r.eigs.iter().filter(|z| finite(z)).map(|z| Circle::new((z[0], z[1]), 2, colour.filled()));
        chart.draw_series(pts).map_err(|e| err(&e))?;
    }
    // legend entries for the ramp's two ends
    let (c0, c1) = (step_colour(progress(records[0].step)), step_colour(progress(records[records.len() - 1].step)));
    chart
        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
        .map_err(|e| err(&e))?
        .label(format!("step {first}"))
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, c0.filled()));
    if records.len() > 1 {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(|e| err(&e))?
            .label(format!("step {last}"))
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, c1.filled()));
    }
    if targets.iter().any(finite) {
        chart
            .draw_series(targets.iter().filter(|z| finite(z)).map(|z| Cross::new((z[0], z[1]), 9, BLACK.stroke_width(2))))
            .map_err(|e| err(&e))?
            .label("target")
            .legend(|(x, y)| Cross::new((x + 10, y), 6, BLACK.stroke_width(2)));
        // the final eigenvalues on top of the crosses, so a converged
        // outlier shows where it landed
        let fin = order[order.len() - 1];
        let colour = step_colour(progress(fin.step));
        let pts = fin.eigs.iter().filter(|z| finite(z)).map(|z| Circle::new((z[0], z[1]), 4, colour.filled()));
        chart.draw_series(pts).map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// outlier.svg: two panels stacked (top: modulus |λ1| of the leading eigenvalue against step, with the target modulus as a horizontal dashed/red line; bottom: phase arg λ1 (use the leading eigenvalue with im >= 0 when it is a complex pair) against step, with the target phase as a line when given). Caption `title`.
///
/// Records without eigenvalues or with non-finite ones are skipped; a
/// non-finite `target_modulus` / `target_phase` is not drawn.
pub fn outlier_svg(path: &Path, records: &[EigRecord], target_modulus: f64, target_phase: Option<f64>, title: &str) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    // (step, |λ1|, arg λ1); arg taken on the im >= 0 member of a pair
    let mut pts: Vec<(f64, f64, f64)> = records
        .iter()
        .filter_map(|r| {
            let z = *r.eigs.first()?;
            if !(z[0].is_finite() && z[1].is_finite()) {
                return None;
            }
            let im = if r.eigs.iter().any(|w| w[0] == z[0] && w[1] == -z[1]) { z[1].abs() } else { z[1] };
            Some((r.step as f64, z[0].hypot(z[1]), im.atan2(z[0])))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (x_lo, x_hi) = match (pts.first(), pts.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (a.0, b.0),
        (Some(a), _) => ((a.0 - 5.0).max(0.0), (a.0 - 5.0).max(0.0) + 10.0),
        _ => {
            let s = records.iter().map(|r| r.step).max().unwrap_or(0) as f64;
            ((s - 5.0).max(0.0), (s - 5.0).max(0.0) + 10.0)
        }
    };
    let range = |vals: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = vals.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        if !lo.is_finite() {
            return (-1.0, 1.0);
        }
        let pad = ((hi - lo) * 0.08).max(0.02 * hi.abs().max(lo.abs()).max(0.5));
        (lo - pad, hi + pad)
    };
    let target_modulus = Some(target_modulus).filter(|m| m.is_finite());
    let target_phase = target_phase.filter(|p| p.is_finite());
    let (m_lo, m_hi) = range(&mut pts.iter().map(|p| p.1).chain(target_modulus));
    let (p_lo, p_hi) = range(&mut pts.iter().map(|p| p.2).chain(target_phase));

    let root = SVGBackend::new(path, (800, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let area = root.titled(title, ("sans-serif", 20)).map_err(|e| err(&e))?;
    let panels = area.split_evenly((2, 1));
    let specs = [
        ("|λ1|", (m_lo, m_hi), target_modulus, "target modulus", 1usize),
        ("arg λ1 (rad)", (p_lo, p_hi), target_phase, "target phase", 2usize),
    ];
    for (panel, (desc, (lo, hi), target, target_label, which)) in panels.iter().zip(specs) {
        let mut chart = ChartBuilder::on(panel)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(65)
            .build_cartesian_2d(x_lo..x_hi, lo..hi)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(desc)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| err(&e))?;
        let series: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, if which == 1 { p.1 } else { p.2 })).collect();
        chart
            .draw_series(LineSeries::new(series.clone(), BLUE.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(if which == 1 { "|λ1| (leading eigenvalue)" } else { "arg λ1" })
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        if series.len() <= 100 {
            chart.draw_series(series.iter().map(|&p| Circle::new(p, 3, BLUE.filled()))).map_err(|e| err(&e))?;
        }
        if let Some(t) = target {
            chart
                .draw_series(DashedLineSeries::new(vec![(x_lo, t), (x_hi, t)], 8, 5, RED.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(target_label)
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// lyapunov.svg: the spectrum against exponent index (top) and the running
/// estimate of λ₁ against accumulated steps (bottom).
pub fn lyapunov_svg(path: &Path, spec: &crate::lyapunov::Spectrum, title: &str) -> Result<()> {
    if spec.exponents.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    let root = SVGBackend::new(path, (800, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(400);
    let span = |vals: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = vals.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo.is_finite() { (lo.min(0.0), hi.max(0.0)) } else { (-1.0, 1.0) };
        let pad = ((hi - lo) * 0.08).max(1e-3);
        (lo - pad, hi + pad)
    };
    let k = spec.exponents.len();
    let (lo, hi) = span(&mut spec.exponents.iter().cloned());
    let mut chart = ChartBuilder::on(&top)
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5..(k as f64 + 0.5), lo..hi)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("index i").y_desc("λ_i (nats/step)").draw().map_err(|e| err(&e))?;
    chart.draw_series(LineSeries::new(vec![(0.5, 0.0), (k as f64 + 0.5, 0.0)], BLACK.mix(0.4))).map_err(|e| err(&e))?;
    chart
        .draw_series(spec.exponents.iter().enumerate().map(|(i, &v)| Circle::new(((i + 1) as f64, v), 3, BLUE.filled())))
        .map_err(|e| err(&e))?;
    let pts: Vec<(f64, f64)> = spec.running_lambda1.iter().map(|&(s, v)| (s as f64, v)).filter(|p| p.1.is_finite()).collect();
    if !pts.is_empty() {
        let (lo, hi) = span(&mut pts.iter().map(|p| p.1));
        let x_hi = pts.last().map(|p| p.0).unwrap_or(1.0).max(1.0);
        let mut chart = ChartBuilder::on(&bottom)
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_hi, lo..hi)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("accumulated steps").y_desc("running λ₁").draw().map_err(|e| err(&e))?;
        chart.draw_series(LineSeries::new(pts, BLUE.stroke_width(2))).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// floss.svg: the flossing loss (mean λ² over the flossed exponents) at the
/// logged flossing updates, on a log scale, against the flossing update count.
pub fn floss_svg(path: &Path, lines: &[MetricsLine], title: &str) -> Result<()> {
    let pts: Vec<(f64, f64)> = lines
        .iter()
        .filter(|l| !l.is_training())
        .filter_map(|l| Some((l.floss_updates? as f64, l.loss)))
        .filter(|p| p.1.is_finite() && p.1 > 0.0)
        .collect();
    if pts.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let x_hi = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min) * 0.5;
    let hi = pts.iter().map(|p| p.1).fold(0.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_hi, (lo..hi).log_scale())
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("flossing updates").y_desc("mean λ² (flossed exponents)").draw().map_err(|e| err(&e))?;
    chart.draw_series(LineSeries::new(pts.clone(), BLUE.stroke_width(2))).map_err(|e| err(&e))?;
    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, BLUE.filled()))).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Language-model curves: training and validation loss (nats per token) against step.
pub fn lm_svg(path: &Path, train: &[(f64, f64)], valid: &[(f64, f64)]) -> Result<()> {
    if train.is_empty() && valid.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let all = train.iter().chain(valid).filter(|p| p.1.is_finite());
    let max_step = all.clone().map(|p| p.0).fold(1.0f64, f64::max);
    let y_max = all.clone().map(|p| p.1).fold(0.0f64, f64::max).max(1e-3) * 1.05;
    let y_min = all.map(|p| p.1).fold(f64::INFINITY, f64::min).min(y_max) * 0.95;
    let mut chart = ChartBuilder::on(&root)
        .caption("language model: nats per token (perplexity = exp)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_step, y_min..y_max)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("step").y_desc("cross-entropy").draw().map_err(|e| err(&e))?;
    let finite = |v: &[(f64, f64)]| v.iter().copied().filter(|p| p.1.is_finite()).collect::<Vec<_>>();
    chart
        .draw_series(LineSeries::new(finite(train), BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("training")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(finite(valid), RED.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Ten colours that stay apart on white (matplotlib's "tab10").
pub const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Several runs' training-loss curves on one chart (`longmem plot`), with
/// the first run's baseline when its task has one. `runs`: (label, lines).
pub fn compare_svg(path: &Path, runs: &[(String, Vec<MetricsLine>)], title: &str) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    let curves: Vec<(&String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|(name, lines)| (name, lines.iter().filter(|l| l.is_training() && l.loss.is_finite()).map(|l| (l.step as f64, l.loss)).collect()))
        .collect();
    let max_step = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.0)).fold(1.0f64, f64::max);
    let baseline = runs.iter().find_map(|(_, l)| l.first().and_then(|l| l.baseline_loss));
    let y_max = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1)).chain(baseline).fold(0.0f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.05 } else { 1.0 };
    let root = SVGBackend::new(path, (900, 550)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_step, 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("step").y_desc("training loss").draw().map_err(|e| err(&e))?;
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let colour = TAB10[i % TAB10.len()];
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    if let Some(b) = baseline {
        chart
            .draw_series(LineSeries::new(vec![(0.0, b), (max_step, b)], BLACK.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label("memoryless baseline")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic(n_steps: u64) -> Vec<EigRecord> {
        (0..n_steps)
            .map(|k| {
                let t = if n_steps > 1 { k as f64 / (n_steps - 1) as f64 } else { 1.0 };
                let (r, th) = (0.3 + 0.65 * t, 0.2 + 0.3 * t);
                let mut eigs = vec![[r * th.cos(), r * th.sin()], [r * th.cos(), -r * th.sin()]];
                for j in 0..12 {
                    let a = j as f64 * 0.5 + k as f64 * 0.1;
                    eigs.push([0.25 * a.cos(), 0.25 * a.sin()]);
                }
                EigRecord { step: k * 100, eigs, align_u: 0.5, align_v: 0.5 }
            })
            .collect()
    }

    #[test]
    fn eig_plots_write_svg() {
        let dir = std::env::temp_dir().join(format!("longmem-plot-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let targets = [[0.95 * 0.5f64.cos(), 0.95 * 0.5f64.sin()], [0.95 * 0.5f64.cos(), -0.95 * 0.5f64.sin()]];
        for (name, recs) in [("many", synthetic(8)), ("one", synthetic(1))] {
            let e = dir.join(format!("eigs-{name}.svg"));
            let o = dir.join(format!("outlier-{name}.svg"));
            eigs_svg(&e, &recs, &targets, "eigenvalues of W").unwrap();
            outlier_svg(&o, &recs, 0.95, Some(0.5), "leading eigenvalue").unwrap();
            for p in [&e, &o] {
                let s = std::fs::read_to_string(p).unwrap();
                assert!(s.starts_with("<svg") || s.starts_with("<?xml"), "{}", p.display());
                assert!(s.len() > 2000, "{}: {} bytes", p.display(), s.len());
                assert!(s.contains("<circle"), "{}", p.display());
            }
        }
        // empty: nothing written
        let e = dir.join("eigs-empty.svg");
        eigs_svg(&e, &[], &targets, "x").unwrap();
        outlier_svg(&dir.join("outlier-empty.svg"), &[], 0.9, None, "x").unwrap();
        assert!(!e.exists() && !dir.join("outlier-empty.svg").exists());
        // no targets, no phase
        outlier_svg(&dir.join("outlier-nophase.svg"), &synthetic(3), f64::NAN, None, "x").unwrap();
        eigs_svg(&dir.join("eigs-notarget.svg"), &synthetic(3), &[], "x").unwrap();
        if std::env::var_os("LONGMEM_KEEP_PLOTS").is_none() {
            std::fs::remove_dir_all(&dir).unwrap();
        } else {
            eprintln!("plots kept in {}", dir.display());
        }
    }
}

