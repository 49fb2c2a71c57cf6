//! Charts of the model card, drawn with plotters as SVG for inlining into HTML.
//!
//! The SVG backend writes text as `<text>` elements that the browser renders with its own
//! fonts, so no font library is linked and Chinese labels show as well as English ones.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Colours of the Okabe-Ito palette, which stays distinguishable with the common forms of
/// colour blindness.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x00, 0x00),
];

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;
const FONT: &str = "sans-serif";

/// Colour of the `index`-th series.
pub fn colour(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart '{title}': {message}")]
pub struct ChartError {
    title: String,
    message: String,
}

/// A named line of points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One bar with an optional confidence interval.
pub struct Bar {
    pub value: f64,
    pub interval: Option<(f64, f64)>,
}

/// Bars of one category (a group), one per measure.
pub struct BarGroup {
    pub name: String,
    pub bars: Vec<Bar>,
}

/// A labelled point of a scatter chart.
pub struct Point {
    pub name: String,
    pub x: f64,
    pub y: f64,
}

/// Draws into an SVG string and turns plotters' errors into a [`ChartError`].
fn draw(
    title: &str,
    size: (u32, u32),
    paint: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let result = root
            .fill(&WHITE)
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
            .and_then(|()| paint(&root))
            .and_then(|()| root.present().map_err(|e| Box::new(e) as Box<dyn std::error::Error>));
        result.map_err(|e| ChartError { title: title.to_string(), message: e.to_string() })?;
    }
    Ok(svg)
}

/// Widens a degenerate range so that the axis has a span to draw.
fn padded(range: Range<f64>) -> Range<f64> {
    if range.end > range.start { range } else { (range.start - 0.5)..(range.start + 0.5) }
}

/// Smallest range holding every finite value, with 5% room at the top.
fn value_range(values: impl Iterator<Item = f64>, floor_at_zero: bool) -> Range<f64> {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        low = low.min(v);
        high = high.max(v);
    }
    if !low.is_finite() {
        return 0.0..1.0;
    }
    if floor_at_zero {
        low = low.min(0.0);
    }
    padded(low..high + (high - low) * 0.05)
}

/// Axis layout of a line chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axes {
    /// Both axes span [0, 1], with the chance diagonal (ROC curves).
    UnitSquare,
    /// Whole-number x (epochs, steps); y spans the data, from zero when `from_zero`.
    Counts { from_zero: bool },
}

/// Line chart of several series over a numeric x axis.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    axes: Axes,
) -> Result<String, ChartError> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let unit_square = axes == Axes::UnitSquare;
    let (x_range, y_range) = match axes {
        Axes::UnitSquare => (0.0..1.0, 0.0..1.0),
        Axes::Counts { from_zero } => {
            let y = value_range(points().map(|p| p.1), from_zero);
            // Room below the lowest value too, so a flat curve does not sit on the axis.
            let y = if from_zero { y } else { (y.start - (y.end - y.start) * 0.05)..y.end };
            (value_range(points().map(|p| p.0), false), y)
        }
    };
    let whole_x = !unit_square;
    let rising = axes != Axes::Counts { from_zero: false };
    draw(title, (WIDTH, HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption(title, (FONT, 22))
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range, y_range)?;
        let whole = |x: &f64| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() };
        let decimal = |x: &f64| format!("{x:.1}");
        let x_format: &dyn Fn(&f64) -> String = if whole_x { &whole } else { &decimal };
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(x_format)
            .label_style((FONT, 16))
            .max_light_lines(2)
            .draw()?;
        if unit_square {
            chart
                .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4).stroke_width(1)))?
                .label("chance")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.4)));
        }
        for (index, s) in series.iter().enumerate() {
            let style = colour(index).stroke_width(2);
            let finite = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite());
            chart
                .draw_series(LineSeries::new(finite, style))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
        }
        chart
            .configure_series_labels()
            // Curves that rise (ROC, ε) end at the upper right, so their legend goes below them.
            .position(if rising { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight })
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        Ok(())
    })
}

