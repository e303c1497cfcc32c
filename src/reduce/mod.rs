//! reduce: raw events → rollout graph. Deterministic: the graph is a function of the
//! set of events (see [`order`]), so batching, arrival order and restarts do not
//! change it. Incremental: [`RolloutState`] keeps a rollout's events and rebuilds its
//! graph only when asked after a change. The same code replays a bundle.
//!
//! One module per concern: [`turns`], [`inference`], [`tools`],
//! [`agents`]; this file joins them into the graph.

pub mod agents;
pub mod graph;
pub mod inference;
pub mod kept;
pub mod order;
pub mod tools;
pub mod turns;

use crate::fast_hash::{HashMap, HashSet};
use crate::normalize::{
    ExecutionStatus, RawEvent, RawEventPayload as P, TokenUsage, tool_arguments, tool_output,
};
use crate::store::event_line::EventLine;
use graph::*;
use inference::{Calls, Outcome};
use kept::{Interner, KeptEvent};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The events of one rollout in canonical order.
pub struct Ctx<'a> {
    pub events: Vec<&'a KeptEvent>,
    pub rollout_id: &'a str,
}

impl Ctx<'_> {
    /// Sequence numbers in the graph are positions in canonical order, so they do not
    /// depend on arrival.
    pub fn seq(&self, index: usize) -> u64 {
        index as u64 + 1
    }

    /// The thread of an event: its own, else the rollout's root thread.
    pub fn thread_of<'e>(&'e self, e: &'e KeptEvent) -> &'e str {
        e.thread_id.as_deref().unwrap_or(self.rollout_id)
    }
}

/// A rollout's events (what the reducer reads of them), and its graph rebuilt on
/// demand.
///
/// The events are kept in chunks that a [`RolloutSnapshot`] shares, so a rollout's
/// graph can be reduced without holding the collector lock: taking a snapshot only
/// seals the newest events into a chunk.
#[derive(Default)]
pub struct RolloutState {
    pub rollout_id: String,
    /// Events sealed by earlier snapshots.
    sealed: Vec<Arc<Vec<KeptEvent>>>,
    /// Events pushed since the last snapshot.
    newest: Vec<KeptEvent>,
    strings: Interner,
    /// OTLP records behind the events (a record may give several events, which are
    /// always stored together).
    pub record_count: u64,
    last_record_id: Option<String>,
    pub last_wall_time_unix_ms: i64,
    cached: Option<Arc<RolloutGraph>>,
    /// Whether the events seen so far make a finished rollout (`None`: not known
    /// since the last event; see [`RolloutState::is_open`]).
    finished: Option<bool>,
}

/// Sealed chunks past this many are merged into one when no snapshot shares them.
const MAX_SEALED_CHUNKS: usize = 4;

/// A rollout's events as of one moment, to reduce without the collector lock.
pub struct RolloutSnapshot {
    rollout_id: String,
    record_count: u64,
    chunks: Vec<Arc<Vec<KeptEvent>>>,
    cached: Option<Arc<RolloutGraph>>,
}

impl RolloutSnapshot {
    /// The rollout's graph as of the snapshot.
    pub fn graph(&self) -> Arc<RolloutGraph> {
        if let Some(graph) = &self.cached {
            // Records kept only as evidence change no more than the count: the graph
            // is not reduced again for them.
            if graph.telemetry.record_count == self.record_count {
                return graph.clone();
            }
            let mut graph = RolloutGraph::clone(graph);
            graph.telemetry.record_count = self.record_count;
            return Arc::new(graph);
        }
        let events = self.chunks.iter().flat_map(|chunk| chunk.iter());
        let mut graph = reduce_kept(&self.rollout_id, events);
        graph.telemetry.record_count = self.record_count;
        Arc::new(graph)
    }
}

impl RolloutState {
    pub fn new(rollout_id: &str) -> Self {
        RolloutState {
            rollout_id: rollout_id.to_string(),
            ..Default::default()
        }
    }

    pub fn push(&mut self, event: RawEvent) {
        self.count(&event);
        if event.payload.is_evidence_only() {
            return;
        }
        let kept = self.strings.keep(event);
        self.push_kept(kept);
    }

