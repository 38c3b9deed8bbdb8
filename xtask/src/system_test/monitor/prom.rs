//! The metrics scenario's probe: scrapes `vigil metrics` while it watches a live kernel,
//! lints the exposition with `promtool check metrics`, and has a real Prometheus server
//! (Debian's `prometheus` package) scrape the endpoint on loopback, then asks it what it
//! stored.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::prereq::{find_on_path, PROMETHEUS, PROMETHEUS_MISSING_MESSAGE, PROMTOOL};
use crate::qemu;

/// What the probe found.
#[derive(Clone, Debug)]
pub struct MetricsProbe {
    /// The first `/metrics` body (classic text format) that had the kernel's thread series.
    pub text: Result<String, String>,
    /// `promtool check metrics` on `text`: Ok, or its complaints.
    pub promtool: Result<(), String>,
    /// Prometheus's answers (the `data.result` arrays) to [`QUERIES`], in order.
    pub queries: Result<Vec<Value>, String>,
}

/// What Prometheus is asked once it has scraped the endpoint.
pub const QUERIES: [&str; 3] = [
    "vigil_link_up",
    "up{job=\"vigil\"}",
    "count(vigil_thread_cpu_seconds_total)",
];

/// How long `/metrics` may take to show the kernel's threads.
const FIRST_SCRAPE_WITHIN: Duration = Duration::from_secs(6);
/// How long Prometheus may take to start and store a scrape.
const PROMETHEUS_WITHIN: Duration = Duration::from_secs(20);

/// A GET on 127.0.0.1:`port`; the body of a 200 answer.
pub fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("an HTTP answer without a header end")?;
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        return Err(format!("GET {path}: {status}"));
    }
    Ok(body.to_string())
}

/// Percent-encodes a query parameter.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `data.result` array of a Prometheus query answer.
pub fn query_result(answer: &str) -> Result<Value, String> {
    let value: Value =
        serde_json::from_str(answer).map_err(|e| format!("Prometheus answered non-JSON: {e}"))?;
    if value["status"] != "success" {
        return Err(format!("Prometheus query failed: {answer}"));
    }
    Ok(value["data"]["result"].clone())
}

/// The first sample's value of a query result, as a number.
pub fn first_value(result: &Value) -> Option<f64> {
    result.get(0)?.get("value")?.get(1)?.as_str()?.parse().ok()
}

/// `promtool check metrics` on `text`.
pub fn promtool_check(text: &str) -> Result<(), String> {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {PROMTOOL}: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("promtool stdin")?;
    stdin
        .write_all(text.as_bytes())
        .map_err(|e| format!("writing to promtool: {e}"))?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for promtool: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The series the probe waits for before judging the exposition: the spinner's CPU counter.
pub const SPINNER_COUNTER: &str = "vigil_thread_cpu_seconds_total{thread=\"spinner#";

/// Runs the probe against `vigil metrics` on `metrics_port`; Prometheus's files go to
/// `work_dir`.
pub fn probe(metrics_port: u16, work_dir: &Path) -> MetricsProbe {
    let mut probe = MetricsProbe {
        text: Err("no scrape yet".into()),
        promtool: Err("not run".into()),
        queries: Err("not run".into()),
    };
    if find_on_path(PROMTOOL).is_none() || find_on_path(PROMETHEUS).is_none() {
        probe.promtool = Err(PROMETHEUS_MISSING_MESSAGE.to_string());
        probe.queries = Err(PROMETHEUS_MISSING_MESSAGE.to_string());
    }
    // Prometheus first: it starts in the background (a Go binary and a fresh TSDB take
    // seconds on a loaded machine) while the first scrape and promtool run, so its scrapes
    // fall well inside the tool's window (started after them, it once missed the window).
    let tools = find_on_path(PROMTOOL).is_some() && find_on_path(PROMETHEUS).is_some();
    let server = tools.then(|| start_prometheus(metrics_port, work_dir));
    let until = Instant::now() + FIRST_SCRAPE_WITHIN;
    loop {
        match http_get(metrics_port, "/metrics") {
            // PM starts the spinner a little after the kernel's first threads show.
            Ok(body) if body.contains(SPINNER_COUNTER) => {
                probe.text = Ok(body);
                break;
            }
            Ok(_) => probe.text = Err("the endpoint never showed the spinner's thread".into()),
            Err(error) => probe.text = Err(format!("scraping /metrics: {error}")),
        }
        if Instant::now() >= until {
            return probe;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let Some(server) = server else {
        return probe;
    };
    if let Ok(text) = &probe.text {
        probe.promtool = promtool_check(text);
    }
    probe.queries = server.and_then(|server| server.queries());
    probe
}

/// A Prometheus scraping `vigil metrics`, stopped when dropped.
struct Prometheus {
    child: std::process::Child,
    web_port: u16,
    log_path: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Prometheus {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (up to `PROMETHEUS_WITHIN`) until every query has a value, then stops it.
    fn queries(self) -> Result<Vec<Value>, String> {
        let until = Instant::now() + PROMETHEUS_WITHIN;
        let result = loop {
            let answers: Result<Vec<Value>, String> = QUERIES
                .iter()
                .map(|q| {
                    http_get(
                        self.web_port,
                        &format!("/api/v1/query?query={}", url_encode(q)),
                    )
                    .and_then(|answer| query_result(&answer))
                })
                .collect();
            match answers {
                Ok(answers) if answers.iter().all(|a| first_value(a).is_some()) => {
                    break Ok(answers)
                }
                Ok(answers) if Instant::now() >= until => {
                    break Err(format!(
                        "Prometheus stored no scrape within {} s: {answers:?} (log: {})",
                        PROMETHEUS_WITHIN.as_secs(),
                        self.log_path.display()
                    ))
                }
                Err(error) if Instant::now() >= until => {
                    break Err(format!("{error} (log: {})", self.log_path.display()))
                }
                _ => thread::sleep(Duration::from_millis(250)),
            }
        };
        result
    }
}

/// Starts Prometheus scraping `vigil metrics` on `metrics_port` every second.
fn start_prometheus(metrics_port: u16, work_dir: &Path) -> Result<Prometheus, String> {
    let web_port = qemu::free_local_port().map_err(|e| format!("{e:#}"))?;
    let config = work_dir.join("prometheus.yml");
    let data = work_dir.join("prometheus-data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: vigil\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .map_err(|e| format!("writing {}: {e}", config.display()))?;
    let log_path = work_dir.join("prometheus.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .spawn()
        .map_err(|e| format!("cannot start {PROMETHEUS}: {e}"))?;
    Ok(Prometheus {
        child,
        web_port,
        log_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_url_encoded() {
        assert_eq!(url_encode("up{job=\"vigil\"}"), "up%7Bjob%3D%22vigil%22%7D");
        assert_eq!(url_encode("vigil_link_up"), "vigil_link_up");
    }

    #[test]
    fn reads_query_answers() {
        let answer = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"vigil_link_up"},"value":[1700000000.1,"1"]}]}}"#;
        let result = query_result(answer).unwrap();
        assert_eq!(first_value(&result), Some(1.0));
        let empty = query_result(r#"{"status":"success","data":{"result":[]}}"#).unwrap();
        assert_eq!(first_value(&empty), None);
        assert!(query_result(r#"{"status":"error","error":"bad"}"#).is_err());
        assert!(query_result("nope").is_err());
    }
}