/// Grouped bar chart: for each category, one bar per measure, with its interval as a whisker.
/// Values are shares in [0, 1]; a missing value (NaN) leaves its bar out.
pub fn grouped_bars(title: &str, measures: &[&str], groups: &[BarGroup]) -> Result<String, ChartError> {
    let categories = groups.len().max(1) as f64;
    let width = WIDTH.max(140 * groups.len() as u32 + 100);
    draw(title, (width, HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption(title, (FONT, 22))
            .x_label_area_size(48)
            .y_label_area_size(64)
            // Headroom above 1 keeps the legend clear of the bars.
            .build_cartesian_2d(0.0..categories, 0.0..1.3)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|y| if *y <= 1.0 + 1e-9 { format!("{y:.1}") } else { String::new() })
            .y_desc("rate")
            .label_style((FONT, 16))
            .max_light_lines(2)
            .draw()?;
        let slot = 0.8 / measures.len().max(1) as f64;
        let mut undefined = Vec::new();
        for (m, measure) in measures.iter().enumerate() {
            let fill = colour(m);
            let mut bars = Vec::new();
            let mut whiskers = Vec::new();
            for (g, group) in groups.iter().enumerate() {
                let left = g as f64 + 0.1 + m as f64 * slot;
                let Some(bar) = group.bars.get(m).filter(|b| b.value.is_finite()) else {
                    // An undefined rate (no positives, say) is marked, so it does not read as zero.
                    undefined.push((left + slot * 0.45, group.name.clone()));
                    continue;
                };
                bars.push(Rectangle::new([(left, 0.0), (left + slot * 0.9, bar.value)], fill.filled()));
                if let Some((low, high)) = bar.interval.filter(|(l, h)| l.is_finite() && h.is_finite()) {
                    let centre = left + slot * 0.45;
                    let cap = slot * 0.2;
                    whiskers.push(PathElement::new([(centre, low), (centre, high)], BLACK.stroke_width(1)));
                    whiskers.push(PathElement::new([(centre - cap, low), (centre + cap, low)], BLACK.stroke_width(1)));
                    whiskers
                        .push(PathElement::new([(centre - cap, high), (centre + cap, high)], BLACK.stroke_width(1)));
                }
            }
            chart
                .draw_series(bars)?
                .label(*measure)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill.filled()));
            chart.draw_series(whiskers)?;
        }
        for (centre, _) in &undefined {
            let (x, y) = chart.backend_coord(&(*centre, 0.0));
            let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
            root.draw(&Text::new("n/a", (x, y - 4), style))?;
        }
        // Category names go under the axis, at the centre of each category.
        for (g, group) in groups.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
            let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(group.name.clone(), (x, y + 8), style))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        Ok(())
    })
}

/// Horizontal bars of shares in [0, 1], one per label.
pub fn share_bars(title: &str, x_label: &str, bars: &[(String, f64)]) -> Result<String, ChartError> {
    let rows = bars.len().max(1);
    let height = (90 + 36 * rows as u32).max(160);
    let label_width = bars.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(4).clamp(4, 40) as u32 * 8 + 20;
    draw(title, (WIDTH, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption(title, (FONT, 22))
            .x_label_area_size(48)
            .y_label_area_size(label_width)
            .build_cartesian_2d(0.0..1.0, 0.0..rows as f64)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(x_label)
            .x_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .label_style((FONT, 16))
            .max_light_lines(2)
            .draw()?;
        let fill = colour(1);
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, share))| {
            let top = (rows - i) as f64 - 0.2;
            Rectangle::new([(0.0, top - 0.6), (share.clamp(0.0, 1.0), top)], fill.filled())
        }))?;
        for (i, (label, _)) in bars.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, (rows - i) as f64 - 0.5));
            let style = TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(label.clone(), (x - 8, y), style))?;
        }
        Ok(())
    })
}