    /// [`RolloutState::push`] for an event being stored, from its line (see
    /// [`Interner::keep_line`]).
    pub fn push_line(&mut self, line: &EventLine) {
        self.count_record(Some(line.evidence.record_id));
        if line.payload.is_evidence_only() {
            return;
        }
        let kept = self.strings.keep_line(line);
        self.push_kept(kept);
    }

    fn push_kept(&mut self, event: KeptEvent) {
        self.last_wall_time_unix_ms = self.last_wall_time_unix_ms.max(event.wall_time_unix_ms);
        self.newest.push(event);
        self.cached = None;
        self.finished = None;
    }

    /// Events kept for the reducer (the evidence-only ones are not).
    pub fn kept_events(&self) -> usize {
        self.sealed.iter().map(|c| c.len()).sum::<usize>() + self.newest.len()
    }

    /// Counts the record behind an event without keeping the event (for the bundles
    /// of records that belong to no session).
    pub fn count(&mut self, event: &RawEvent) {
        self.count_record(event.evidence.as_ref().map(|ev| ev.record_id.as_str()));
    }

    /// Counts the record behind an event, by its id (`None`: an event the collector
    /// decided, with no record behind it).
    pub fn count_record(&mut self, record_id: Option<&str>) {
        let Some(id) = record_id else {
            return;
        };
        match &mut self.last_record_id {
            Some(last) if last == id => {}
            Some(last) => {
                self.record_count += 1;
                last.clear();
                last.push_str(id);
            }
            None => {
                self.record_count += 1;
                self.last_record_id = Some(id.to_string());
            }
        }
    }

    /// The events as of now, sharing them (see [`RolloutSnapshot::graph`]).
    pub fn snapshot(&mut self) -> RolloutSnapshot {
        if !self.newest.is_empty() {
            // A sealed chunk never grows: it keeps no spare room (up to half of a
            // vector that grew by doubling, for as long as the rollout is in memory).
            let mut chunk = std::mem::take(&mut self.newest);
            chunk.shrink_to_fit();
            self.sealed.push(Arc::new(chunk));
        }
        if self.sealed.len() > MAX_SEALED_CHUNKS
            && self.sealed.iter().all(|c| Arc::strong_count(c) == 1)
        {
            let mut merged = Vec::with_capacity(self.kept_events());
            for chunk in self.sealed.drain(..) {
                merged.extend(Arc::try_unwrap(chunk).unwrap_or_default());
            }
            self.sealed.push(Arc::new(merged));
        }
        RolloutSnapshot {
            rollout_id: self.rollout_id.clone(),
            record_count: self.record_count,
            chunks: self.sealed.clone(),
            cached: self.cached.clone(),
        }
    }

    pub fn graph(&mut self) -> Arc<RolloutGraph> {
        let graph = self.snapshot().graph();
        self.cached = Some(graph.clone());
        graph
    }

    /// Whether the rollout is still open (no exit or idle close after its last event).
    /// Known without reducing again until the next event.
    pub fn is_open(&mut self) -> bool {
        let finished = match self.finished {
            Some(finished) => finished,
            None => {
                let finished = self.snapshot().graph().status != "running";
                self.finished = Some(finished);
                finished
            }
        };
        !finished
    }
}

/// Builds the graph of one rollout from its events (any order; evidence-only events
/// are ignored).
pub fn reduce(rollout_id: &str, events: &[RawEvent]) -> RolloutGraph {
    let mut strings = Interner::default();
    let kept: Vec<KeptEvent> = events
        .iter()
        .filter(|e| !e.payload.is_evidence_only())
        .map(|e| strings.copy(e))
        .collect();
    reduce_kept(rollout_id, kept.iter())
}

