//! A scripted mock of the OpenAI Responses API for end-to-end tests that run
//! the real Codex CLI against it.
//!
//! Port of `tools/capture/mockapi.py` (the mock that captured the fixtures
//! under `fixtures/codex/`): same SSE event sequence, same JSON shapes, same
//! usage numbers, same `x-request-id` answers.
//!
//! * `POST .../responses`: each request takes the next [`Step`] of the script;
//!   once the script is used up, every further request gets
//!   `Step::Message("Nothing more to do.")`.  The n-th `/responses` POST
//!   (1-based, counting every one, also HTTP errors) reports usage
//!   input=100n, cached=10n, output=7n, reasoning=2n, total=107n, response id
//!   `resp_n` and answer header `x-request-id: req_n`.
//! * any other POST (Codex posts `/v1/analytics/codex/turn-costs`) and every
//!   GET: `200 {}` (a GET whose path contains `models`: `{"models": []}`).
//! * every request is recorded ([`RecordedRequest`]) before it is answered.
//!
//! The server listens on `127.0.0.1:0` inside the caller's tokio runtime and
//! stops on [`MockResponses::shutdown`] or on drop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// What `Step::Message` answers once the script is used up.
pub const DEFAULT_MESSAGE: &str = "Nothing more to do.";
/// The text of the (cut) message of [`Step::Cut`], as in mockapi.py's
/// `stream-cut` scenario.
pub const CUT_MESSAGE: &str = "This sentence never finish";

/// One tool call the mock model makes.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// Tool name, e.g. `exec_command`.
    pub name: String,
    /// Arguments.  Sent as `arguments` = this value serialised the way
    /// Python's `json.dumps` does (`{"cmd": "..."}`, with spaces).  For a
    /// `custom` (freeform) tool a string value is sent verbatim as `input`.
    /// Any string `"$output:CALL_ID"` / `"$output:CALL_ID:KEY"` inside is
    /// replaced from the request's `function_call_output` for CALL_ID (raw
    /// output, or `json(output)[KEY]`), as in mockapi.py.
    pub args: Value,
    pub call_id: String,
    /// Sets `"namespace"` on the function_call item (e.g. `multi_agent_v1`).
    pub namespace: Option<String>,
}

impl ToolCall {
    pub fn new(name: impl Into<String>, args: Value, call_id: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            args,
            call_id: call_id.into(),
            namespace: None,
        }
    }

    /// `exec_command` with `{"cmd": cmd}` (the shell tool of Codex 0.169).
    pub fn exec(cmd: impl Into<String>, call_id: impl Into<String>) -> Self {
        Self::new("exec_command", json!({ "cmd": cmd.into() }), call_id)
    }

    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }
}

/// One answer to one `POST .../responses`.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// One SSE response: `response.created`, then for each call
    /// `output_item.added` + `output_item.done`, then `response.completed`.
    /// Several calls = parallel calls.
    Calls(Vec<ToolCall>),
    /// Like `Calls`, preceded by an assistant message (mockapi.py `text`).
    TextThenCalls(String, Vec<ToolCall>),
    /// An assistant message streamed as one `output_text.delta`, then
    /// `response.completed`.
    Message(String),
    /// A non-2xx JSON answer (no SSE); `body` is sent as is
    /// (mockapi.py sends `{"error": {...}}`, see [`Step::http_error`]).
    Http { status: u16, body: Value },
    /// mockapi.py's `stream-cut` step: `response.created`,
    /// `output_item.added` (a message), one `output_text.delta`
    /// ([`CUT_MESSAGE`]), then the body ends (no `output_item.done`, no
    /// `response.completed`) and the connection is closed.
    Cut,
    /// mockapi.py's `{"cut": "calls"}`: the body ends right after the
    /// `output_item.added` of the first call.
    CutCalls(Vec<ToolCall>),
}

