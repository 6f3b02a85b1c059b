//! `metrics_listen`, as root against a real `berth run`: the loop serves `GET /metrics`
//! on loopback, Prometheus's own `promtool` accepts the text, and a real Prometheus
//! server (Debian's `prometheus` package, which tests/run installs) scrapes it and
//! answers a query with berth's series. Everything stays on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
use common::berth_run::Berth;

/// A loopback port nobody listens on now (the kernel's pick, released at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 exchange with 127.0.0.1:`port` (1.0: the answer is never chunked and
/// ends with the connection): the status code, the head and the body.
fn http(port: u16, request_line: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "{request_line}\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_owned(), body.to_owned())
}

/// A program of Debian's `prometheus` package, or a loud failure saying so.
fn prometheus_program(name: &str) -> Command {
    let path = format!("/usr/bin/{name}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's prometheus package (tests/run installs it)"
    );
    Command::new(path)
}

/// Prometheus's own checker (the parser and its naming lints) accepts `text`, saying
/// nothing.
fn promtool_accepts(text: &str) {
    let mut promtool = prometheus_program("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus server, killed (and its data removed with its directory) on drop,
/// whether the test passed or not.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Prometheus {
    /// Scrapes `target` every second; listens on a free loopback port.
    fn start(target: &str) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let config = format!(
            "global: {{ scrape_interval: 1s, scrape_timeout: 1s }}\n\
             scrape_configs:\n  - job_name: berth\n    static_configs: [{{ targets: [\"{target}\"] }}]\n"
        );
        dir.write("prometheus.yml", config.as_bytes());
        let port = free_port();
        let child = prometheus_program("prometheus")
            .arg(format!("--config.file={}", dir.s("prometheus.yml")))
            .arg(format!("--storage.tsdb.path={}", dir.s("data")))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn metrics_are_served_on_loopback_and_scraped_by_a_real_prometheus() {
    let port = free_port();
    let mut b = Berth::start_in(
        "metrics",
        &[
            ("alpha", "command: [probe, sleep]\n"),
            (
                "beta",
                "command: [probe, sleep]\nresources: { memory: 32M }\n",
            ),
        ],
        &[],
        &format!("metrics_listen: 127.0.0.1:{port}\n"),
    );
    b.expect(
        &format!("serving metrics at http://127.0.0.1:{port}/metrics"),
        20,
    );
    b.expect_all(&["alpha: running", "beta: running"], 20);

    let (status, head, body) = http(port, "GET /metrics HTTP/1.1");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{head}"
    );
    for line in [
        "berth_app_state{app=\"alpha\",state=\"running\"} 1\n",
        "berth_app_state{app=\"beta\",state=\"running\"} 1\n",
        "berth_app_up{app=\"alpha\"} 1\n",
        "berth_app_up{app=\"beta\"} 1\n",
        "berth_app_restarts_total{app=\"alpha\"} 0\n",
        "berth_app_memory_limit_bytes{app=\"beta\"} 33554432\n",
        "# TYPE berth_app_cpu_seconds_total counter\n",
        "# TYPE berth_resident_memory_bytes gauge\n",
    ] {
        assert!(body.contains(line), "no {line:?} in\n{body}");
    }
    // Without a memory limit there is no limit sample; with no health check, no
    // health sample.
    assert!(
        !body.contains("berth_app_memory_limit_bytes{app=\"alpha\"}"),
        "{body}"
    );
    assert!(!body.contains("berth_app_healthy{"), "{body}");

    let (status, _, body) = http(port, "GET /other HTTP/1.1");
    assert_eq!(status, 404, "{body}");
    let (status, head, _) = http(port, "POST /metrics HTTP/1.1");
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("\r\nAllow: GET, HEAD\r\n"), "{head}");
    let (status, head, body) = http(port, "HEAD /metrics HTTP/1.1");
    assert_eq!((status, body.as_str()), (200, ""), "{head}");

    // Prometheus's own checker (the parser and its naming lints).
    let (_, _, body) = http(port, "GET /metrics HTTP/1.1");
    promtool_accepts(&body);

    // The same text through the control socket (`berth metrics`), accepted too.
    let (code, text, err) = b.client("metrics", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("berth_app_up{app=\"alpha\"} 1\n"), "{text}");
    promtool_accepts(&text);

    // A real Prometheus scrapes berth; its query API then has both apps' series.
    // Prometheus offers nothing to wait on for "scraped and queryable", so this polls
    // its API (every 200 ms, at most 60 s): the one wait by polling in these tests.
    let prometheus = Prometheus::start(&format!("127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let mut apps = loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", prometheus.port)) {
            drop(stream);
            let (status, _, body) = http(
                prometheus.port,
                "GET /api/v1/query?query=berth_app_up HTTP/1.0",
            );
            if status == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
                if result.len() == 2 {
                    break result;
                }
            }
            last = body;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus had no berth_app_up series of both apps within 60 s; its last answer: {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    apps.sort_by_key(|s| s["metric"]["app"].as_str().unwrap_or_default().to_owned());
    for (series, app) in apps.iter().zip(["alpha", "beta"]) {
        let m = &series["metric"];
        assert_eq!(m["__name__"], "berth_app_up", "{series}");
        assert_eq!(m["app"], app, "{series}");
        assert_eq!(m["job"], "berth", "{series}");
        assert_eq!(m["instance"], format!("127.0.0.1:{port}"), "{series}");
        assert_eq!(series["value"][1], "1", "{series}");
    }
    drop(prometheus);
    assert_eq!(b.stop(20), 0);
}