fn reduce_kept<'e>(rollout_id: &str, events: impl Iterator<Item = &'e KeptEvent>) -> RolloutGraph {
    let ctx = Ctx {
        // `rollout_started` records when the bundle was made, which depends on batching.
        events: order::canonical(events.filter(|e| {
            !e.payload.is_evidence_only() && !matches!(e.payload, P::RolloutStarted { .. })
        })),
        rollout_id,
    };
    let mut graph = RolloutGraph {
        schema_version: GRAPH_SCHEMA_VERSION,
        trace_id: format!("otel:{rollout_id}"),
        rollout_id: rollout_id.to_string(),
        root_thread_id: rollout_id.to_string(),
        status: "running".into(),
        ..Default::default()
    };
    graph.telemetry.event_count = ctx.events.len() as u64;
    let closure = closure(&ctx);
    let turns = turns::Turns::build(&ctx);
    let calls = Calls::build(&ctx, &turns);
    let tools = tools::build(&ctx, &turns);

    // When each turn can receive nothing more: its span ended, the thread's next turn
    // started, or the process exited / went idle after it started.
    let mut turn_starts: HashMap<&str, Vec<(i64, u64)>> = HashMap::default();
    for turn in &turns.list {
        turn_starts
            .entry(turn.thread_id.as_str())
            .or_default()
            .push(turn.start);
    }
    for starts in turn_starts.values_mut() {
        starts.sort_unstable();
    }
    let turn_over: Vec<Option<(i64, u64, &str)>> = turns
        .list
        .iter()
        .map(|turn| {
            if let Some((t, s)) = turn.span_end {
                return Some((t, s, "span"));
            }
            let next = turn_starts.get(turn.thread_id.as_str()).and_then(|starts| {
                starts
                    .get(starts.partition_point(|start| *start <= turn.start))
                    .copied()
            });
            if let Some((t, s)) = next {
                return Some((t, s, "next_turn"));
            }
            closure
                .as_ref()
                .filter(|c| c.0 >= turn.start.0)
                .map(|c| (c.0, c.1, c.2.as_str()))
        })
        .collect();

    // Inference calls.
    let mut later_in_turn = vec![false; calls.list.len()];
    let mut seen_turns: HashSet<(Option<usize>, &str)> = HashSet::default();
    for (n, call) in calls.list.iter().enumerate().rev() {
        later_in_turn[n] = !seen_turns.insert((call.turn, call.thread_id.as_str()));
    }
    let mut outcomes = Vec::with_capacity(calls.list.len());
    for (n, call) in calls.list.iter().enumerate() {
        let over = later_in_turn[n]
            || call.turn.is_some_and(|t| turn_over[t].is_some())
            || closure.is_some();
        outcomes.push(Calls::outcome(call, over));
    }

    // Tool calls, and which response asked for each: the latest call of the tool's
    // thread (and turn) started by the tool's start. Calls are in start order.
    let mut calls_of_thread: HashMap<&str, Vec<usize>> = HashMap::default();
    let mut calls_of_thread_turn: HashMap<(&str, Option<usize>), Vec<usize>> = HashMap::default();
    for (n, call) in calls.list.iter().enumerate() {
        let thread = call.thread_id.as_str();
        calls_of_thread.entry(thread).or_default().push(n);
        calls_of_thread_turn
            .entry((thread, call.turn))
            .or_default()
            .push(n);
    }
    let mut started_by: Vec<Option<usize>> = Vec::with_capacity(tools.len());
    for tool in &tools {
        let thread = tool.thread_id.as_deref().unwrap_or(rollout_id);
        let start = tool.start();
        let candidates = match tool.turn {
            None => calls_of_thread.get(thread),
            Some(_) => calls_of_thread_turn.get(&(thread, tool.turn)),
        };
        let call = candidates.and_then(|list| {
            let started = list.partition_point(|&n| calls.list[n].start <= start);
            started.checked_sub(1).map(|k| list[k])
        });
        started_by.push(call);
    }

    // Conversation items: only what the telemetry carries.
    let mut items = Items::default();
    for (i, e) in ctx.events.iter().enumerate() {
        if let P::UserPrompt {
            prompt: Some(text), ..
        } = &e.payload
            && text != "[REDACTED]"
        {
            let turn = turns.of_event[i].map(|t| turns.list[t].id.clone());
            items.add(
                ctx.thread_of(e),
                turn,
                "user",
                "message",
                None,
                Some(text.clone()),
                e.wall_time_unix_ms,
            );
        }
    }
    let mut tool_items: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for tool in &tools {
        let thread = tool
            .thread_id
            .clone()
            .unwrap_or_else(|| rollout_id.to_string());
        let turn = tool.turn.map(|t| turns.list[t].id.clone());
        let mut call_items = Vec::new();
        let mut output_items = Vec::new();
        if let Some(args) = &tool.arguments {
            call_items.push(items.add(
                &thread,
                turn.clone(),
                "assistant",
                "function_call",
                Some(&tool.call_id),
                Some(args.clone()),
                tool.start().0,
            ));
        }
        if let (Some(output), Some(end)) = (&tool.output, tool.ended) {
            output_items.push(items.add(
                &thread,
                turn,
                "tool",
                "function_call_output",
                Some(&tool.call_id),
                Some(output.clone()),
                end.0,
            ));
        }
        tool_items.push((call_items, output_items));
    }

    // Threads.
    let mut thread_ids: BTreeSet<String> = ctx
        .events
        .iter()
        .map(|e| ctx.thread_of(e).to_string())
        .collect();
    thread_ids.insert(rollout_id.to_string());
    let thread_ended = closure.as_ref().map(|c| (c.0, c.1));
    for thread_id in &thread_ids {
        let meta = ctx
            .events
            .iter()
            .enumerate()
            .find_map(|(i, e)| match &e.payload {
                P::ThreadStarted(s)
                    if s.thread_id == *thread_id
                        || (s.thread_id.is_empty() && ctx.thread_of(e) == thread_id) =>
                {
                    Some((
                        i,
                        s.model.clone(),
                        s.provider_name.clone(),
                        s.agent_path.clone(),
                    ))
                }
                _ => None,
            });
        let first = ctx
            .events
            .iter()
            .enumerate()
            .find(|(_, e)| ctx.thread_of(e) == thread_id);
        let start = match (&meta, first) {
            (Some((i, ..)), _) => (ctx.events[*i].wall_time_unix_ms, ctx.seq(*i)),
            (None, Some((i, e))) => (e.wall_time_unix_ms, ctx.seq(i)),
            (None, None) => (0, 0),
        };
        let agent_path = meta.as_ref().and_then(|m| m.3.clone()).or_else(|| {
            tools
                .iter()
                .filter(|t| t.thread_id.as_deref() == Some(thread_id.as_str()))
                .find_map(|t| t.agent_name.clone().filter(|a| a.starts_with('/')))
        });
        graph.threads.insert(
            thread_id.clone(),
            Thread {
                thread_id: thread_id.clone(),
                agent_path: agent_path.unwrap_or_else(|| "/root".into()),
                nickname: None,
                origin: AgentOrigin::Root,
                execution: execution(
                    start,
                    thread_ended,
                    if thread_ended.is_some() {
                        ExecutionStatus::Completed
                    } else {
                        ExecutionStatus::Running
                    },
                ),
                default_model: meta.as_ref().and_then(|m| m.1.clone()),
                conversation_item_ids: items.of_thread(thread_id),
                provider_name: meta.as_ref().and_then(|m| m.2.clone()),
            },
        );
    }
    let root_provider = graph
        .threads
        .get(rollout_id)
        .and_then(|t| t.provider_name.clone());

    for (n, call) in calls.list.iter().enumerate() {
        let (status, end, error) = match &outcomes[n] {
            Outcome::Completed(at) => (ExecutionStatus::Completed, Some(*at), None),
            Outcome::Failed(at, error) => (ExecutionStatus::Failed, Some(*at), error.clone()),
            Outcome::Running if closure.is_some() => (
                ExecutionStatus::Aborted,
                closure.as_ref().map(|c| (c.0, c.1)),
                None,
            ),
            Outcome::Running => (ExecutionStatus::Running, None, None),
        };
        let thread = graph.threads.get(&call.thread_id);
        let tool_ids: Vec<String> = tools
            .iter()
            .zip(&started_by)
            .filter(|(_, by)| **by == Some(n))
            .map(|(t, _)| t.call_id.clone())
            .collect();
        let completed = call
            .completed
            .as_ref()
            .filter(|_| status == ExecutionStatus::Completed);
        graph.inference_calls.insert(
            call.id.clone(),
            InferenceCall {
                inference_call_id: call.id.clone(),
                thread_id: call.thread_id.clone(),
                codex_turn_id: call.turn.map(|t| turns.list[t].id.clone()),
                execution: execution(call.start, end, status),
                model: call
                    .model
                    .clone()
                    .or_else(|| thread.and_then(|t| t.default_model.clone())),
                provider_name: thread
                    .and_then(|t| t.provider_name.clone())
                    .or_else(|| root_provider.clone()),
                response_id: None,
                upstream_request_id: call
                    .attempts
                    .last()
                    .and_then(|a| a.upstream_request_id.clone()),
                request_item_ids: Vec::new(),
                response_item_ids: Vec::new(),
                tool_call_ids_started_by_response: tool_ids,
                usage: completed.map(|c| c.1.clone()),
                raw_request_payload_id: None,
                raw_response_payload_id: None,
                attempts: call.attempts.clone(),
                ttft_ms: completed
                    .and_then(|c| c.2)
                    .or_else(|| call.first_stream_event.map(|t| t - call.start.0)),
                error,
                otel_span_id: call
                    .span_key
                    .as_ref()
                    .and_then(|k| k.rsplit(':').next().map(str::to_string)),
            },
        );
    }

    // Turns: status from their last inference call.
    let mut calls_of_turn: Vec<Vec<usize>> = vec![Vec::new(); turns.list.len()];
    for (n, call) in calls.list.iter().enumerate() {
        if let Some(turn) = call.turn {
            calls_of_turn[turn].push(n);
        }
    }
    let mut tools_pending_in_turn = vec![false; turns.list.len()];
    for tool in &tools {
        if let (Some(turn), None) = (tool.turn, tool.ended) {
            tools_pending_in_turn[turn] = true;
        }
    }
    let mut asked_for_tools_by_call = vec![false; calls.list.len()];
    for &n in started_by.iter().flatten() {
        asked_for_tools_by_call[n] = true;
    }
    for (idx, turn) in turns.list.iter().enumerate() {
        let turn_calls = &calls_of_turn[idx];
        let last = turn_calls
            .last()
            .map(|&n| (&calls.list[n], &outcomes[n], n));
        let tools_pending = tools_pending_in_turn[idx];
        let asked_for_tools = |n: usize| asked_for_tools_by_call[n];
        let (status, end, closed_by) = match (last, turn_over[idx]) {
            (Some((_, Outcome::Failed(at, _), _)), over) => (
                ExecutionStatus::Failed,
                Some(
                    over.filter(|o| o.2 == "span")
                        .map(|o| (o.0, o.1))
                        .unwrap_or(*at),
                ),
                Some(over.map(|o| o.2).unwrap_or("error")),
            ),
            (_, Some((t, s, "span"))) => (ExecutionStatus::Completed, Some((t, s)), Some("span")),
            (Some((_, Outcome::Completed(at), n)), _) if !asked_for_tools(n) && !tools_pending => (
                ExecutionStatus::Completed,
                Some(*at),
                Some("final_response"),
            ),
            (_, Some((t, s, "next_turn"))) => {
                (ExecutionStatus::Cancelled, Some((t, s)), Some("next_turn"))
            }
            (_, Some((t, s, reason))) => (ExecutionStatus::Aborted, Some((t, s)), Some(reason)),
            (_, None) => (ExecutionStatus::Running, None, None),
        };
        let mut usage = TokenUsage::default();
        for &n in turn_calls {
            if let Some(u) = &graph.inference_calls[&calls.list[n].id].usage {
                usage.add(u);
            }
        }
        graph.codex_turns.insert(
            turn.id.clone(),
            CodexTurn {
                codex_turn_id: turn.id.clone(),
                thread_id: turn.thread_id.clone(),
                execution: execution(turn.start, end, status),
                input_item_ids: items.of_turn(&turn.id, "user"),
                usage,
                ttft_ms: turn.ttft_ms,
                closed_by: closed_by.map(str::to_string),
                otel_trace_id: turn.trace_id.clone(),
            },
        );
    }

    // Tool calls and their terminal operations.
    let mut sessions: BTreeMap<String, String> = BTreeMap::new(); // running session → exec op
    for (n, tool) in tools.iter().enumerate() {
        let thread = tool
            .thread_id
            .clone()
            .unwrap_or_else(|| rollout_id.to_string());
        let turn_closed = tool.turn.is_some_and(|t| turn_over[t].is_some()) || closure.is_some();
        let status = match (tool.ended, tool.success) {
            (Some(_), Some(false)) => ExecutionStatus::Failed,
            (Some(_), _) => ExecutionStatus::Completed,
            (None, _) if turn_closed => ExecutionStatus::Cancelled,
            (None, _) => ExecutionStatus::Running,
        };
        let kind = tool.kind();
        let mut terminal_operation_id = None;
        if matches!(kind, ToolCallKind::ExecCommand | ToolCallKind::WriteStdin) {
            let op = terminal_operation(tool, &kind, status, &mut sessions, &mut graph);
            terminal_operation_id = Some(op);
        }
        let summary = match &terminal_operation_id {
            Some(op) => ToolCallSummary::Terminal {
                operation_id: op.clone(),
            },
            None => ToolCallSummary::Generic {
                label: tool.tool_name.clone().unwrap_or_default(),
                input_preview: tool.arguments.as_deref().map(|a| preview(a, 160)),
                output_preview: tool.output.as_deref().map(|o| preview(o, 160)),
            },
        };
        graph.tool_calls.insert(
            tool.call_id.clone(),
            ToolCall {
                tool_call_id: tool.call_id.clone(),
                mcp_call_id: None,
                model_visible_call_id: Some(tool.call_id.clone()),
                code_mode_runtime_tool_id: None,
                thread_id: thread,
                started_by_codex_turn_id: tool.turn.map(|t| turns.list[t].id.clone()),
                execution: execution(tool.start(), tool.ended, status),
                requester: Requester {
                    kind: "model".into(),
                },
                kind,
                model_visible_call_item_ids: tool_items[n].0.clone(),
                model_visible_output_item_ids: tool_items[n].1.clone(),
                terminal_operation_id,
                summary,
                raw_invocation_payload_id: None,
                raw_result_payload_id: None,
                raw_runtime_payload_ids: Vec::new(),
                tool_name: tool.tool_name.clone(),
                approval: tool.approval.clone(),
                success: tool.success,
                mcp_server: tool.mcp_server.clone(),
                started_by_inference_call_id: started_by[n].map(|c| calls.list[c].id.clone()),
            },
        );
    }

    // Sub-agents: spawned threads and their edges.
    for tool in &tools {
        let parent = tool
            .thread_id
            .clone()
            .unwrap_or_else(|| rollout_id.to_string());
        if let Some(spawned) = agents::spawned_child(tool) {
            let edge = agents::spawn_edge(&parent, tool, &spawned.thread_id);
            if let Some(child) = graph.threads.get_mut(&spawned.thread_id) {
                child.origin = AgentOrigin::Spawned {
                    parent_thread_id: parent.clone(),
                    spawned_by_tool_call_id: Some(tool.call_id.clone()),
                };
                child.nickname = spawned.nickname.clone();
                graph.interaction_edges.insert(edge.edge_id.clone(), edge);
            }
        }
    }
    for tool in &tools {
        if let Some(edge) = agents::close_edge(tool, |t| graph.threads.contains_key(t)) {
            graph.interaction_edges.insert(edge.edge_id.clone(), edge);
        }
    }

    graph.conversation_items = items.map;
    for e in &ctx.events {
        if let Some(payload) = e.evidence.as_ref().and_then(|ev| ev.raw_payload.as_ref())
            && !graph.raw_payloads.contains_key(&payload.raw_payload_id)
        {
            graph.raw_payloads.insert(
                payload.raw_payload_id.clone(),
                RawPayload {
                    raw_payload_id: payload.raw_payload_id.clone(),
                    kind: payload.kind.clone(),
                    path: payload.path.clone(),
                },
            );
        }
        match &e.payload {
            P::ThreadStarted(s) => {
                graph.telemetry.originator =
                    graph.telemetry.originator.take().or(s.originator.clone());
                graph.telemetry.codex_version = graph
                    .telemetry
                    .codex_version
                    .take()
                    .or(s.app_version.clone());
            }
            P::ProcessExited { service_name } => {
                graph.telemetry.service_name =
                    graph.telemetry.service_name.take().or(service_name.clone());
            }
            _ => {}
        }
    }
    graph.started_at_unix_ms = graph
        .threads
        .get(rollout_id)
        .map(|t| t.execution.started_at_unix_ms)
        .filter(|t| *t > 0);
    if let Some(c) = &closure {
        graph.status = "completed".into();
        graph.ended_at_unix_ms = Some(c.0);
        graph.telemetry.closed_by = Some(c.2.clone());
    }
    graph
}