impl Step {
    pub fn message(text: impl Into<String>) -> Self {
        Step::Message(text.into())
    }

    pub fn exec(cmd: impl Into<String>, call_id: impl Into<String>) -> Self {
        Step::Calls(vec![ToolCall::exec(cmd, call_id)])
    }

    /// `Http { status, body: {"error": error} }`.
    pub fn http_error(status: u16, error: Value) -> Self {
        Step::Http {
            status,
            body: json!({ "error": error }),
        }
    }

    /// The 500 of mockapi.py's api-error-* scenarios.
    pub fn server_error() -> Self {
        Self::http_error(
            500,
            json!({"message": "mock: internal server error", "type": "server_error", "code": "server_error"}),
        )
    }

    /// The 400 of mockapi.py's api-error-fatal-400 scenario.
    pub fn invalid_request() -> Self {
        Self::http_error(
            400,
            json!({"message": "mock: invalid request", "type": "invalid_request_error", "param": null, "code": "invalid_value"}),
        )
    }
}

/// One request the mock received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// 1-based over all requests.
    pub index: usize,
    pub method: String,
    /// Path and query, e.g. `/v1/responses`.
    pub path: String,
    /// 1-based over `/responses` POSTs (the `n` of the usage numbers).
    pub responses_i: Option<usize>,
    /// With [`MockResponses::start_by_agent`]: the script key that answered.
    pub agent_key: Option<String>,
    /// With [`MockResponses::start_by_agent`]: 1-based step index in that key.
    pub agent_i: Option<usize>,
    /// Header names are lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` if there was none, `{"raw": "..."}` if it was
    /// not JSON, `{"undecodable": "<content-encoding>"}` if compressed).
    pub body: Value,
    /// The step that answered (only for `/responses` POSTs).
    pub step: Option<Step>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_responses(&self) -> bool {
        self.responses_i.is_some()
    }

    /// The `traceparent` header.
    pub fn traceparent(&self) -> Option<&str> {
        self.header("traceparent")
    }

    /// The parsed `x-codex-turn-metadata` header (JSON).
    pub fn turn_metadata(&self) -> Option<Value> {
        self.header("x-codex-turn-metadata")
            .and_then(|v| serde_json::from_str(v).ok())
    }

    /// `body.input` (empty if absent).
    pub fn input(&self) -> &[Value] {
        self.body
            .get("input")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// `type` of every input item.
    pub fn input_types(&self) -> Vec<String> {
        self.input()
            .iter()
            .map(|x| {
                x.get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    /// The `function_call_output` / `custom_tool_call_output` item for `call_id`.
    pub fn tool_output_item(&self, call_id: &str) -> Option<&Value> {
        self.input().iter().find(|x| {
            matches!(
                x.get("type").and_then(Value::as_str),
                Some("function_call_output" | "custom_tool_call_output")
            ) && x.get("call_id").and_then(Value::as_str) == Some(call_id)
        })
    }

    /// The output string of `call_id`'s tool output item (content parts joined).
    pub fn tool_output(&self, call_id: &str) -> Option<String> {
        tool_outputs(&self.body).remove(call_id)
    }

    /// tool name -> tool type (`function`, `custom`, `namespace`, ...) of `body.tools`.
    pub fn tool_types(&self) -> BTreeMap<String, String> {
        tool_types(&self.body).into_iter().collect()
    }
}

enum Script {
    Single(VecDeque<Step>),
    ByAgent(HashMap<String, VecDeque<Step>>),
}

struct Inner {
    script: Script,
    agent_counter: HashMap<String, usize>,
    all: usize,
    responses: usize,
    log: Vec<RecordedRequest>,
}

struct Shared {
    inner: Mutex<Inner>,
    count_tx: watch::Sender<usize>,
}

/// The running mock.  Dropping it stops the server.
pub struct MockResponses {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown_tx: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockResponses {
    /// Starts the mock on `127.0.0.1:0` with one script for every request.
    pub async fn start(script: Vec<Step>) -> io::Result<Self> {
        Self::start_inner(Script::Single(script.into())).await
    }

    /// Starts the mock with per-agent scripts (mockapi.py `by_agent`): each
    /// `/responses` POST is routed by its `x-codex-turn-metadata` header to the
    /// first key that exists among `thread_source:<thread_source>`, the
    /// agent_name (not `/root` for a child), then `child` (metadata has a
    /// parent_thread_id or thread_source `subagent`) or `root`.  Each key has
    /// its own step counter; usage numbers use the global n.
    pub async fn start_by_agent(scripts: BTreeMap<String, Vec<Step>>) -> io::Result<Self> {
        Self::start_inner(Script::ByAgent(
            scripts.into_iter().map(|(k, v)| (k, v.into())).collect(),
        ))
        .await
    }

    async fn start_inner(script: Script) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (count_tx, _) = watch::channel(0usize);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                script,
                agent_counter: HashMap::new(),
                all: 0,
                responses: 0,
                log: Vec::new(),
            }),
            count_tx,
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown_rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            shared,
            shutdown_tx: Some(shutdown_tx),
            task: Some(task),
        })
    }

    /// The provider base URL to give Codex: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.inner.lock().unwrap().log.clone()
    }

    /// The `POST .../responses` requests received so far, in order.
    pub fn responses_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_responses())
            .collect()
    }

    /// Waits until at least `n` requests (of any kind) have been recorded.
    /// Returns false on timeout.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.shared.count_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops accepting connections and waits (at most 5 s) for open ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for MockResponses {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        // The serve task finishes on its own once open connections close; it
        // is aborted with the runtime at the latest.
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let bare_path = req.uri().path().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let raw = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let body = parse_body(&raw, encoding.as_deref());

    let is_post = method == Method::POST;
    let is_responses = is_post && bare_path.trim_end_matches('/').ends_with("/responses");

    let mut rec = RecordedRequest {
        index: 0,
        method: method.as_str().to_string(),
        path: path.clone(),
        responses_i: None,
        agent_key: None,
        agent_i: None,
        headers,
        body,
        step: None,
    };

    let (n, step) = {
        let mut inner = shared.inner.lock().unwrap();
        inner.all += 1;
        rec.index = inner.all;
        let mut out = (0, None);
        if is_responses {
            inner.responses += 1;
            let n = inner.responses;
            rec.responses_i = Some(n);
            let step = match &mut inner.script {
                Script::Single(steps) => steps.pop_front(),
                Script::ByAgent(scripts) => {
                    let key = agent_key(rec.header("x-codex-turn-metadata"), |k| {
                        scripts.contains_key(k)
                    });
                    let step = scripts.get_mut(&key).and_then(VecDeque::pop_front);
                    let c = inner.agent_counter.entry(key.clone()).or_insert(0);
                    *c += 1;
                    rec.agent_i = Some(*c);
                    rec.agent_key = Some(key);
                    step
                }
            }
            .unwrap_or_else(|| Step::message(DEFAULT_MESSAGE));
            rec.step = Some(step.clone());
            out = (n, Some(step));
        }
        let body_for_events = if is_responses {
            Some(rec.body.clone())
        } else {
            None
        };
        inner.log.push(rec);
        let count = inner.log.len();
        shared.count_tx.send_replace(count);
        (
            out.0,
            out.1.map(|s| (s, body_for_events.unwrap_or(Value::Null))),
        )
    };

    let Some((step, body)) = step else {
        let answer = if !is_post && bare_path.contains("models") {
            json!({ "models": [] })
        } else {
            json!({})
        };
        return json_response(200, &answer, None);
    };

    if let Step::Http { status, body: err } = &step {
        return json_response(*status, err, Some(n));
    }

    let (events, complete) = build_events(&step, n, &tool_types(&body), &body);
    let mut data = String::new();
    for ev in &events {
        let ty = ev.get("type").and_then(Value::as_str).unwrap_or("");
        data.push_str("event: ");
        data.push_str(ty);
        data.push_str("\ndata: ");
        data.push_str(&py_dumps(ev));
        data.push_str("\n\n");
    }
    let mut resp = Response::new(Body::from(Bytes::from(data.clone())));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        "x-request-id",
        HeaderValue::from_str(&format!("req_{n}")).unwrap(),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
    if !complete {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn json_response(status: u16, obj: &Value, request_n: Option<usize>) -> Response {
    let data = py_dumps(obj);
    let mut resp = Response::new(Body::from(data.clone()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(n) = request_n {
        h.insert(
            "x-request-id",
            HeaderValue::from_str(&format!("req_{n}")).unwrap(),
        );
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
    resp
}

fn parse_body(raw: &[u8], encoding: Option<&str>) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    if let Some(enc) = encoding.filter(|e| !e.eq_ignore_ascii_case("identity")) {
        return json!({ "undecodable": enc });
    }
    serde_json::from_slice(raw).unwrap_or_else(|_| {
        let s = String::from_utf8_lossy(raw);
        json!({ "raw": s.chars().take(400).collect::<String>() })
    })
}

/// mockapi.py `agent_key`: which per-agent script answers.
fn agent_key(metadata: Option<&str>, exists: impl Fn(&str) -> bool) -> String {
    let md: Value = metadata
        .and_then(|m| serde_json::from_str(m).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let name = md
        .get("agent_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let thread_source = md.get("thread_source").filter(|v| truthy(v));
    let is_child = md.get("parent_thread_id").is_some_and(truthy)
        || md.get("thread_source").and_then(Value::as_str) == Some("subagent");
    let mut cands = Vec::new();
    if let Some(ts) = thread_source {
        let ts = ts
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| ts.to_string());
        cands.push(format!("thread_source:{ts}"));
    }
    if let Some(name) = name
        && !(is_child && name == "/root")
    {
        cands.push(name.to_string());
    }
    cands.push(if is_child { "child" } else { "root" }.to_string());
    for c in &cands {
        if exists(c) {
            return c.clone();
        }
    }
    cands.pop().unwrap()
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
    }
}

/// tool name (or type) -> tool type, from `body.tools`.
fn tool_types(body: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for t in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ty = t
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| ty.clone());
        out.insert(name, ty);
    }
    out
}

/// call_id -> output string of every function_call_output in `body.input`.
fn tool_outputs(body: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for x in body
        .get("input")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ty = x.get("type").and_then(Value::as_str);
        if !matches!(ty, Some("function_call_output" | "custom_tool_call_output")) {
            continue;
        }
        let Some(call_id) = x.get("call_id").and_then(Value::as_str) else {
            continue;
        };
        let output = match x.get("output") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|c| c.get("text").and_then(Value::as_str))
                .collect::<String>(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        out.insert(call_id.to_string(), output);
    }
    out
}

