//! Training curves as a self-contained SVG: loss per logged step and dev rsum per epoch.

use std::fmt::Write;

const W: f64 = 900.0;
const H: f64 = 300.0;
const PAD: f64 = 50.0;

/// One panel: a polyline of `(x, y)` points with its axis ranges labelled.
fn panel(svg: &mut String, top: f64, title: &str, x_label: &str, points: &[(f64, f64)]) {
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" font-size="15" font-weight="bold">{title}</text>"##,
        PAD,
        top + 20.0
    );
    let (x0, y0, w, h) = (PAD, top + 30.0, W - 2.0 * PAD, H - 70.0);
    let _ = write!(
        svg,
        r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>"##
    );
    if points.is_empty() {
        return;
    }
    let (min_x, max_x) = bounds(points.iter().map(|p| p.0));
    let (min_y, max_y) = bounds(points.iter().map(|p| p.1));
    let sx = |x: f64| x0 + (x - min_x) / (max_x - min_x).max(1e-12) * w;
    let sy = |y: f64| y0 + h - (y - min_y) / (max_y - min_y).max(1e-12) * h;
    let path: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
        path.join(" ")
    );
    if points.len() < 60 {
        for &(x, y) in points {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f77b4"/>"##,
                sx(x),
                sy(y)
            );
        }
    }
    let label = |svg: &mut String, x: f64, y: f64, anchor: &str, text: String| {
        let _ = write!(
            svg,
            r##"<text x="{x:.1}" y="{y:.1}" font-size="11" text-anchor="{anchor}">{text}</text>"##
        );
    };
    label(svg, x0 - 4.0, y0 + 10.0, "end", format!("{max_y:.3}"));
    label(svg, x0 - 4.0, y0 + h, "end", format!("{min_y:.3}"));
    label(svg, x0, y0 + h + 14.0, "start", format!("{min_x}"));
    label(svg, x0 + w, y0 + h + 14.0, "end", format!("{max_x}"));
    label(
        svg,
        x0 + w / 2.0,
        y0 + h + 14.0,
        "middle",
        x_label.to_string(),
    );
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// The SVG document of both curves.
pub fn render(loss: &[(f64, f64)], dev_rsum: &[(f64, f64)]) -> String {
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"##,
        2.0 * H
    );
    panel(&mut svg, 0.0, "training loss", "step", loss);
    panel(&mut svg, H, "dev rsum", "epoch", dev_rsum);
    svg.push_str("</svg>\n");
    svg
}
