//! [`Report`]: sections of Markdown, JSON and plots written as `index.md`, `report.json` and
//! `plots/`.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::{write_atomic, write_json_atomic, Evidence, LinePlot, ReportError};

/// Format tag written into `report.json`.
pub const REPORT_FORMAT: &str = "polycert-report/1";

/// One section of the report (e.g. "Table 1", "Certificates").
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Key in `report.json` and Markdown anchor; letters, digits, `-`, `_`.
    pub id: String,
    /// Heading.
    pub title: String,
    /// What kind of figures the section holds.
    pub evidence: Evidence,
    /// Markdown body (tables, notes).
    pub markdown: String,
    /// Every figure of the section, machine-readable.
    pub data: Value,
    /// Plots drawn for the section.
    pub plots: Vec<LinePlot>,
}

/// A whole report: a title, a description of its inputs, and sections in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Report title.
    pub title: String,
    /// Introductory Markdown paragraph.
    pub intro: String,
    /// The inputs and flags the report was made from (recorded for reproducibility).
    pub inputs: Value,
    /// Sections in order.
    pub sections: Vec<Section>,
}

impl Report {
    /// Append a section.
    pub fn push(&mut self, section: Section) -> &mut Self {
        self.sections.push(section);
        self
    }

    /// The `report.json` value (deterministic: no timestamps, no timings, ordered keys).
    pub fn to_json(&self) -> Value {
        let mut sections = Map::new();
        for s in &self.sections {
            let plots: Vec<Value> = s
                .plots
                .iter()
                .map(|p| {
                    json!({
                        "id": p.id,
                        "title": p.title,
                        "evidence": p.evidence,
                        "png": format!("plots/{}.png", p.id),
                        "svg": format!("plots/{}.svg", p.id),
                        "series": p.series.iter().map(|x| json!({"name": x.name, "points": x.points})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            sections.insert(
                s.id.clone(),
                json!({"title": s.title, "evidence": s.evidence, "data": s.data, "plots": plots}),
            );
        }
        json!({"format": REPORT_FORMAT, "title": self.title, "inputs": self.inputs, "sections": sections})
    }

    /// The `index.md` text.
    pub fn to_markdown(&self) -> String {
        let mut md = format!("# {}\n\n{}\n\n", self.title, self.intro.trim_end());
        md.push_str("Every figure is labelled **certified** (outward-rounded bound, machine-checked) or **measured** (sampled; an estimate, not a bound). Machine-readable figures: [report.json](report.json).\n\n## Contents\n\n");
        for s in &self.sections {
            md.push_str(&format!(
                "- [{}](#{}) ({})\n",
                s.title,
                s.id,
                s.evidence.label()
            ));
        }
        for s in &self.sections {
            md.push_str(&format!(
                "\n<a id=\"{}\"></a>\n## {}\n\n*Evidence: {}.*\n\n{}\n",
                s.id,
                s.title,
                s.evidence.label(),
                s.markdown.trim_end()
            ));
            for p in &s.plots {
                md.push_str(&format!(
                    "\n![{t}](plots/{id}.png)\n\n*{t}* ({ev}; [SVG](plots/{id}.svg))\n",
                    t = p.title,
                    id = p.id,
                    ev = p.evidence.label()
                ));
            }
        }
        md
    }

    /// Write `dir/index.md`, `dir/report.json` and `dir/plots/*` from scratch: the `plots/`
    /// folder is emptied first, so no stale figure survives. Returns every file written.
    ///
    /// # Errors
    /// [`ReportError`] naming the file or plot that failed.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.sections {
            for p in &s.plots {
                if !seen.insert(p.id.clone()) {
                    return Err(ReportError::Plot {
                        id: p.id.clone(),
                        message: "two plots share this id".into(),
                    });
                }
            }
        }
        let plots_dir = dir.join("plots");
        if plots_dir.exists() {
            std::fs::remove_dir_all(&plots_dir).map_err(|source| ReportError::Io {
                path: plots_dir.clone(),
                source,
            })?;
        }
        let mut written = Vec::new();
        for s in &self.sections {
            for p in &s.plots {
                written.extend(p.render(&plots_dir)?);
            }
        }
        let index = dir.join("index.md");
        write_atomic(&index, self.to_markdown().as_bytes())?;
        written.push(index);
        let js = dir.join("report.json");
        write_json_atomic(&js, &self.to_json())?;
        written.push(js);
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{LegendPos, MdTable, Series};

    fn sample() -> Report {
        let mut t = MdTable::new(&["α", "sup"]);
        t.row(&["4", "0.06"]);
        let mut r = Report {
            title: "R".into(),
            intro: "intro".into(),
            inputs: json!({"alpha": "4..14"}),
            sections: vec![],
        };
        r.push(Section {
            id: "table1".into(),
            title: "Table 1".into(),
            evidence: Evidence::Certified,
            markdown: t.render(),
            data: json!([{"alpha": 4}]),
            plots: vec![LinePlot {
                id: "err".into(),
                title: "error".into(),
                x_label: "α".into(),
                y_label: "sup".into(),
                log_x: false,
                log_y: true,
                series: vec![Series::new("certified", vec![(4.0, 0.06), (5.0, 0.03)])],
                evidence: Evidence::Certified,
                legend: LegendPos::UpperRight,
            }],
        });
        r
    }

    #[test]
    fn writes_every_referenced_file_with_labels() {
        let dir = tempfile::tempdir().unwrap();
        let files = sample().write(dir.path()).unwrap();
        for f in &files {
            assert!(f.exists(), "{f:?}");
        }
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(v["format"], REPORT_FORMAT);
        assert_eq!(v["sections"]["table1"]["evidence"], "certified");
        let png = v["sections"]["table1"]["plots"][0]["png"].as_str().unwrap();
        assert!(dir.path().join(png).exists());
        let md = std::fs::read_to_string(dir.path().join("index.md")).unwrap();
        assert!(md.contains("plots/err.png") && md.contains("*Evidence: certified.*"));
    }

    #[test]
    fn json_is_identical_across_runs_and_stale_plots_go() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plots")).unwrap();
        std::fs::write(dir.path().join("plots/stale.png"), b"x").unwrap();
        sample().write(dir.path()).unwrap();
        let a = std::fs::read(dir.path().join("report.json")).unwrap();
        sample().write(dir.path()).unwrap();
        assert_eq!(a, std::fs::read(dir.path().join("report.json")).unwrap());
        assert!(!dir.path().join("plots/stale.png").exists());
    }

    #[test]
    fn duplicate_plot_ids_are_refused() {
        let mut r = sample();
        let s = r.sections[0].clone();
        r.push(Section {
            id: "again".into(),
            ..s
        });
        let err = r.write(tempfile::tempdir().unwrap().path()).unwrap_err();
        assert!(err.to_string().contains("share"), "{err}");
    }
}