/// The close of a rollout: a process exit or an idle close after its last activity.
fn closure(ctx: &Ctx) -> Option<(i64, u64, String)> {
    let (i, last) = ctx.events.iter().enumerate().next_back()?;
    let reason = match &last.payload {
        P::ProcessExited { .. } => "process_exit".to_string(),
        P::RolloutEnded { reason, .. } => reason.clone(),
        _ => return None,
    };
    // The close time is the last activity before it.
    let end = ctx.events[..i]
        .iter()
        .rev()
        .find(|e| !matches!(e.payload, P::ProcessExited { .. } | P::RolloutEnded { .. }))
        .map(|e| e.wall_time_unix_ms)
        .unwrap_or(last.wall_time_unix_ms);
    Some((
        end.max(if reason == "process_exit" {
            last.wall_time_unix_ms
        } else {
            end
        }),
        ctx.seq(i),
        reason,
    ))
}

fn terminal_operation(
    tool: &tools::ToolBuild,
    kind: &ToolCallKind,
    tool_status: ExecutionStatus,
    sessions: &mut BTreeMap<String, String>,
    graph: &mut RolloutGraph,
) -> String {
    let op_id = format!("terminal_operation:{}", tool.call_id);
    let thread = tool
        .thread_id
        .clone()
        .unwrap_or_else(|| graph.rollout_id.clone());
    let parsed = tool
        .output
        .as_deref()
        .map(tool_output::parse_output)
        .unwrap_or_default();
    let start = tool.start();
    let result = tool.output.as_ref().map(|output| TerminalResult {
        exit_code: if *kind == ToolCallKind::ExecCommand {
            parsed.exit_code
        } else {
            None
        },
        stdout: if *kind == ToolCallKind::ExecCommand {
            parsed.stdout.clone()
        } else {
            Some(output.clone())
        },
        stderr: None,
        formatted_output: None,
        original_token_count: parsed.original_token_count,
        chunk_id: parsed.chunk_id.clone(),
    });
    let (status, ended) = match (kind, parsed.exit_code, &parsed.running_session) {
        (ToolCallKind::ExecCommand, Some(0), _) => (ExecutionStatus::Completed, tool.ended),
        (ToolCallKind::ExecCommand, Some(_), _) => (ExecutionStatus::Failed, tool.ended),
        (ToolCallKind::ExecCommand, None, Some(_)) => (ExecutionStatus::Running, None),
        (_, _, _) if tool.ended.is_none() => (tool_status, None),
        (ToolCallKind::ExecCommand, None, None) if tool_status == ExecutionStatus::Failed => {
            (ExecutionStatus::Failed, tool.ended)
        }
        _ => (ExecutionStatus::Completed, tool.ended),
    };
    let (request, terminal_id) = match kind {
        ToolCallKind::WriteStdin => {
            let session = tool
                .arguments
                .as_deref()
                .and_then(tool_output::polled_session);
            let terminal_id = session
                .as_ref()
                .and_then(|s| sessions.get(s))
                .map(|op| format!("terminal_session:{op}"));
            // A poll that saw the process exit ends the exec operation that started it.
            if let (Some(exit), Some(exec_op)) = (
                parsed.exit_code,
                session.as_ref().and_then(|s| sessions.get(s)),
            ) && let Some(op) = graph.terminal_operations.get_mut(exec_op)
                && op.execution.status == ExecutionStatus::Running
            {
                op.execution.status = if exit == 0 {
                    ExecutionStatus::Completed
                } else {
                    ExecutionStatus::Failed
                };
                op.execution.ended_at_unix_ms = tool.ended.map(|e| e.0);
                op.execution.ended_seq = tool.ended.map(|e| e.1);
                if let Some(result) = op.result.as_mut() {
                    result.exit_code = Some(exit);
                    result.stdout = parsed.stdout.clone();
                }
            }
            (
                tool_arguments::write_stdin_request(tool.arguments.as_deref()),
                terminal_id,
            )
        }
        _ => {
            if let Some(session) = &parsed.running_session {
                sessions.insert(session.clone(), op_id.clone());
            }
            (
                tool_arguments::exec_request(tool.arguments.as_deref()),
                Some(format!("terminal_session:{op_id}")),
            )
        }
    };
    let terminal_id = terminal_id.unwrap_or_else(|| format!("terminal_session:{op_id}"));
    let session = graph
        .terminal_sessions
        .entry(terminal_id.clone())
        .or_insert_with(|| TerminalSession {
            terminal_id: terminal_id.clone(),
            thread_id: thread.clone(),
            created_by_operation_id: op_id.clone(),
            operation_ids: Vec::new(),
            execution: execution(start, None, ExecutionStatus::Running),
        });
    session.operation_ids.push(op_id.clone());
    graph.terminal_operations.insert(
        op_id.clone(),
        TerminalOperation {
            operation_id: op_id.clone(),
            terminal_id: Some(terminal_id),
            tool_call_id: tool.call_id.clone(),
            kind: if *kind == ToolCallKind::WriteStdin {
                "write_stdin"
            } else {
                "exec_command"
            }
            .into(),
            execution: execution(start, ended, status),
            request,
            result,
            model_observations: Vec::new(),
            raw_payload_ids: Vec::new(),
        },
    );
    op_id
}