/// Replaces `"$output:CALL_ID[:KEY]"` strings (see [`ToolCall::args`]).
fn fill_placeholders(v: &Value, outputs: &HashMap<String, String>) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), fill_placeholders(x, outputs)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| fill_placeholders(x, outputs)).collect()),
        Value::String(s) if s.starts_with("$output:") => {
            let parts: Vec<&str> = s.splitn(3, ':').collect();
            let Some(raw) = outputs.get(parts[1]) else {
                return v.clone();
            };
            if parts.len() == 2 {
                return Value::String(raw.clone());
            }
            serde_json::from_str::<Value>(raw)
                .ok()
                .and_then(|j| j.get(parts[2]).cloned())
                .unwrap_or_else(|| v.clone())
        }
        _ => v.clone(),
    }
}

fn call_item(call: &ToolCall, idx: &str, types: &HashMap<String, String>, body: &Value) -> Value {
    let kind = types
        .get(&call.name)
        .map(String::as_str)
        .unwrap_or("function");
    if kind == "custom" {
        let input = match &call.args {
            Value::String(s) => s.clone(),
            other => py_dumps(other),
        };
        return json!({"type": "custom_tool_call", "id": format!("ctc_{idx}"), "status": "completed",
                      "call_id": call.call_id, "name": call.name, "input": input});
    }
    let args = fill_placeholders(&call.args, &tool_outputs(body));
    let mut item = json!({"type": "function_call", "id": format!("fc_{idx}"), "status": "completed",
                          "call_id": call.call_id, "name": call.name, "arguments": py_dumps(&args)});
    if let Some(ns) = call.namespace.as_deref().filter(|s| !s.is_empty()) {
        item["namespace"] = json!(ns);
    }
    item
}

