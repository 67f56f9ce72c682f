//! Line plots rendered to PNG (bitmap, text drawn with the embedded DejaVu Sans through
//! `ab_glyph`, so no system fonts are needed) and SVG.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{write_atomic, Evidence, ReportError};

/// The embedded font (Bitstream Vera licence, see `assets/fonts/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn ensure_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
                .map_err(|_| "embedded font is invalid".to_string())
        })
        .clone()
}

/// One named series of (x, y) points.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Draw markers at the points (in addition to the line).
    pub markers: bool,
    /// Draw the line dashed (e.g. a bound, against a solid measured curve).
    pub dashed: bool,
}

impl Series {
    /// A solid line with markers.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
            markers: true,
            dashed: false,
        }
    }
}

/// Where the legend box sits inside the plotting area.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegendPos {
    /// Top right corner (the default).
    #[default]
    UpperRight,
    /// Right edge, vertically centred (e.g. when bounds run along the top and measured values
    /// along the bottom).
    MiddleRight,
    /// Bottom right corner.
    LowerRight,
    /// Top left corner.
    UpperLeft,
    /// Bottom left corner.
    LowerLeft,
}

impl LegendPos {
    fn to_plotters(self) -> SeriesLabelPosition {
        match self {
            LegendPos::UpperRight => SeriesLabelPosition::UpperRight,
            LegendPos::MiddleRight => SeriesLabelPosition::MiddleRight,
            LegendPos::LowerRight => SeriesLabelPosition::LowerRight,
            LegendPos::UpperLeft => SeriesLabelPosition::UpperLeft,
            LegendPos::LowerLeft => SeriesLabelPosition::LowerLeft,
        }
    }
}

/// A line chart: title, labelled axes (optionally logarithmic), a legend, and an evidence label
/// shown in the title so a reader always knows what kind of number is drawn.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LinePlot {
    /// File stem (`<id>.png`, `<id>.svg`); letters, digits, `-` and `_` only.
    pub id: String,
    /// Title (the evidence label is appended).
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis (use when values span decades).
    pub log_y: bool,
    /// The series.
    pub series: Vec<Series>,
    /// Certified, measured or both.
    pub evidence: Evidence,
    /// Where the legend goes (choose a corner free of data).
    pub legend: LegendPos,
}

/// A closed data range (lo, hi) of one axis.
type Span = (f64, f64);

const SIZE: (u32, u32) = (960, 600);
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

impl LinePlot {
    /// Render `<dir>/<id>.png` and `<dir>/<id>.svg` (each written atomically) and return both
    /// paths.
    ///
    /// # Errors
    /// [`ReportError::BadPoint`] for non-finite points or non-positive values on a log axis;
    /// [`ReportError::Plot`] when drawing fails; [`ReportError::Io`] when writing fails.
    pub fn render(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        let plot_err = |message: String| ReportError::Plot {
            id: self.id.clone(),
            message,
        };
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(plot_err(
                "id must be non-empty and use only letters, digits, '-' and '_'".into(),
            ));
        }
        let (xr, yr) = self.ranges()?;
        ensure_font().map_err(plot_err)?;
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;

        // PNG: plotters writes the file itself, so draw to a temporary name and rename.
        let png = dir.join(format!("{}.png", self.id));
        let tmp = dir.join(format!(".{}.tmp{}.png", self.id, std::process::id()));
        {
            let root = BitMapBackend::new(&tmp, SIZE).into_drawing_area();
            self.draw_any(&root, xr, yr).map_err(plot_err)?;
            root.present().map_err(|e| plot_err(e.to_string()))?;
        }
        std::fs::rename(&tmp, &png).map_err(|source| ReportError::Io {
            path: png.clone(),
            source,
        })?;

