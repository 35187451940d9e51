//! `roformer bench --products`: the matrix products it times are those of the inference
//! step `roformer bench` measures, FLOP for FLOP, and each line's rate is its own FLOPs
//! over its own time.

use crate::common::{roformer, small_config_toml, write_small_corpus};

/// The JSON objects of a `--json` run's standard output.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn products_hold_the_inference_step_flops() {
    let dir = tempfile::tempdir().unwrap();
    write_small_corpus(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(&config, small_config_toml(dir.path(), 1, 1)).unwrap();
    let config = config.display().to_string();
    let shape = [
        "--batch", "3", "--seq", "8,12", "--steps", "1", "--warmup", "0",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = ["bench", "--config", &config, "--json"]
            .iter()
            .chain(&shape)
            .chain(extra)
            .copied()
            .collect();
        let (ok, stdout, stderr) = roformer(&args);
        assert!(ok, "{args:?}: {stderr}");
        json_lines(&stdout)
    };
    let steps = run(&[]);
    let products = run(&["--products"]);
    assert_eq!(steps.len(), 2, "one report per --seq");
    for step in &steps {
        let seq = step["seq"].as_u64().unwrap();
        let of_step: Vec<_> = products.iter().filter(|p| p["seq"] == seq).collect();
        assert!(!of_step.is_empty(), "no products at seq {seq}");
        let mut flops = 0.0;
        for product in of_step {
            let dim = |name: &str| product[name].as_f64().unwrap();
            let call = 2.0 * dim("batch") * dim("m") * dim("k") * dim("n");
            flops += call * dim("per_step");
            let rate = call / dim("ms") / 1e6;
            assert!(
                (dim("gflops") - rate).abs() <= 1e-9 * rate,
                "{product}: its rate is not its FLOPs over its time"
            );
        }
        let tokens = 3.0 * seq as f64;
        let expected = step["flops_per_token"].as_f64().unwrap() * tokens;
        assert!(
            (flops - expected).abs() <= 1e-12 * expected,
            "seq {seq}: products {flops} FLOPs, the step {expected}"
        );
    }
}