/// mockapi.py `build_events`: the SSE events for `step` as the n-th response,
/// and whether the response is complete.
fn build_events(
    step: &Step,
    n: usize,
    types: &HashMap<String, String>,
    body: &Value,
) -> (Vec<Value>, bool) {
    let rid = format!("resp_{n}");
    let usage = json!({"input_tokens": 100 * n, "input_tokens_details": {"cached_tokens": 10 * n},
                       "output_tokens": 7 * n, "output_tokens_details": {"reasoning_tokens": 2 * n},
                       "total_tokens": 107 * n});
    let (text, calls, cut_message, cut_calls): (Option<&str>, &[ToolCall], bool, bool) = match step
    {
        Step::Calls(c) => (None, c, false, false),
        Step::TextThenCalls(t, c) => (Some(t), c, false, false),
        Step::Message(t) => (Some(t), &[], false, false),
        Step::Cut => (Some(CUT_MESSAGE), &[], true, false),
        Step::CutCalls(c) => (None, c, false, true),
        Step::Http { .. } => unreachable!("HTTP steps have no events"),
    };
    let mut evs = vec![json!({"type": "response.created", "response": {"id": rid}})];
    let mut idx = 0usize;
    if let Some(text) = text {
        let mid = format!("msg_{n}_{idx}");
        evs.push(json!({"type": "response.output_item.added", "output_index": idx,
                        "item": {"type": "message", "id": mid, "role": "assistant", "content": []}}));
        evs.push(
            json!({"type": "response.output_text.delta", "item_id": mid, "output_index": idx,
                        "content_index": 0, "delta": text}),
        );
        if cut_message {
            return (evs, false);
        }
        evs.push(
            json!({"type": "response.output_item.done", "output_index": idx,
                        "item": {"type": "message", "id": mid, "role": "assistant",
                                 "content": [{"type": "output_text", "text": text}]}}),
        );
        idx += 1;
    }
    for call in calls {
        let item = call_item(call, &format!("{n}_{idx}"), types, body);
        evs.push(json!({"type": "response.output_item.added", "output_index": idx, "item": item}));
        if cut_calls {
            return (evs, false);
        }
        evs.push(json!({"type": "response.output_item.done", "output_index": idx, "item": item}));
        idx += 1;
    }
    evs.push(json!({"type": "response.completed", "response": {"id": rid, "usage": usage}}));
    (evs, true)
}

/// Serialises like Python's `json.dumps(v)`: `", "` and `": "` separators,
/// non-ASCII escaped as `\uXXXX`.  (Object keys come out in serde_json's
/// order, i.e. sorted unless serde_json's `preserve_order` is on.)
pub fn py_dumps(v: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    serde::Serialize::serialize(v, &mut ser).expect("serialising a Value cannot fail");
    String::from_utf8(out).expect("ASCII")
}

struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if (' '..='~').contains(&c) {
                w.write_all(&[c as u8])?;
            } else {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{:04x}", unit)?;
                }
            }
        }
        Ok(())
    }
}
