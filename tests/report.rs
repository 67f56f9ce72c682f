//! The report builder on small inputs (issue 7): JSON structure, every referenced file exists,
//! each section and plot carries a certified/measured label, and the JSON is byte-identical
//! across runs.

use std::path::Path;

use polycert::report::{
    accuracy_section, bounds_section, build_default_report, ckks_section, evaluate_models,
    CkksReportConfig, NetworkReportConfig, Report, ReportConfig,
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

/// A models folder holding copies of the named shared models.
fn models_dir(shared: &Path, names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for n in names {
        std::fs::copy(shared.join("models").join(n), dir.path().join(n)).unwrap();
    }
    dir
}

fn ckks_report(shared: &Path, models: &Path, cfg: &CkksReportConfig) -> Report {
    let net_cfg = NetworkReportConfig::new(models.into(), shared.join("data"));
    let (section, timings) = ckks_section(&net_cfg, cfg, &mut |_| {}).unwrap();
    assert!(timings.iter().all(|t| t.timings.eval_s > 0.0));
    let mut r = Report {
        title: "CKKS".into(),
        ..Report::default()
    };
    r.push(section);
    r
}

#[test]
fn ckks_section_toy_parameters_structure_labels_bounds_and_determinism() {
    let Some(shared) = shared("CKKS report section") else {
        return;
    };
    let models = models_dir(&shared, &["mnist_cnn_small.onnx", "resnet20_cifar10.onnx"]);
    // Toy ring (N = 2^12, insecure, 2 images per ciphertext) so the test takes seconds; the
    // section must say it is insecure.
    let cfg = CkksReportConfig {
        images: 2,
        alpha: 4,
        seed: 5,
        log_n: 12,
        insecure: true,
    };
    let dir = tempfile::tempdir().unwrap();
    ckks_report(&shared, models.path(), &cfg)
        .write(dir.path())
        .unwrap();
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let s = &v["sections"]["ckks"];
    assert_eq!(s["evidence"], "mixed");
    assert_eq!(s["data"]["alpha"], 4);
    // The ResNet runs only on the graph executor, hours per batch at 128-bit: skipped with the
    // reason.
    let skipped = s["data"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["model"], "resnet20_cifar10.onnx");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("residual network"),
        "{}",
        skipped[0]
    );
    let ms = s["data"]["models"].as_array().unwrap();
    assert_eq!(ms.len(), 1);
    let m = &ms[0];
    assert_eq!(m["model"], "mnist_cnn_small.onnx");
    assert_eq!(m["data"], "mnist/t10k-images-idx3-ubyte");
    assert!(m["params"]["security"]
        .as_str()
        .unwrap()
        .starts_with("INSECURE"));
    assert_eq!(m["polynomial_matches_certificate"], true);
    let g = m["certified"]["global_bound"].as_f64().unwrap();
    assert!(g > 0.0 && g.is_finite());
    let images = m["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for (k, im) in images.iter().enumerate() {
        assert_eq!(im["index"], k);
        assert_eq!(im["class"]["evidence"], "measured");
        let noise = im["measured"]["ckks_noise_linf"].as_f64().unwrap();
        let dec = im["measured"]["dec_vs_exact_linf"].as_f64().unwrap();
        let approx = im["measured"]["approx_vs_exact_linf"].as_f64().unwrap();
        assert!(noise > 0.0 && noise < 1e-2, "{im}");
        // Measured never above certified: F^α against its certified bounds, and the decryption
        // against certified bound + measured CKKS noise (triangle inequality).
        assert_eq!(im["certified"]["global_bound"].as_f64().unwrap(), g);
        assert!(approx <= g, "{im}");
        if im["certified"]["in_range"] == true {
            let pib = im["certified"]["per_input_bound"].as_f64().unwrap();
            assert!(approx <= pib && pib <= g, "{im}");
            assert_eq!(im["checks"]["approx_vs_exact_within_per_input"], true);
        } else {
            assert!(im["certified"]["per_input_bound"].is_null(), "{im}");
        }
        assert!(dec <= g + noise, "{im}");
        assert_eq!(im["checks"]["dec_vs_exact_within_bound_plus_noise"], true);
        assert_eq!(im["class"]["encrypted"], im["class"]["approx"], "{im}");
    }
    // One plot, certified and measured series, both files written, linked from index.md.
    let plots = s["plots"].as_array().unwrap();
    assert_eq!(plots.len(), 1);
    let p = &plots[0];
    assert_eq!(p["id"], "ckks_error_mnist_cnn_small");
    assert_eq!(p["evidence"], "mixed");
    let names: Vec<&str> = p["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert!(names
        .iter()
        .all(|n| n.starts_with("measured") || n.starts_with("certified")));
    assert!(
        names.iter().any(|n| n.starts_with("certified global")),
        "{names:?}"
    );
    for k in ["png", "svg"] {
        let f = dir.path().join(p[k].as_str().unwrap());
        assert!(std::fs::metadata(&f).unwrap().len() > 1000, "{f:?}");
    }
    let md = std::fs::read_to_string(dir.path().join("index.md")).unwrap();
    assert!(md.contains("plots/ckks_error_mnist_cnn_small.png"));
    assert!(md.contains("resnet20_cifar10.onnx: a residual network"));
    assert!(md.contains("**INSECURE"));
    // Same seed, same inputs: byte-identical JSON (no timings in it).
    let first = std::fs::read(dir.path().join("report.json")).unwrap();
    ckks_report(&shared, models.path(), &cfg)
        .write(dir.path())
        .unwrap();
    assert_eq!(
        first,
        std::fs::read(dir.path().join("report.json")).unwrap()
    );
}

#[test]
fn ckks_section_skips_models_too_deep_for_128_bit_parameters() {
    let Some(shared) = shared("CKKS report section") else {
        return;
    };
    // The max-pooling model at α = 13 needs 2·(depth) levels per pooling: far beyond the
    // 1772 bits of N = 2^16. Skipped before any key is generated, with the reason.
    let models = models_dir(&shared, &["mnist_cnn_small_maxpool.onnx"]);
    let r = ckks_report(&shared, models.path(), &CkksReportConfig::default());
    let s = &r.sections[0];
    assert_eq!(s.data["models"].as_array().unwrap().len(), 0);
    let reason = s.data["skipped"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("levels at α = 13"), "{reason}");
    assert!(s.plots.is_empty());
    // Bad configurations are errors naming the flag.
    let net_cfg = NetworkReportConfig::new(models.path().into(), shared.join("data"));
    for (cfg, flag) in [
        (
            CkksReportConfig {
                images: 0,
                ..CkksReportConfig::default()
            },
            "--ckks-images",
        ),
        (
            CkksReportConfig {
                alpha: 3,
                ..CkksReportConfig::default()
            },
            "--ckks-alpha",
        ),
    ] {
        let e = ckks_section(&net_cfg, &cfg, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains(flag), "{e}");
    }
}
