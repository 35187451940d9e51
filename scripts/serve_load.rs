//! Load generator for `roformer serve`, in plain Rust with the standard library only, so
//! that it takes little of the CPU the server shares with it on a small machine (it
//! prints the CPU time it used).
//!
//! Drives POST /embed (or `--route`) at a fixed concurrency: one thread and one keep-alive
//! connection per concurrent client, one request in flight on each, every request one
//! sentence drawn in turn from a file, for a fixed time. Prints one JSON object:
//! requests/s, tokens/s (from the server's `x-compute-tokens` header), p50/p90/p99
//! latency in ms, p50/p99 of the server's `x-inference-time` (its batches' compute, whole
//! ms), errors, the mean batch size the server formed in that window (from
//! /metrics: `roformer_batch_size` sum / count), and the CPU seconds this process used.
//!
//! Build and run (bench_serve.sh does both):
//!   rustc -O --edition 2024 -o serve_load scripts/serve_load.rs
//!   ./serve_load --url http://127.0.0.1:PORT --sentences FILE --concurrency 32 --duration 15

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    host: String,
    sentences: Vec<String>,
    concurrency: usize,
    duration: Duration,
    route: String,
}

#[derive(Default)]
struct Tally {
    latencies: Vec<f64>,
    /// The server's `x-inference-time` of each answer (ms, whole): its batch's compute.
    inference_ms: Vec<f64>,
    tokens: u64,
    errors: u64,
}

fn main() {
    let args = parse_args();
    let args = Arc::new(args);
    let before = batch_totals(&args.host);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let deadline = started + args.duration;
    let workers: Vec<_> = (0..args.concurrency)
        .map(|client| {
            let args = Arc::clone(&args);
            std::thread::spawn(move || drive(&args, client, deadline))
        })
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        let part = worker.join().expect("a client thread panicked");
        tally.latencies.extend(part.latencies);
        tally.inference_ms.extend(part.inference_ms);
        tally.tokens += part.tokens;
        tally.errors += part.errors;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let after = batch_totals(&args.host);
    tally.latencies.sort_by(f64::total_cmp);
    tally.inference_ms.sort_by(f64::total_cmp);
    let percentile_of = |values: &[f64], scale: f64, p: f64| {
        let n = values.len();
        if n == 0 {
            "null".to_string()
        } else {
            let at = ((p / 100.0 * n as f64) as usize).min(n - 1);
            format!("{:.3}", scale * values[at])
        }
    };
    let percentile = |p: f64| percentile_of(&tally.latencies, 1000.0, p);
    let inference = |p: f64| percentile_of(&tally.inference_ms, 1.0, p);
    let batches = after.1 - before.1;
    let mean_batch = if batches > 0.0 {
        format!("{:.2}", (after.0 - before.0) / batches)
    } else {
        "null".to_string()
    };
    let requests = tally.latencies.len();
    println!(
        "{{\"concurrency\": {}, \"requests\": {requests}, \"errors\": {}, \"seconds\": {seconds:.3}, \
         \"requests_per_second\": {:.1}, \"tokens_per_second\": {:.1}, \"p50_ms\": {}, \
         \"p90_ms\": {}, \"p99_ms\": {}, \"inference_p50_ms\": {}, \"inference_p99_ms\": {}, \
         \"mean_batch_size\": {mean_batch}, \"load_generator_cpu_seconds\": {cpu:.2}}}",
        args.concurrency,
        tally.errors,
        requests as f64 / seconds,
        tally.tokens as f64 / seconds,
        percentile(50.0),
        percentile(90.0),
        percentile(99.0),
        inference(50.0),
        inference(99.0),
    );
}

fn parse_args() -> Args {
    let mut url = None;
    let mut sentences = None;
    let mut concurrency = 1;
    let mut duration = 10.0;
    let mut route = "/embed".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--url" => url = Some(value),
            "--sentences" => sentences = Some(value),
            "--concurrency" => {
                concurrency = value.parse().unwrap_or_else(|_| fail("bad --concurrency"))
            }
            "--duration" => duration = value.parse().unwrap_or_else(|_| fail("bad --duration")),
            "--route" => route = value,
            _ => fail(&format!("unknown flag {flag}")),
        }
    }
    let url = url.unwrap_or_else(|| fail("--url http://127.0.0.1:PORT is required"));
    let host = url
        .trim_end_matches('/')
        .strip_prefix("http://")
        .filter(|h| h.starts_with("127.") || h.starts_with("localhost:") || h.starts_with("[::1]:"))
        .unwrap_or_else(|| fail("--url must be a loopback address (http://127.0.0.1:PORT)"))
        .to_string();
    let path = sentences.unwrap_or_else(|| fail("--sentences FILE is required"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    let sentences: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if sentences.is_empty() || concurrency == 0 {
        fail("need at least one sentence and a concurrency of at least 1");
    }
    Args {
        host,
        sentences,
        concurrency,
        duration: Duration::from_secs_f64(duration),
        route,
    }
}

fn fail(message: &str) -> ! {
    eprintln!("serve_load: {message}");
    std::process::exit(2);
}

/// One client: requests in turn on one connection until `deadline` (reconnecting after
/// a failure, which counts as an error).
fn drive(args: &Args, client: usize, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut index = client;
    let mut connection = None;
    while Instant::now() < deadline {
        let sentence = &args.sentences[index % args.sentences.len()];
        index += args.concurrency;
        let body = format!("{{\"inputs\": {}}}", json_string(sentence));
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            args.route,
            args.host,
            body.len()
        );
        let started = Instant::now();
        let stream = match connection.take() {
            Some(stream) => stream,
            None => match TcpStream::connect(&args.host) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    BufReader::new(stream)
                }
                Err(_) => {
                    tally.errors += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        match exchange(stream, request.as_bytes()) {
            Ok((stream, status, tokens, inference_ms)) => {
                tally.latencies.push(started.elapsed().as_secs_f64());
                tally.inference_ms.extend(inference_ms);
                if status == 200 {
                    tally.tokens += tokens;
                } else {
                    tally.errors += 1;
                }
                connection = Some(stream);
            }
            Err(_) => tally.errors += 1,
        }
    }
    tally
}

/// Sends one request and reads its answer: (the connection, status, `x-compute-tokens`,
/// `x-inference-time`).
fn exchange(
    mut stream: BufReader<TcpStream>,
    request: &[u8],
) -> std::io::Result<(BufReader<TcpStream>, u16, u64, Option<f64>)> {
    stream.get_mut().write_all(request)?;
    let mut line = String::new();
    stream.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut length, mut tokens, mut inference_ms) = (0usize, 0u64, None);
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "x-compute-tokens" => tokens = value.trim().parse().unwrap_or(0),
                "x-inference-time" => inference_ms = value.trim().parse().ok(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok((stream, status, tokens, inference_ms))
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// (sum, count) of `roformer_batch_size` over every model, from /metrics.
fn batch_totals(host: &str) -> (f64, f64) {
    let text = (|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect(host)?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })()
    .unwrap_or_else(|e| fail(&format!("GET /metrics: {e}")));
    let (mut sum, mut count) = (0.0, 0.0);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("roformer_batch_size_") else {
            continue;
        };
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if rest.starts_with("sum") {
            sum += value;
        } else if rest.starts_with("count") {
            count += value;
        }
    }
    (sum, count)
}

/// User plus system CPU seconds of this process so far (Linux `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}
