//! Runs rotel (PyPI `rotel`, a Rust OpenTelemetry collector) as a real peer collector
//! for the chaining tests.
//!
//! The binary is found by [`find_rotel`]: env `ROTEL_BIN`, else
//! `target/rotel/rotel/rotel-agent` (where `.ci/run` installs it with
//! `pip install --target target/rotel`), else the `rotel` Python package's binary.
//! Missing: panics when env `CI` is set, otherwise returns None so the test can say
//! how to install it and return early.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ROTEL_VERSION: &str = "0.0.1a15";
pub const INSTALL_HINT: &str = "python3 -m pip install --target target/rotel rotel==0.0.1a15";

pub fn find_rotel() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("ROTEL_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "ROTEL_BIN={} does not exist", bin.display());
        return Some(bin);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/rotel/rotel/rotel-agent");
    if local.is_file() {
        return Some(local);
    }
    let from_python = Command::new("python3")
        .args([
            "-c",
            "import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file());
    if from_python.is_some() {
        return from_python;
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("rotel is not installed but CI is set: run `{INSTALL_HINT}` (or set ROTEL_BIN)");
    }
    None
}

/// The rotel binary, or None after printing how to get it.
pub fn rotel_or_skip(test: &str) -> Option<PathBuf> {
    let found = find_rotel();
    if found.is_none() {
        eprintln!(
            "{test}: skipped, rotel {ROTEL_VERSION} is not installed. Install it with \
             `{INSTALL_HINT}` in the project root, or set ROTEL_BIN."
        );
    }
    found
}

/// A running rotel: OTLP/gRPC in on `grpc_addr`, OTLP/gRPC out to one endpoint.
pub struct Rotel {
    pub grpc_addr: SocketAddr,
    child: Child,
    _logs: tempfile::TempDir,
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (rotel cannot listen on port 0 and report it).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

impl Rotel {
    /// Starts rotel exporting everything it receives, over OTLP/gRPC, to `endpoint`,
    /// and returns once its receiver accepts connections.
    pub async fn start(bin: &PathBuf, endpoint: &str) -> Rotel {
        let (grpc_addr, http_addr) = (free_port(), free_port());
        let logs = tempfile::tempdir().unwrap();
        let child = Command::new(bin)
            .arg("start")
            .args(["--otlp-grpc-endpoint", &grpc_addr.to_string()])
            .args(["--otlp-http-endpoint", &http_addr.to_string()])
            .args(["--exporter", "otlp"])
            .args(["--otlp-exporter-endpoint", endpoint])
            .args(["--otlp-exporter-protocol", "grpc"])
            // Flush batches promptly.
            .args(["--batch-timeout", "50ms"])
            .arg("--log-file")
            .arg(logs.path().join("rotel.log"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(logs.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(logs.path().join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut rotel = Rotel {
            grpc_addr,
            child,
            _logs: logs,
        };
        // rotel prints no readiness line: wait until its port accepts connections
        // (polled; a failure guard, not a timing assumption).
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if tokio::net::TcpStream::connect(grpc_addr).await.is_ok() {
                    return;
                }
                if let Ok(Some(status)) = rotel.child.try_wait() {
                    panic!("rotel exited at start: {status}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "rotel did not start listening on {grpc_addr}"
        );
        rotel
    }

    /// What rotel printed so far (for failure messages).
    pub fn output(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self._logs.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stdout"), read("stderr"))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }
}
