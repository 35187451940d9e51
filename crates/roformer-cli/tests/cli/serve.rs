//! `roformer serve` through a real HTTP client on a free port: every route answers as the
//! matching command does, errors are JSON with TEI's status codes and the server keeps
//! serving after each, answers do not depend on batching, a burst of concurrent requests
//! is answered right, a client that goes away is no harm, and SIGTERM lets requests in
//! flight finish.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{
    finetune_config_toml, roformer, roformer_command, write_model_dir, write_word_set_examples,
};
use crate::finetune_runs::finetune_cli;

/// Largest difference allowed between a served value and the command's (f32 rounding;
/// the command prints 6 decimals for embeddings and 4 for probabilities).
const SAME: f64 = 1e-6;

/// A `roformer serve` process and its base URL; killed when dropped.
struct Served {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Served {
    /// Starts `roformer serve --port 0 ARGS` and waits for the address it prints.
    fn start(args: &[&str]) -> Self {
        let mut all = vec!["serve", "--port", "0"];
        all.extend_from_slice(args);
        let mut child = roformer_command(&all)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let base = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "the server stopped: {line}"
            );
            if let Some(at) = line.find("http://") {
                break line[at..].trim().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
        });
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self { child, base, agent }
    }

    /// POSTs `body` to `path`: the status, the JSON answer and the response headers.
    fn post(&self, path: &str, body: &Value) -> (u16, Value, ureq::http::HeaderMap) {
        self.post_with(path, body, None)
    }

    fn post_with(
        &self,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> (u16, Value, ureq::http::HeaderMap) {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let mut response = request.send_json(body).unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            headers,
        )
    }

    fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        let mut response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut response = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    }

    /// A good request answered: the server is still serving.
    fn assert_serving(&self) {
        let (status, body, _) = self.post("/embed", &json!({"inputs": "the quick brown fox"}));
        assert_eq!(status, 200, "{body}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A masked-LM, a sequence classifier and a tagger fine-tuned from it, in `dir`.
fn models(dir: &Path) -> [String; 3] {
    let lm = dir.join("lm");
    write_model_dir(&lm);
    write_word_set_examples(&dir.join("train.jsonl"), 64, 1);
    write_word_set_examples(&dir.join("valid.jsonl"), 16, 2);
    let config = finetune_config_toml(
        &lm,
        &dir.join("train.jsonl"),
        &dir.join("valid.jsonl"),
        10,
        10,
    );
    std::fs::write(dir.join("cls.toml"), &config).unwrap();
    let classifier = dir.join("cls");
    let (ok, stderr) = finetune_cli(&dir.join("cls.toml"), &classifier);
    assert!(ok, "{stderr}");
    let tagged: String = (0..48)
        .map(|i| {
            let words = ["the", "fox", "jumps", "over", "the", "dog"];
            let labels = [
                "O",
                "B-THING",
                "O",
                "O",
                "O",
                if i % 2 == 0 { "B-THING" } else { "O" },
            ];
            json!({"words": words, "labels": labels}).to_string() + "\n"
        })
        .collect();
    std::fs::write(dir.join("tags.jsonl"), tagged).unwrap();
    let tag_config = finetune_config_toml(
        &lm,
        &dir.join("tags.jsonl"),
        &dir.join("tags.jsonl"),
        10,
        10,
    )
    .replace("sequence-classification", "token-classification");
    std::fs::write(dir.join("tag.toml"), tag_config).unwrap();
    let tagger = dir.join("tagger");
    let (ok, stderr) = finetune_cli(&dir.join("tag.toml"), &tagger);
    assert!(ok, "{stderr}");
    [lm, classifier, tagger].map(|p| p.display().to_string())
}

fn cli_json(args: &[&str]) -> Value {
    let (ok, stdout, stderr) = roformer(args);
    assert!(ok, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn max_gap(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn unit(v: &[f64]) -> Vec<f64> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

const TEXTS: [&str; 3] = [
    "the quick brown fox",
    "to be or not to be that is the question",
    "all the world is a stage",
];

#[test]
fn every_route_answers_as_the_command_does() {
    let dir = tempfile::tempdir().unwrap();
    let [lm, classifier, tagger] = models(dir.path());
    let served = Served::start(&[
        "--model",
        &format!("lm={lm}"),
        "--model",
        &format!("cls={classifier}"),
        "--model",
        &format!("tagger={tagger}"),
    ]);

    // Embeddings: TEI's /embed (raw and normalised) and OpenAI's, against `embed --json`.
    let input = dir.path().join("lines.txt");
    std::fs::write(&input, TEXTS.join("\n")).unwrap();
    let (ok, stdout, stderr) = roformer(&[
        "embed",
        "--model",
        &lm,
        "--input",
        input.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let expected: Vec<Vec<f64>> = stdout
        .lines()
        .map(|l| floats(&serde_json::from_str(l).unwrap()))
        .collect();
    let (status, raw, headers) =
        served.post("/embed", &json!({"inputs": TEXTS, "normalize": false}));
    assert_eq!(status, 200, "{raw}");
    for name in [
        "x-queue-time",
        "x-inference-time",
        "x-total-time",
        "x-compute-tokens",
    ] {
        assert!(headers.contains_key(name), "no {name} header");
    }
    for (served, expected) in raw.as_array().unwrap().iter().zip(&expected) {
        assert!(max_gap(&floats(served), expected) < SAME);
    }
    let (_, normalised, _) = served.post("/embed", &json!({"inputs": TEXTS[1]}));
    assert!(max_gap(&floats(&normalised[0]), &unit(&expected[1])) < SAME);
    let openai = json!({"input": TEXTS, "model": "lm", "encoding_format": "base64"});
    let (status, answer, _) = served.post("/v1/embeddings", &openai);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "list");
    assert_eq!(answer["model"], "lm");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer["data"][2]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks(4)
        .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
        .collect();
    assert!(max_gap(&decoded, &unit(&expected[2])) < SAME);
    assert!(answer["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    // Fill-mask against `fill-mask --json`.
    let text = "the quick [MASK] fox";
    let command = cli_json(&["fill-mask", "--model", &lm, "--json", text]);
    let (status, answer, _) = served.post("/fill-mask", &json!({"inputs": text, "model": "lm"}));
    assert_eq!(status, 200, "{answer}");
    let candidates = &command[0]["candidates"];
    for (served, command) in answer
        .as_array()
        .unwrap()
        .iter()
        .zip(candidates.as_array().unwrap())
    {
        assert_eq!(served["token"], command["id"]);
        assert!(
            (served["score"].as_f64().unwrap() - command["probability"].as_f64().unwrap()).abs()
                < SAME
        );
        let token = command["token"].as_str().unwrap();
        assert_eq!(
            served["sequence"],
            text.replace("[MASK]", token.trim_start_matches("##"))
        );
    }

    // Classification against `classify --json`; a pair too.
    for (body, args) in [
        (json!({"inputs": TEXTS[0], "model": "cls"}), vec![TEXTS[0]]),
        (
            json!({"inputs": [TEXTS[0], TEXTS[2]], "model": "cls"}),
            vec![TEXTS[0], TEXTS[2]],
        ),
    ] {
        let mut command = vec!["classify", "--model", &classifier, "--json"];
        command.extend(args);
        let command = cli_json(&command);
        let (status, answer, _) = served.post("/predict", &body);
        assert_eq!(status, 200, "{answer}");
        for (served, command) in answer
            .as_array()
            .unwrap()
            .iter()
            .zip(command["probabilities"].as_array().unwrap())
        {
            assert_eq!(served["label"], command["label"]);
            assert!(
                (served["score"].as_f64().unwrap() - command["probability"].as_f64().unwrap())
                    .abs()
                    < SAME
            );
        }
    }

    // Tagging against `tag --json`, word by word, with character offsets.
    let text = "the fox  jumps over the dog";
    let command = cli_json(&["tag", "--model", &tagger, "--json", text]);
    let (status, answer, _) = served.post("/tag", &json!({"inputs": text, "model": "tagger"}));
    assert_eq!(status, 200, "{answer}");
    let words: Vec<&Value> = command["words"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["label"] != "O")
        .collect();
    assert_eq!(answer.as_array().unwrap().len(), words.len());
    for (served, command) in answer.as_array().unwrap().iter().zip(words) {
        assert_eq!(served["entity"], command["label"]);
        assert_eq!(served["word"], command["word"]);
        assert!(
            (served["score"].as_f64().unwrap() - command["probability"].as_f64().unwrap()).abs()
                < SAME
        );
        let (start, end) = (
            served["start"].as_u64().unwrap() as usize,
            served["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(&text[start..end], command["word"].as_str().unwrap());
    }

    // Similarity against `similarity`.
    let (ok, stdout, stderr) = roformer(&["similarity", "--model", &lm, TEXTS[0], TEXTS[1]]);
    assert!(ok, "{stderr}");
    let body = json!({"inputs": {"source_sentence": TEXTS[0], "sentences": [TEXTS[1], TEXTS[2]]}});
    let (status, answer, _) = served.post("/similarity", &body);
    assert_eq!(status, 200, "{answer}");
    assert!((answer[0].as_f64().unwrap() - stdout.trim().parse::<f64>().unwrap()).abs() < 2e-6);

    // Tokenize, info, health, metrics.
    let (status, answer, _) = served.post("/tokenize", &json!({"inputs": "the fox"}));
    assert_eq!(status, 200, "{answer}");
    let tokens = answer[0].as_array().unwrap();
    assert_eq!(tokens.first().unwrap()["special"], true);
    assert_eq!(tokens[1]["text"], "the");
    assert_eq!(
        (tokens[1]["start"].as_u64(), tokens[1]["stop"].as_u64()),
        (Some(0), Some(3))
    );
    let (status, info) = served.get("/info");
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["models"][1]["tasks"], json!(["embed", "classify"]));
    assert_eq!(served.get("/health").0, 200);
    let (status, metrics) = served.get("/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("roformer_requests_total"), "{metrics}");
    assert!(metrics.contains("roformer_batch_size"), "{metrics}");
}

#[test]
fn errors_are_json_with_tei_status_codes_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let lm = dir.path().join("lm");
    write_model_dir(&lm);
    let lm = lm.to_str().unwrap();
    let served = Served::start(&[
        "--model",
        lm,
        "--api-key",
        "secret",
        "--payload-limit",
        "3000",
        "--max-concurrent-requests",
        "4",
    ]);
    let key = Some("secret");
    let cases: Vec<(&str, Value, Option<&str>, u16)> = vec![
        ("/embed", json!({"inputs": ""}), key, 400),
        ("/embed", json!({"inputs": []}), key, 400),
        ("/embed", json!({"inputs": "the fox"}), None, 401),
        ("/embed", json!({"inputs": "the fox"}), Some("wrong"), 401),
        ("/embed", json!({"inputs": "fox ".repeat(1000)}), key, 413),
        ("/embed", json!({"inputs": 3}), key, 422),
        (
            "/embed",
            json!({"inputs": "the fox", "pooling": "max"}),
            key,
            422,
        ),
        ("/embed", json!({"inputs": "fox ".repeat(40)}), key, 422),
        (
            "/embed",
            json!({"inputs": "the fox", "model": "nope"}),
            key,
            422,
        ),
        ("/predict", json!({"inputs": "the fox"}), key, 424),
        (
            "/embed",
            json!({"inputs": ["a", "b", "c", "d", "e"]}),
            key,
            429,
        ),
    ];
    for (path, body, key, expected) in cases {
        let (status, answer, _) = served.post_with(path, &body, key);
        assert_eq!(status, expected, "{path} {body}: {answer}");
        assert!(
            answer["error"].is_string() && answer["error_type"].is_string(),
            "{answer}"
        );
        let (status, answer, _) =
            served.post_with("/embed", &json!({"inputs": "the fox"}), Some("secret"));
        assert_eq!(status, 200, "after {body}: {answer}");
    }
    // Not JSON at all (and no key): 401 first; with the key, 422.
    let (status, answer) = served.post_raw("/embed", "{not json");
    assert_eq!(status, 401, "{answer}");
    // OpenAI's route answers in OpenAI's error shape.
    let (status, answer, _) = served.post_with("/v1/embeddings", &json!({"input": ""}), key);
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"].is_string() && answer["error"]["type"].is_string(),
        "{answer}"
    );
    // Truncation asked for: a long input is answered.
    let (status, answer, _) = served.post_with(
        "/embed",
        &json!({"inputs": "fox ".repeat(40), "truncate": true}),
        key,
    );
    assert_eq!(status, 200, "{answer}");
    // /health, /info and /metrics need no key.
    assert_eq!(served.get("/health").0, 200);
    assert_eq!(served.get("/info").0, 200);

    // A request of 2,000 inputs (queued 32 at a time) cannot be answered within 1 ms:
    // 504 in the TEI shape, and the server goes on.
    let timing_out = Served::start(&[
        "--model",
        lm,
        "--request-timeout",
        "0.001",
        "--max-concurrent-requests",
        "4000",
    ]);
    let many: Vec<&str> = (0..2000).map(|i| TEXTS[i % 3]).collect();
    let (status, answer, _) = timing_out.post("/embed", &json!({"inputs": many}));
    assert_eq!(status, 504, "{answer}");
    assert_eq!(answer["error_type"], "timeout");
    assert_eq!(timing_out.get("/health").0, 200);
}

#[test]
fn batched_answers_equal_lone_answers_under_a_burst_and_a_client_that_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let lm = dir.path().join("lm");
    write_model_dir(&lm);
    let served = Arc::new(Served::start(&[
        "--model",
        lm.to_str().unwrap(),
        "--max-batch-tokens",
        "256",
        "--max-concurrent-requests",
        "4096",
    ]));
    // Texts of 1 to 6 words: 3 to about 20 tokens, within the model's 32.
    let words: Vec<&str> = "the quick brown fox jumps over".split(' ').collect();
    let texts: Vec<String> = (1..=words.len()).map(|n| words[..n].join(" ")).collect();
    let alone: Vec<Vec<f64>> = texts
        .iter()
        .map(|t| {
            let (status, answer, _) = served.post("/embed", &json!({"inputs": t}));
            assert_eq!(status, 200, "{answer}");
            floats(&answer[0])
        })
        .collect();
    let texts = Arc::new(texts);
    let alone = Arc::new(alone);

    // A client that sends a request and goes away before the answer.
    let address = served.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let body = json!({"inputs": texts.as_slice()}).to_string();
    write!(stream, "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    drop(stream);

    // 2,000 requests over 64 connections, mixed lengths: every answer as the lone one.
    let threads: Vec<_> = (0..64)
        .map(|thread| {
            let (served, texts, alone) = (served.clone(), texts.clone(), alone.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for request in 0..32 {
                    if thread * 32 + request >= 2000 {
                        break;
                    }
                    let pick = (thread * 7 + request * 3) % texts.len();
                    let mut response = agent
                        .post(format!("{}/embed", served.base))
                        .send_json(json!({"inputs": [texts[pick].as_str(), texts[0].as_str()]}))
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                    let answer: Value =
                        serde_json::from_str(&response.body_mut().read_to_string().unwrap())
                            .unwrap();
                    assert!(max_gap(&floats(&answer[0]), &alone[pick]) < 1e-5);
                    assert!(max_gap(&floats(&answer[1]), &alone[0]) < 1e-5);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    served.assert_serving();
}

#[test]
fn sigterm_lets_requests_in_flight_finish_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let lm = dir.path().join("lm");
    write_model_dir(&lm);
    let mut served = Served::start(&[
        "--model",
        lm.to_str().unwrap(),
        "--max-batch-tokens",
        "32",
        "--max-concurrent-requests",
        "30000",
    ]);
    let texts: Vec<String> = (0..20000)
        .map(|i| format!("the quick brown fox {i}"))
        .collect();
    let base = served.base.clone();
    let inflight = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .post(format!("{base}/embed"))
            .send_json(json!({"inputs": texts}))
            .unwrap();
        let status = response.status().as_u16();
        let answer: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        (
            status,
            answer.as_array().map_or(0, Vec::len),
            std::time::Instant::now(),
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = served.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let signalled = std::time::Instant::now();
    let (status, answered, at) = inflight.join().unwrap();
    assert_eq!((status, answered), (200, 20000));
    assert!(
        at > signalled,
        "the request was answered before the signal: not in flight"
    );
    let exit = served.child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// Several models in one server, routed by the request's `"model"`.
#[test]
fn a_request_names_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    write_model_dir(&a);
    write_model_dir(&b);
    let served = Served::start(&[
        "--model",
        &format!("first={}", a.display()),
        "--model",
        &format!("second={}", b.display()),
    ]);
    let answer = |model: Option<&str>| {
        let mut body = json!({"inputs": "the fox", "normalize": false});
        if let Some(model) = model {
            body["model"] = json!(model);
        }
        let (status, answer, _) = served.post("/embed", &body);
        assert_eq!(status, 200, "{answer}");
        floats(&answer[0])
    };
    let (default, first, second) = (answer(None), answer(Some("first")), answer(Some("second")));
    assert_eq!(default, first);
    // The two fresh models are drawn apart: different embeddings.
    assert!(max_gap(&first, &second) > 1e-3);
    let cli = |dir: &Path| {
        let (ok, stdout, _) = roformer(&[
            "similarity",
            "--model",
            dir.to_str().unwrap(),
            "the fox",
            "the fox",
        ]);
        assert!(ok);
        stdout
    };
    assert_eq!(cli(&a).trim(), "1.000000");
}
