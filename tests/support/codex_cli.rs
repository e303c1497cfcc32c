//! Runs the real Codex CLI (`codex exec`) for end-to-end tests.
//!
//! The binary is found by [`find_codex`]: env `CODEX_BIN`, else
//! `node_modules/.bin/codex` under the project root, else `codex` on PATH.
//! Missing: panics when env `CI` is set, otherwise returns None so the test
//! can say how to install it and return early ([`codex_or_skip`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tempfile::TempDir;

/// The Codex CLI version the e2e tests and fixtures are written against.
pub const CODEX_VERSION: &str = "0.169.0";
/// How a developer installs it (from the project root).
pub const INSTALL_HINT: &str = "npm install --no-save @openai/codex@0.169.0";

/// The codex binary, or None if it is not installed (panics if env `CI` is
/// set and it is missing, or if `CODEX_BIN` names a file that does not exist).
pub fn find_codex() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("CODEX_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "CODEX_BIN={} does not exist", bin.display());
        return Some(bin);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/.bin/codex");
    if local.is_file() {
        return Some(local);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let cand = dir.join("codex");
            if cand.is_file() {
                return Some(cand);
            }
        }
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "the Codex CLI is not installed but CI is set: run `{INSTALL_HINT}` in {} \
             (or set CODEX_BIN to the codex binary)",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    None
}

/// [`find_codex`], printing how to install Codex when it is missing.
/// Use as `let Some(codex) = codex_or_skip("my_test") else { return };`.
pub fn codex_or_skip(test_name: &str) -> Option<PathBuf> {
    let found = find_codex();
    if found.is_none() {
        eprintln!(
            "SKIPPING {test_name}: Codex CLI not found. Install it with `{INSTALL_HINT}` in {} \
             or set CODEX_BIN=/path/to/codex",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    found
}

/// Everything that shapes one `codex exec` run.
#[derive(Clone, Debug)]
pub struct CodexExecOptions {
    pub prompt: String,
    /// Provider base URL, e.g. `MockResponses::base_url()` (`http://127.0.0.1:PORT/v1`).
    pub mock_base_url: String,
    /// `[otel] exporter = { otlp-grpc = { endpoint } }`; None = no `[otel]` section.
    pub otlp_grpc_endpoint: Option<String>,
    /// Also `trace_exporter` (needs `otlp_grpc_endpoint`).
    pub trace_exporter: bool,
    /// Also `metrics_exporter` (needs `otlp_grpc_endpoint`).
    pub metrics_exporter: bool,
    /// `[otel] log_user_prompt`.
    pub log_user_prompt: bool,
    pub request_max_retries: u32,
    pub stream_max_retries: u32,
    /// Set CODEX_ROLLOUT_TRACE_ROOT to a fresh dir ([`CodexRun::trace_root`]).
    pub rollout_trace: bool,
    /// Appended to config.toml verbatim.
    pub extra_config: String,
    /// Extra `codex exec` arguments, before the prompt.
    pub extra_args: Vec<String>,
    pub extra_env: Vec<(String, String)>,
    /// Codex is killed after this long.
    pub timeout: Duration,
}

impl CodexExecOptions {
    pub fn new(prompt: impl Into<String>, mock_base_url: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            mock_base_url: mock_base_url.into(),
            otlp_grpc_endpoint: None,
            trace_exporter: false,
            metrics_exporter: false,
            log_user_prompt: true,
            request_max_retries: 0,
            stream_max_retries: 0,
            rollout_trace: false,
            extra_config: String::new(),
            extra_args: Vec::new(),
            extra_env: Vec::new(),
            timeout: Duration::from_secs(120),
        }
    }

    /// Exports logs (and spans if `trace_exporter`) to `endpoint` (`http://127.0.0.1:PORT`).
    pub fn otlp(mut self, endpoint: impl Into<String>, trace_exporter: bool) -> Self {
        self.otlp_grpc_endpoint = Some(endpoint.into());
        self.trace_exporter = trace_exporter;
        self
    }

    pub fn retries(mut self, request_max_retries: u32, stream_max_retries: u32) -> Self {
        self.request_max_retries = request_max_retries;
        self.stream_max_retries = stream_max_retries;
        self
    }

    pub fn rollout_trace(mut self, on: bool) -> Self {
        self.rollout_trace = on;
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra_env.push((key.into(), value.into()));
        self
    }
}

/// CODEX_HOME/config.toml for `opts` (the fixtures' config).
pub fn config_toml(opts: &CodexExecOptions) -> String {
    let mut s = format!(
        r#"model = "gpt-5.1-codex"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "danger-full-access"

[model_providers.mock]
name = "mock"
base_url = {base_url}
wire_api = "responses"
env_key = "MOCK_API_KEY"
request_max_retries = {rr}
stream_max_retries = {sr}
"#,
        base_url = toml_str(&opts.mock_base_url),
        rr = opts.request_max_retries,
        sr = opts.stream_max_retries,
    );
    if let Some(ep) = &opts.otlp_grpc_endpoint {
        let exporter = format!("{{ otlp-grpc = {{ endpoint = {} }} }}", toml_str(ep));
        s.push_str(&format!(
            "\n[otel]\nenvironment = \"dev\"\nlog_user_prompt = {}\nexporter = {exporter}\n",
            opts.log_user_prompt
        ));
        if opts.trace_exporter {
            s.push_str(&format!("trace_exporter = {exporter}\n"));
        }
        if opts.metrics_exporter {
            s.push_str(&format!("metrics_exporter = {exporter}\n"));
        }
    }
    if !opts.extra_config.is_empty() {
        s.push('\n');
        s.push_str(&opts.extra_config);
        s.push('\n');
    }
    s
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The result of one `codex exec`.  The temp dirs live as long as this.
#[derive(Debug)]
pub struct CodexRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub codex_home: TempDir,
    pub work_dir: TempDir,
    /// CODEX_ROLLOUT_TRACE_ROOT, if `rollout_trace` was on.
    pub trace_root: Option<PathBuf>,
}

impl CodexRun {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Exit status, stdout and stderr, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    /// The rollout trace bundles (dirs holding manifest.json) under `trace_root`, sorted.
    pub fn trace_bundles(&self) -> Vec<PathBuf> {
        let Some(root) = &self.trace_root else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("manifest.json").is_file())
            .collect();
        out.sort();
        out
    }
}