        let mut svg_text = String::new();
        {
            let root = SVGBackend::with_string(&mut svg_text, SIZE).into_drawing_area();
            self.draw_any(&root, xr, yr).map_err(plot_err)?;
            root.present().map_err(|e| plot_err(e.to_string()))?;
        }
        let svg = dir.join(format!("{}.svg", self.id));
        write_atomic(&svg, svg_text.as_bytes())?;
        Ok(vec![png, svg])
    }

    /// Data ranges with a margin, validated for the axis kinds.
    fn ranges(&self) -> Result<(Span, Span), ReportError> {
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for s in &self.series {
            for &(x, y) in &s.points {
                let bad = |why| ReportError::BadPoint {
                    id: self.id.clone(),
                    series: s.name.clone(),
                    x,
                    y,
                    why,
                };
                if !x.is_finite() || !y.is_finite() {
                    return Err(bad("not finite"));
                }
                if self.log_x && x <= 0.0 {
                    return Err(bad("x must be positive on a logarithmic axis"));
                }
                if self.log_y && y <= 0.0 {
                    return Err(bad("y must be positive on a logarithmic axis"));
                }
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
        if !x0.is_finite() {
            return Err(ReportError::Plot {
                id: self.id.clone(),
                message: "no points to draw".into(),
            });
        }
        let pad = |lo: f64, hi: f64, log: bool| -> (f64, f64) {
            if log {
                let (a, b) = (lo.log10(), hi.log10());
                let m = ((b - a) * 0.05).max(0.1);
                (10f64.powf(a - m), 10f64.powf(b + m))
            } else {
                let m = ((hi - lo) * 0.05).max(if lo == hi {
                    lo.abs().max(1.0) * 0.1
                } else {
                    0.0
                });
                (lo - m, hi + m)
            }
        };
        Ok((pad(x0, x1, self.log_x), pad(y0, y1, self.log_y)))
    }

    fn draw_any<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        xr: (f64, f64),
        yr: (f64, f64),
    ) -> Result<(), String> {
        match (self.log_x, self.log_y) {
            (false, false) => self.draw(root, xr.0..xr.1, yr.0..yr.1),
            (true, false) => self.draw(root, (xr.0..xr.1).log_scale(), yr.0..yr.1),
            (false, true) => self.draw(root, xr.0..xr.1, (yr.0..yr.1).log_scale()),
            (true, true) => self.draw(root, (xr.0..xr.1).log_scale(), (yr.0..yr.1).log_scale()),
        }
    }

    fn draw<DB, XR, YR>(&self, root: &DrawingArea<DB, Shift>, xr: XR, yr: YR) -> Result<(), String>
    where
        DB: DrawingBackend,
        XR: AsRangedCoord<Value = f64>,
        YR: AsRangedCoord<Value = f64>,
        XR::CoordDescType: ValueFormatter<f64>,
        YR::CoordDescType: ValueFormatter<f64>,
    {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let title = format!("{} [{}]", self.title, self.evidence.label());
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 24))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(xr, yr)
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 15))
            .x_label_formatter(&|v| tick_label(*v, self.log_x))
            .y_label_formatter(&|v| {
                if self.log_y {
                    format!("{v:.0e}")
                } else {
                    format!("{v:.3}")
                }
            })
            .draw()
            .map_err(|x| e(&x))?;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE.get(i % PALETTE.len()).copied().unwrap_or(BLACK);
            let style = ShapeStyle {
                color: color.to_rgba(),
                filled: false,
                stroke_width: 2,
            };
            let anno = if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(s.points.iter().copied(), 8, 5, style))
                    .map_err(|x| e(&x))?
            } else {
                chart
                    .draw_series(LineSeries::new(s.points.iter().copied(), style))
                    .map_err(|x| e(&x))?
            };
            anno.label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            if s.markers {
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|x| e(&x))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .position(self.legend.to_plotters())
            .draw()
            .map_err(|x| e(&x))?;
        Ok(())
    }
}

/// Tick text: integers without decimals, logarithmic axes in scientific notation, otherwise two
/// decimals; never "-0".
fn tick_label(v: f64, log: bool) -> String {
    let v = if v == 0.0 { 0.0 } else { v };
    let s = if v.fract() == 0.0 && v.abs() < 1e6 {
        format!("{v:.0}")
    } else if log {
        format!("{v:.0e}")
    } else {
        format!("{v:.2}")
    };
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tick_labels() {
        assert_eq!(super::tick_label(-0.0, false), "0");
        assert_eq!(super::tick_label(-0.0004, false), "0.00");
        assert_eq!(super::tick_label(4.0, false), "4");
        assert_eq!(super::tick_label(0.25, false), "0.25");
        assert_eq!(super::tick_label(1e-3, true), "1e-3");
    }

    use super::*;

    fn plot(log_y: bool) -> LinePlot {
        LinePlot {
            id: "t".into(),
            title: "test".into(),
            x_label: "α".into(),
            y_label: "error".into(),
            log_x: false,
            log_y,
            series: vec![Series::new("a", vec![(4.0, 1e-2), (14.0, 1e-5)])],
            evidence: Evidence::Certified,
            legend: LegendPos::UpperRight,
        }
    }

    #[test]
    fn renders_png_and_svg_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        let files = plot(true).render(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let png1 = std::fs::read(&files[0]).unwrap();
        assert_eq!(&png1[1..4], b"PNG");
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert!(
            svg.contains("[certified]"),
            "evidence label missing from the SVG title"
        );
        plot(true).render(dir.path()).unwrap();
        assert_eq!(png1, std::fs::read(&files[0]).unwrap());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn rejects_nonpositive_on_log_axis() {
        let mut p = plot(true);
        p.series[0].points.push((15.0, 0.0));
        let err = p.render(tempfile::tempdir().unwrap().path()).unwrap_err();
        assert!(err.to_string().contains("positive"), "{err}");
        let mut p = plot(false);
        p.series[0].points.push((15.0, f64::NAN));
        assert!(p.render(tempfile::tempdir().unwrap().path()).is_err());
    }
}
