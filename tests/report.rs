//! The report builder on small inputs (issue 7): JSON structure, every referenced file exists,
//! each section and plot carries a certified/measured label, and the JSON is byte-identical
//! across runs.

use std::path::Path;

use polycert::report::{
    accuracy_section, bounds_section, build_default_report, evaluate_models, NetworkReportConfig,
    Report, ReportConfig,
};
use serde_json::Value;

use crate::util::shared;

fn small_default() -> Report {
    let cfg = ReportConfig {
        alphas: vec![4, 6],
        curve_alphas: vec![6],
        curve_points: 40,
    };
    build_default_report(&cfg, &mut |_| {}).unwrap()
}

/// Every `png`/`svg` path in report.json exists, every section and plot has an evidence label.
fn check_written(dir: &Path) -> Value {
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["format"], "polycert-report/1");
    let sections = v["sections"].as_object().unwrap();
    assert!(!sections.is_empty());
    for (id, s) in sections {
        let ev = s["evidence"].as_str().unwrap();
        assert!(
            ["certified", "measured", "mixed"].contains(&ev),
            "section {id}: evidence {ev}"
        );
        for p in s["plots"].as_array().unwrap() {
            assert!(p["evidence"].is_string(), "plot without label in {id}");
            for k in ["png", "svg"] {
                let f = dir.join(p[k].as_str().unwrap());
                assert!(f.is_file(), "{f:?} referenced but missing");
                assert!(
                    std::fs::metadata(&f).unwrap().len() > 1000,
                    "{f:?} is empty"
                );
            }
        }
    }
    let md = std::fs::read_to_string(dir.join("index.md")).unwrap();
    for (id, _) in sections {
        assert!(
            md.contains(&format!("<a id=\"{id}\"></a>")),
            "index.md lacks {id}"
        );
    }
    assert!(md.contains("*Evidence: certified.*") && md.contains("*Evidence: measured.*"));
    v
}

#[test]
fn default_report_small_structure_labels_and_determinism() {
    let dir = tempfile::tempdir().unwrap();
    let r = small_default();
    r.write(dir.path()).unwrap();
    let v = check_written(dir.path());
    for id in ["table1", "certificates", "relu_error", "bounds"] {
        assert!(v["sections"][id].is_object(), "missing section {id}");
    }
    // Theorem 4 on the generated network: the measured error never exceeds the certified
    // bound when every ReLU input stayed in [−B, B].
    for row in v["sections"]["bounds"]["data"].as_array().unwrap() {
        let m = &row["measured"];
        assert_eq!(m["out_of_range"], 0, "{row}");
        let measured = m["max_linf"].as_f64().unwrap();
        let bound = row["certified"]["bound"].as_f64().unwrap();
        assert!(measured > 0.0 && measured <= bound, "{row}");
    }
    // Table 1 rows come from the paper: ζ and degrees for α = 4 and 6.
    let rows = v["sections"]["table1"]["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Every certificate of the small report is accepted by the exact checker.
    for c in v["sections"]["certificates"]["data"].as_array().unwrap() {
        assert_eq!(c["exact_checker"], "accepted", "{c}");
    }
    let first = std::fs::read(dir.path().join("report.json")).unwrap();
    small_default().write(dir.path()).unwrap();
    assert_eq!(
        first,
        std::fs::read(dir.path().join("report.json")).unwrap()
    );
}

#[test]
fn network_sections_on_shared_models() {
    let Some(shared) = shared("network report sections") else {
        return;
    };
    let mut cfg = NetworkReportConfig::new(shared.join("models"), shared.join("data"));
    cfg.alphas = vec![14];
    cfg.limit = Some(20);
    let evals = evaluate_models(&cfg, &|_, _, _| {}).unwrap();
    assert_eq!(evals.len(), 6, "six shared models");
    for e in &evals {
        assert_eq!(e.images, 20, "{}", e.model);
        // B is calibrated on these images, so at α = 14 no output may overflow.
        assert_eq!(e.alphas[0].nonfinite_outputs, 0, "{}", e.model);
        assert!(e.alphas[0].linf_max.is_finite(), "{}", e.model);
    }
    let mut r = small_default();
    r.push(accuracy_section(&evals, &cfg));
    cfg.bound_images = 3;
    r.push(bounds_section(&cfg, &|_, _, _| {}).unwrap());
    let dir = tempfile::tempdir().unwrap();
    r.write(dir.path()).unwrap();
    let v = check_written(dir.path());
    let acc = v["sections"]["accuracy"]["data"].as_array().unwrap();
    assert_eq!(acc.len(), 6);
    assert_eq!(v["sections"]["accuracy"]["evidence"], "measured");
    // Certified bounds section: no refutation on any model.
    let nb = v["sections"]["network_bounds"]["data"].as_array().unwrap();
    assert_eq!(nb.len(), 6);
    for m in nb {
        for a in m["alphas"].as_array().unwrap() {
            let d = &a["data"];
            assert_eq!(d["measured_above_bound"], 0, "{}", m["model"]);
            assert_eq!(d["per_input_above_global"], 0, "{}", m["model"]);
            assert!(a["global"]["bound"].as_f64().unwrap() > 0.0);
        }
    }
    // Data paths are recorded relative to the data folder (no machine-specific prefix).
    for a in acc {
        let d = a["data"].as_str().unwrap();
        assert!(d.starts_with("cifar10/") || d.starts_with("mnist/"), "{d}");
    }
}