fn execution(start: (i64, u64), end: Option<(i64, u64)>, status: ExecutionStatus) -> Execution {
    Execution {
        started_at_unix_ms: start.0,
        started_seq: start.1,
        ended_at_unix_ms: end.map(|e| e.0),
        ended_seq: end.map(|e| e.1),
        status,
    }
}

/// The first line of a text, cut to `max` characters.
pub fn preview(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!("{}...", line.chars().take(max).collect::<String>())
    }
}

/// Conversation items, in the order they were added, found by thread and by turn.
#[derive(Default)]
struct Items {
    map: BTreeMap<String, ConversationItem>,
    of_thread: HashMap<String, Vec<String>>,
    /// (turn, role) → items.
    of_turn: HashMap<(String, String), Vec<String>>,
}

impl Items {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        thread: &str,
        turn: Option<String>,
        role: &str,
        kind: &str,
        call_id: Option<&str>,
        text: Option<String>,
        at: i64,
    ) -> String {
        let id = format!("conversation_item:{}", self.map.len() + 1);
        self.of_thread
            .entry(thread.to_string())
            .or_default()
            .push(id.clone());
        if let Some(turn) = &turn {
            self.of_turn
                .entry((turn.clone(), role.to_string()))
                .or_default()
                .push(id.clone());
        }
        self.map.insert(
            id.clone(),
            ConversationItem {
                item_id: id.clone(),
                thread_id: thread.to_string(),
                codex_turn_id: turn,
                role: role.into(),
                kind: kind.into(),
                call_id: call_id.map(str::to_string),
                text,
                first_seen_at_unix_ms: at,
            },
        );
        id
    }

    fn of_thread(&self, thread: &str) -> Vec<String> {
        self.of_thread.get(thread).cloned().unwrap_or_default()
    }

    fn of_turn(&self, turn: &str, role: &str) -> Vec<String> {
        self.of_turn
            .get(&(turn.to_string(), role.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}