/// Runs `codex exec --skip-git-repo-check PROMPT` against the mock with the
/// fixtures' config (retries 0, no rollout trace; see [`run_codex_exec_with`]).
/// `otlp_grpc_endpoint` None = no `[otel]` section.
pub async fn run_codex_exec(
    codex: &Path,
    prompt: &str,
    mock_base_url: &str,
    otlp_grpc_endpoint: Option<&str>,
    trace_exporter: bool,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<CodexRun> {
    let mut opts = CodexExecOptions::new(prompt, mock_base_url);
    opts.otlp_grpc_endpoint = otlp_grpc_endpoint.map(str::to_string);
    opts.trace_exporter = trace_exporter;
    opts.extra_env = extra_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    run_codex_exec_with(codex, &opts).await
}

/// Runs `codex exec [extra_args] --skip-git-repo-check PROMPT` in a fresh temp
/// work dir with a fresh temp CODEX_HOME, stdin from /dev/null,
/// MOCK_API_KEY=x.  Does not fail on a non-zero exit; fails if Codex cannot
/// be started or runs longer than `opts.timeout` (it is then killed).
pub async fn run_codex_exec_with(
    codex: &Path,
    opts: &CodexExecOptions,
) -> anyhow::Result<CodexRun> {
    let codex_home = tempfile::Builder::new().prefix("codex-home-").tempdir()?;
    let work_dir = tempfile::Builder::new().prefix("codex-work-").tempdir()?;
    std::fs::write(codex_home.path().join("config.toml"), config_toml(opts))?;
    let trace_root = if opts.rollout_trace {
        let root = codex_home.path().join("rollout-trace");
        std::fs::create_dir(&root)?;
        Some(root)
    } else {
        None
    };

    let mut cmd = Command::new(codex);
    cmd.arg("exec")
        .args(&opts.extra_args)
        .arg("--skip-git-repo-check")
        .arg(&opts.prompt)
        .current_dir(work_dir.path())
        .env("CODEX_HOME", codex_home.path())
        .env("MOCK_API_KEY", "x")
        .env_remove("CODEX_ROLLOUT_TRACE_ROOT")
        .env_remove("OPENAI_API_KEY")
        .env_remove("CODEX_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    if let Some(root) = &trace_root {
        cmd.env("CODEX_ROLLOUT_TRACE_ROOT", root);
    }
    for (k, v) in &opts.extra_env {
        cmd.env(k, v);
    }
    let (status, stdout, stderr) = run_with_timeout(cmd, opts.timeout)
        .await
        .with_context(|| format!("running {} exec", codex.display()))?;
    Ok(CodexRun {
        status,
        stdout,
        stderr,
        codex_home,
        work_dir,
        trace_root,
    })
}

/// Runs `codex debug trace-reduce BUNDLE_DIR` (with a throw-away CODEX_HOME)
/// and returns the parsed `BUNDLE_DIR/state.json`.
pub async fn trace_reduce(codex: &Path, bundle_dir: &Path) -> anyhow::Result<Value> {
    let home = tempfile::Builder::new().prefix("codex-home-").tempdir()?;
    let mut cmd = Command::new(codex);
    cmd.args(["debug", "trace-reduce"])
        .arg(bundle_dir)
        .env("CODEX_HOME", home.path())
        .current_dir(home.path());
    let (status, stdout, stderr) = run_with_timeout(cmd, Duration::from_secs(60)).await?;
    if !status.success() {
        bail!(
            "codex debug trace-reduce {} failed ({status}):\n{stdout}\n{stderr}",
            bundle_dir.display()
        );
    }
    let path = bundle_dir.join("state.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Spawns `cmd` (stdin /dev/null, stdout/stderr captured) and waits for it on
/// blocking threads; kills it (SIGKILL) after `timeout`.
async fn run_with_timeout(
    mut cmd: Command,
    timeout: Duration,
) -> anyhow::Result<(ExitStatus, String, String)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
    let pid = child.id();
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let mut waiter = tokio::task::spawn_blocking(move || child.wait());
    let status = match tokio::time::timeout(timeout, &mut waiter).await {
        Ok(joined) => joined??,
        Err(_) => {
            // The child is not reaped yet, so its pid cannot have been reused.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let status = waiter.await??;
            let stderr = collect(err_reader, Duration::from_secs(5)).await;
            bail!(
                "{:?} timed out after {timeout:?} and was killed ({status}); stderr:\n{stderr}",
                cmd.get_program()
            );
        }
    };
    // A grandchild that inherited the pipes could keep them open: don't wait forever.
    let stdout = collect(out_reader, Duration::from_secs(10)).await;
    let stderr = collect(err_reader, Duration::from_secs(10)).await;
    Ok((status, stdout, stderr))
}

async fn collect(reader: tokio::task::JoinHandle<Vec<u8>>, timeout: Duration) -> String {
    match tokio::time::timeout(timeout, reader).await {
        Ok(Ok(buf)) => String::from_utf8_lossy(&buf).into_owned(),
        Ok(Err(e)) => format!("<reader failed: {e}>"),
        Err(_) => "<output pipe still open after the process exited>".to_string(),
    }
}
