//! SVG plots of a run (plotters, no system fonts needed for SVG output).

use crate::train::metrics::MetricsLine;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// loss.svg: training loss against step, with the task's baseline.
pub fn loss_svg(path: &Path, lines: &[MetricsLine], title: &str) -> Result<()> {
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
