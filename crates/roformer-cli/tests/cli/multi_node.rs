//! Training on several machines, as two processes on this one: a `roformer coordinator` and
//! two `roformer train --nodes 2` talking over localhost through burn-collective's global
//! level. Two nodes take the steps one device takes on the same batch; bad setups end
//! within the configured timeout with one error line.

use std::path::Path;
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use roformer_testing::max_abs_diff;
use roformer_train::run::METRICS_FILE;
use roformer_train::run::metrics::read_records;

use crate::common;

/// The tests here take ports of this machine; one at a time, so that they do not race for
/// the same free ports.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A run's config with dropout off (so that runs can be compared exactly) and the
/// distributed timeout at `timeout_secs`.
fn config(dir: &Path, timeout_secs: u64) -> String {
    let corpus = dir.join("corpus");
    common::write_small_corpus(&corpus);
    common::small_config_toml(&corpus, 6, 3).replace("dropout_prob = 0.1", "dropout_prob = 0.0")
        + &format!("\n[distributed]\ntimeout_secs = {timeout_secs}\n")
}

/// `count` ports nothing listens on now.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A coordinator process, stopped when dropped.
struct Coordinator(Child);

impl Coordinator {
    fn start(port: u16) -> Self {
        let child = common::spawn_roformer(&["coordinator", "--port", &port.to_string()], &[]);
        // The port answers once the coordinator is up.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the coordinator did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `roformer train` as node `rank` of 2 with the coordinator at `coordinator`, reachable
/// at `port`.
fn node(config: &Path, output: &Path, rank: usize, coordinator: u16, port: u16) -> Child {
    common::spawn_roformer(
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--nodes",
            "2",
            "--rank",
            &rank.to_string(),
            "--coordinator",
            &format!("127.0.0.1:{coordinator}"),
            "--address",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    )
}

/// Waits for `child` at most `limit`: (success, stderr). A process still running then is
/// killed and the test fails.
fn finish_within(mut child: Child, limit: Duration) -> (bool, String) {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("a node was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.success(), stderr)
}

/// Two nodes of one replica each, each taking half of every batch, end with the same
/// parameters, to 1e-5, as one device on the whole batch, and with the same losses; the
/// two nodes' parameters are identical. Node 0 alone writes the evaluations.
#[test]
fn two_processes_train_as_one_device_does() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    let config_path = root.path().join("config.toml");
    std::fs::write(&config_path, config(root.path(), 60)).unwrap();

    let one = root.path().join("one");
    let (ok, _, stderr) = common::roformer(&[
        "train",
        "--config",
        config_path.to_str().unwrap(),
        "--output",
        one.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");

    let ports = free_ports(3);
    let _coordinator = Coordinator::start(ports[0]);
    let nodes: Vec<_> = (0..2)
        .map(|rank| {
            let output = root.path().join(format!("node-{rank}"));
            (
                node(&config_path, &output, rank, ports[0], ports[1 + rank]),
                output,
            )
        })
        .collect();
    let mut outputs = Vec::new();
    for (child, output) in nodes {
        let (ok, stderr) = finish_within(child, Duration::from_secs(300));
        assert!(ok, "{}: {stderr}", output.display());
        outputs.push(output);
    }

    let reference = common::run_weights(&one);
    let on_node_0 = common::run_weights(&outputs[0]);
    assert_eq!(on_node_0, common::run_weights(&outputs[1]));
    assert_eq!(on_node_0.len(), reference.len());
    for ((name, got), (_, expected)) in on_node_0.iter().zip(&reference) {
        let gap = max_abs_diff(got, expected);
        assert!(gap < 1e-5, "{name} differs by {gap:e}");
    }
    let expected = read_records(&one.join(METRICS_FILE)).unwrap();
    let got = read_records(&outputs[0].join(METRICS_FILE)).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got.len(), expected.len());
    for (got, expected) in got.iter().zip(&expected) {
        assert_eq!(got.step, expected.step);
        for (a, b) in [
            (got.train_loss, expected.train_loss),
            (got.valid_loss, expected.valid_loss),
        ] {
            assert!((a - b).abs() < 1e-5, "step {}: {a} vs {b}", got.step);
        }
    }
    // The runs trained: equal weights are not those of two untouched models.
    assert!(got[1].train_loss < got[0].train_loss, "{got:?}");
    assert!(!outputs[1].join(METRICS_FILE).exists());
}

/// Bad setups end, within the timeout (5 s here) and a margin, with one error line naming
/// the fault: no coordinator, nodes whose configs differ, one rank used by two nodes, and a
/// node killed in the middle of the run (the other keeps its last checkpoint).
#[test]
fn bad_multi_node_setups_fail_within_the_timeout() {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    let config_path = root.path().join("config.toml");
    let text = config(root.path(), 5);
    std::fs::write(&config_path, &text).unwrap();
    let other_path = root.path().join("other.toml");
    std::fs::write(
        &other_path,
        text.replace("learning_rate = 1e-2", "learning_rate = 2e-2"),
    )
    .unwrap();
    let limit = Duration::from_secs(90);
    let error_line = |stderr: &str| -> String {
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        errors[0].to_string()
    };

    // No coordinator at the address.
    let ports = free_ports(2);
    let started = Instant::now();
    let lone = node(
        &config_path,
        &root.path().join("lone"),
        0,
        ports[0],
        ports[1],
    );
    let (ok, stderr) = finish_within(lone, limit);
    assert!(!ok);
    let line = error_line(&stderr);
    assert!(line.contains("could not register within 5 s"), "{line}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(5));

    // Configs that differ, then one rank twice.
    for (case, (second_config, second_rank, expected)) in [
        (&other_path, 1, "do not start from the same config"),
        (&config_path, 0, "is a rank used twice"),
    ]
    .into_iter()
    .enumerate()
    {
        let ports = free_ports(3);
        let _coordinator = Coordinator::start(ports[0]);
        let dirs = [0, 1].map(|n| root.path().join(format!("case-{case}-node-{n}")));
        let first = node(&config_path, &dirs[0], 0, ports[0], ports[1]);
        let second = node(second_config, &dirs[1], second_rank, ports[0], ports[2]);
        for child in [first, second] {
            let (ok, stderr) = finish_within(child, limit);
            assert!(!ok, "{expected}: a node succeeded");
            let line = error_line(&stderr);
            assert!(line.contains(expected), "{line}");
        }
        for dir in &dirs {
            assert!(!dir.join("checkpoint").exists());
        }
    }

    // Node 1 killed once the run has written a checkpoint.
    let long_path = root.path().join("long.toml");
    std::fs::write(&long_path, text.replace("steps = 6", "steps = 100000")).unwrap();
    let ports = free_ports(3);
    let _coordinator = Coordinator::start(ports[0]);
    let dirs = [0, 1].map(|n| root.path().join(format!("long-node-{n}")));
    let survivor = node(&long_path, &dirs[0], 0, ports[0], ports[1]);
    let mut victim = node(&long_path, &dirs[1], 1, ports[0], ports[2]);
    let checkpoint = dirs[0].join("checkpoint");
    let deadline = Instant::now() + limit;
    while !checkpoint.join("state.json").exists() {
        assert!(Instant::now() < deadline, "no checkpoint was written");
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    let (ok, stderr) = finish_within(survivor, limit);
    assert!(!ok);
    let line = error_line(&stderr);
    assert!(line.contains("data-parallel training"), "{line}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let state = std::fs::read_to_string(checkpoint.join("state.json")).unwrap();
    assert!(state.contains("\"step\""), "{state}");
}
