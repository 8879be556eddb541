//! `run --dashboard`: the live page, its script and its pushed frames, read by a plain
//! HTTP client during a real run of the binary; and a dashboard address that is taken.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{SMALL, sim};

/// Reads the child's stderr until the dashboard's address; the rest keeps draining.
fn dashboard_url(stderr: impl std::io::Read + Send + 'static) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split("live dashboard at ").nth(1) {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("the dashboard's address on stderr")
}

/// Server-Sent Events of `body` so far: `(event, data)` of every complete one.
fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty() && body.contains(&format!("{block}\n\n")))
        .map(|block| {
            let mut name = "message".to_owned();
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                    data.push(d);
                }
            }
            (name, data.join("\n"))
        })
        .collect()
}

/// The number shown in the tile labelled `label`, if the frame has it.
fn tile(frame: &str, label: &str) -> Option<f64> {
    let end = frame.find(&format!("</b><span>{label}</span>"))?;
    let start = frame[..end].rfind("<b>")? + 3;
    frame[start..end].split_whitespace().next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_the_run_and_ends_with_the_verdict() {
    let out = tempfile::tempdir().unwrap();
    let mut child = sim()
        .arg("run")
        .args(SMALL)
        .args(["--quiet", "--dashboard", "127.0.0.1:0", "--out"])
        .arg(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = dashboard_url(child.stderr.take().unwrap());
    let http = reqwest::Client::new();

    let page = http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<div id=\"live\">") && html.contains("src=\"dashboard.js\""), "{html}");
    let script = http.get(format!("{url}dashboard.js")).send().await.unwrap();
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("new EventSource(\"events\")"));

    // One request, held open: the frames come by themselves.
    let mut stream = http.get(format!("{url}events")).send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !events(&body).iter().any(|(name, _)| name == "end") {
        assert!(Instant::now() < deadline, "no end event: {body}");
        match tokio::time::timeout(Duration::from_secs(30), stream.chunk()).await {
            Ok(Ok(Some(chunk))) => body.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the event stream stopped before the end ({other:?}): {body}"),
        }
    }
    let all = events(&body);
    let frames: Vec<&String> = all.iter().filter(|(n, _)| n == "frame").map(|(_, d)| d).collect();
    let traffic: Vec<&&String> = frames.iter().filter(|f| tile(f, "deliveries/s").is_some_and(|d| d > 0.0)).collect();
    assert!(traffic.len() >= 2, "a frame per second of traffic, with deliveries: {body}");
    assert!(traffic.iter().any(|f| f.contains("<td>firehose</td>")), "per-group latency: {body}");
    assert!(traffic.iter().any(|f| f.contains("<svg")), "the over-time plots: {body}");
    assert!(traffic.iter().any(|f| tile(f, "open connections") == Some(30.0)), "30 listeners open: {body}");
    let (_, end) = all.iter().find(|(n, _)| n == "end").unwrap();
    assert!(end.contains("PASS"), "{end}");
    assert!(end.contains("report.html"), "{end}");
    assert!(all.iter().skip_while(|(n, _)| n != "end").count() == 1, "nothing after the end");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the run did not exit after the end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_taken_dashboard_address_is_a_usage_error_before_anything_runs() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = tempfile::tempdir().unwrap();
    let output =
        sim().args(["run", "--duration", "3s", "--dashboard", &addr, "--out"]).arg(out.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot serve the dashboard on {addr}")), "{stderr}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "no report of a run that did not start");
}
