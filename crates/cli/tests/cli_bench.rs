//! `pigment bench` on the demo model: the JSON says which runtime settings ran (IO binding, CUDA options), and bad
//! settings are refused naming the flag and the value.

mod common;

use common::pigment;

fn bench(extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["bench", "--steps", "2", "--runs", "1", "--device", "cpu", "--no-cache", "--json"];
    args.extend_from_slice(extra);
    pigment(&args, dir.path())
}

#[test]
fn bench_reports_whether_io_binding_ran() {
    for (flag, bound) in [("auto", false), ("on", true), ("off", false)] {
        let output = bench(&["--io-binding", flag]);
        assert!(output.status.success(), "--io-binding {flag}: {}", String::from_utf8_lossy(&output.stderr));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("--json prints JSON");
        assert_eq!(report["io_binding"], bound, "--io-binding {flag} (auto is off on the CPU)");
        assert_eq!(report["unet_calls"], 2);
        assert_eq!(report["cuda"]["conv_algorithm_search"], "exhaustive");
    }
    // The CUDA settings are reported as given (on the CPU they change nothing).
    let output = bench(&[
        "--cuda-conv-search",
        "heuristic",
        "--cuda-conv-max-workspace",
        "off",
        "--cuda-arena",
        "next-power-of-two",
        "--cuda-shrink-after-single-runs",
        "--cuda-shared-arena",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let expected = serde_json::json!({
        "arena_extension": "next-power-of-two",
        "conv_algorithm_search": "heuristic",
        "conv_max_workspace": false,
        "shrink_after_single_runs": true,
        "shared_arena": true,
    });
    assert_eq!(report["cuda"], expected);
}

#[test]
fn bad_runtime_settings_are_refused_with_their_names() {
    for (flag, value, expected) in [
        ("--io-binding", "sometimes", "io-binding: sometimes"),
        ("--cuda-conv-search", "fastest", "conv-algorithm-search: fastest"),
        ("--cuda-arena", "double", "arena-extension: double"),
    ] {
        let output = bench(&[flag, value]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value} should fail");
        assert!(stderr.contains(expected), "{flag} {value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