/// Scatter chart of labelled points, such as models on an accuracy-disparity plane.
pub fn scatter(title: &str, x_label: &str, y_label: &str, points: &[Point]) -> Result<String, ChartError> {
    let finite: Vec<&Point> = points.iter().filter(|p| p.x.is_finite() && p.y.is_finite()).collect();
    let x_high = finite.iter().map(|p| p.x).fold(0.0_f64, f64::max).max(0.05) * 1.4;
    // Room left of zero too, so a point with no disparity does not sit on the axis.
    let x_low = finite.iter().map(|p| p.x).fold(0.0_f64, f64::min) - x_high * 0.05;
    let (y_low, y_high) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.y), h.max(p.y)));
    let (y_low, y_high) = if y_low.is_finite() { (y_low, y_high) } else { (0.0, 1.0) };
    let pad = (y_high - y_low).max(0.02) * 0.5;
    draw(title, (WIDTH, HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(12)
            .caption(title, (FONT, 22))
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x_low..x_high, (y_low - pad)..(y_high + pad))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .y_label_formatter(&|y| format!("{y:.3}"))
            .label_style((FONT, 16))
            .max_light_lines(2)
            .draw()?;
        for (index, point) in finite.iter().enumerate() {
            let fill = colour(index);
            chart.draw_series([Circle::new((point.x, point.y), 7, fill.filled())])?;
            let (x, y) = chart.backend_coord(&(point.x, point.y));
            // Labels alternate above and below, so points at the same place stay readable.
            let (dy, anchor) = if index % 2 == 0 { (-10, VPos::Bottom) } else { (10, VPos::Top) };
            let style = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Left, anchor));
            root.draw(&Text::new(point.name.clone(), (x + 10, y + dy), style))?;
        }
        Ok(())
    })
}

/// Prepares plotters' SVG for inlining into HTML: the fixed size gives way to the view box, so
/// the chart scales with the page, and the chart gets an accessible name. The namespace
/// attribute is dropped because the HTML parser puts `<svg>` in the SVG namespace itself.
pub fn inline(svg: &str, id: &str, title: &str) -> String {
    let body = svg.find('>').map_or(svg, |end| &svg[end + 1..]);
    let view_box = svg
        .find("viewBox=\"")
        .and_then(|start| svg[start + 9..].find('"').map(|len| &svg[start + 9..start + 9 + len]))
        .unwrap_or("0 0 640 360");
    format!(
        "<svg id=\"{id}\" class=\"chart\" viewBox=\"{view_box}\" role=\"img\" aria-labelledby=\"{id}-title\">\
         <title id=\"{id}-title\">{}</title>{body}",
        crate::card::escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_chart_draws_each_series_and_its_legend() {
        let series = vec![
            Series { name: "training".into(), points: vec![(1.0, 0.6), (2.0, 0.4), (3.0, 0.35)] },
            Series { name: "validation 验证".into(), points: vec![(1.0, 0.62), (2.0, 0.5), (3.0, f64::NAN)] },
        ];
        let svg = line_chart("Loss", "epoch", "loss", &series, Axes::Counts { from_zero: false }).unwrap();
        assert_eq!(svg.matches("<polyline").count() >= 2, true);
        assert!(svg.contains("validation 验证"));
        assert!(svg.contains(">\nLoss\n<") || svg.contains(">Loss<"), "caption missing");
    }

    #[test]
    fn grouped_bars_escape_names_skip_nan() {
        let groups = vec![
            BarGroup {
                name: "<b>女</b>".into(),
                bars: vec![Bar { value: 0.3, interval: Some((0.25, 0.35)) }, Bar { value: f64::NAN, interval: None }],
            },
            BarGroup {
                name: "男".into(),
                bars: vec![Bar { value: 0.5, interval: None }, Bar { value: 0.7, interval: None }],
            },
        ];
        let svg = grouped_bars("Rates", &["selection rate", "TPR"], &groups).unwrap();
        assert!(svg.contains("&lt;b&gt;女&lt;/b&gt;"));
        assert!(!svg.contains("<b>"));
        // Each measure: its bars plus one legend swatch. The NaN TPR of the first group is left out.
        assert_eq!(svg.matches("fill=\"#0072B2\"").count(), 2 + 1, "{svg}");
        assert_eq!(svg.matches("fill=\"#D55E00\"").count(), 1 + 1, "{svg}");
    }

    #[test]
    fn inline_svg_scales_and_has_an_accessible_name() {
        let svg = share_bars("PII", "share of values", &[("phone".into(), 0.97)]).unwrap();
        let inlined = inline(&svg, "chart-pii", "Personal identifiers & shares");
        assert!(inlined.starts_with("<svg id=\"chart-pii\" class=\"chart\" viewBox=\"0 0 "));
        assert!(inlined.contains("<title id=\"chart-pii-title\">Personal identifiers &amp; shares</title>"));
        assert!(!inlined.contains("http://"), "the namespace URI must not remain");
        assert!(!inlined.contains("<svg width="), "the fixed size must give way to the view box");
    }
}
