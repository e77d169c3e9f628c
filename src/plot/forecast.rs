//! Forecasts against the truth: series panels (forecast.svg) and, for
//! image completion, the images themselves (completion.svg).

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

/// One panel of forecast.svg: a channel's true series over look-back and
/// horizon, and the forecast over the horizon.
pub struct ForecastPanel {
    pub label: String,
    pub truth: Vec<f32>,
    pub forecast: Vec<f32>,
    pub lookback: usize,
}

/// forecast.svg: predicted against true trajectories, one panel each.
pub fn forecast_svg(path: &Path, panels: &[ForecastPanel], title: &str) -> Result<()> {
    if panels.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    let root = SVGBackend::new(path, (900, 260 * panels.len() as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(|e| err(&e))?;
    for (area, p) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        let vals = p.truth.iter().chain(&p.forecast).map(|&v| v as f64).filter(|v| v.is_finite());
        let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        let (lo, hi) = if lo < hi { (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)) } else { (lo - 1.0, lo + 1.0) };
        let n = p.truth.len().max(p.lookback + p.forecast.len()) as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(&p.label, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..n, lo..hi)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().x_desc("step").draw().map_err(|e| err(&e))?;
        let truth: Vec<(f64, f64)> = p.truth.iter().enumerate().map(|(i, &v)| (i as f64, v as f64)).collect();
        chart
            .draw_series(LineSeries::new(truth, BLACK.stroke_width(1)))
            .map_err(|e| err(&e))?
            .label("truth")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
        // the forecast starts from the last look-back row
        let start = p.lookback.saturating_sub(1);
        let mut fc = vec![(start as f64, p.truth.get(start).copied().unwrap_or(f32::NAN) as f64)];
        fc.extend(p.forecast.iter().enumerate().map(|(i, &v)| ((p.lookback + i) as f64, v as f64)));
        chart
            .draw_series(LineSeries::new(fc.into_iter().filter(|(_, v)| v.is_finite()), RED.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label("forecast")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .draw_series(LineSeries::new(vec![(start as f64, lo), (start as f64, hi)], BLUE.mix(0.4)))
            .map_err(|e| err(&e))?;
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw().map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// completion.svg: per image, the truth beside the given pixels with the
/// model's completion (pixels in [0, 1], row by row, `side`×`side`).
pub fn completion_svg(path: &Path, images: &[(Vec<f32>, Vec<f32>)], side: usize, given: usize, title: &str) -> Result<()> {
    if images.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| anyhow!("plotting {} failed: {e}", path.display());
    let cell = 6i32;
    let pad = 12i32;
    let w = (2 * side as i32 * cell + 3 * pad) as u32;
    let h = (images.len() as i32 * (side as i32 * cell + pad) + pad + 30) as u32;
    let root = SVGBackend::new(path, (w.max(300), h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    root.draw(&Text::new(title.to_string(), (pad, 8), ("sans-serif", 14))).map_err(|e| err(&e))?;
    for (r, (truth, completed)) in images.iter().enumerate() {
        let y0 = 30 + r as i32 * (side as i32 * cell + pad);
        for (panel, img) in [truth, completed].into_iter().enumerate() {
            let x0 = pad + panel as i32 * (side as i32 * cell + pad);
            for (i, &v) in img.iter().enumerate().take(side * side) {
                let g = (255.0 * (1.0 - v.clamp(0.0, 1.0))) as u8;
                // completed pixels get a red tint so the cut shows
                let colour = if panel == 1 && i >= given { RGBColor(255, g, g) } else { RGBColor(g, g, g) };
                let (px, py) = (x0 + (i % side) as i32 * cell, y0 + (i / side) as i32 * cell);
                root.draw(&Rectangle::new([(px, py), (px + cell, py + cell)], colour.filled())).map_err(|e| err(&e))?;
            }
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
