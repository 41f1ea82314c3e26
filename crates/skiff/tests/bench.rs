//! `skiff bench`, run as a user would, shortened: it starts its own
//! cluster, measures, stops it, and reports in text and in JSON.

mod common;

use common::skiff;

#[test]
fn a_short_bench_counts_writes_and_reports_them_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let output = skiff(&[
        "bench",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--clients",
        "2",
    ])
    .args(["--floor", "--dir"])
    .arg(dir.path())
    .arg("--json")
    .arg(&json_path)
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 clients, 128-byte writes"), "{stdout}");
    assert!(stdout.contains("floor = leader sync"), "{stdout}");
    assert!(stdout.contains("floor before skiff"), "{stdout}");
    assert!(stdout.contains("floor after skiff"), "{stdout}");

    let text = std::fs::read_to_string(&json_path).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let skiff = &report["results"][0];
    assert_eq!(skiff["target"], "skiff", "{text}");
    assert!(skiff["operations"].as_u64().unwrap() > 0, "{text}");
    assert_eq!(skiff["errors"].as_u64(), Some(0), "{text}");
    let latency = &skiff["latency_ms"];
    let p50 = latency["p50"].as_f64().unwrap();
    assert!(
        p50 > 0.0 && p50 <= latency["max"].as_f64().unwrap(),
        "{text}"
    );
    // Measured just before and just after Skiff's run; the floor is their mean.
    let floor = &report["floor"];
    let measured: Vec<f64> = floor["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["floor_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(measured.len(), 2, "{text}");
    let mean = floor["floor_ms"].as_f64().unwrap();
    assert!(mean > 0.0, "{text}");
    assert!(
        (mean - (measured[0] + measured[1]) / 2.0).abs() < 1e-9,
        "{text}"
    );
    // The cluster's data went under --dir and was removed with it.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("report.json")]);
}
