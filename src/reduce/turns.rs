//! Turns. With spans, a turn is a `turn.id` (from `session_task.turn`, `turn/start`,
//! `codex.turn_input` or 0.80's `run_turn`), and log records join it by trace id
//! within their thread. Sub-agent turns share their parent's trace, so the join is
//! per thread. Without spans, `codex.user_prompt` opens a turn and order does the rest.

use super::Ctx;
use crate::normalize::RawEventPayload as P;
use std::collections::HashMap;

#[derive(Debug)]
pub struct TurnBuild {
    pub id: String,
    pub thread_id: String,
    pub start: (i64, u64),
    /// The turn span's end, when a span said so.
    pub span_end: Option<(i64, u64)>,
    pub from_span: bool,
    pub trace_id: Option<String>,
    pub ttft_ms: Option<i64>,
}

#[derive(Default)]
pub struct Turns {
    pub list: Vec<TurnBuild>,
    by_id: HashMap<String, usize>,
    /// trace → thread → the one span turn of that thread in that trace.
    by_trace: HashMap<String, HashMap<String, Option<usize>>>,
    /// Span turns of each thread, by (start, index).
    span_turns: HashMap<String, Vec<(At, usize)>>,
    /// Turn of each event, by canonical index.
    pub of_event: Vec<Option<usize>>,
}

/// (wall time in ms, canonical seq).
type At = (i64, u64);

/// Id prefixes of turns known only from log records: a turn whose spans have not
/// arrived (yet) is named after its OTLP trace, one without a trace after its prompt.
/// When the turn's spans arrive, it takes Codex's own turn id instead.
const PROVISIONAL_BY_TRACE: &str = "otel-trace:";
const PROVISIONAL_BY_PROMPT: &str = "prompt:";

/// Whether a turn's id may still change: it was named by the reducer, not by Codex
/// (see [`PROVISIONAL_BY_TRACE`]). Codex's turn ids never take these prefixes.
pub fn is_provisional_turn_id(turn_id: &str) -> bool {
    turn_id.starts_with(PROVISIONAL_BY_TRACE) || turn_id.starts_with(PROVISIONAL_BY_PROMPT)
}

/// How far before a span turn's start a log record may still belong to it (0.80 logs
/// the prompt just before its `run_turn` span starts).
const EARLY_SLACK_MS: i64 = 50;

impl Turns {
    pub fn build(ctx: &Ctx) -> Turns {
        let mut turns = Turns {
            of_event: vec![None; ctx.events.len()],
            ..Default::default()
        };
        turns.collect_span_turns(ctx);
        turns.assign_events(ctx);
        turns
    }

    fn collect_span_turns(&mut self, ctx: &Ctx) {
        // Preferred start/end sources: the task span covers the whole turn.
        let mut starts: HashMap<usize, Vec<(&str, i64, u64)>> = HashMap::new();
        let mut ends: HashMap<usize, Vec<(&str, i64, u64)>> = HashMap::new();
        for (i, e) in ctx.events.iter().enumerate() {
            let (turn_id, source, is_start) = match &e.payload {
                P::CodexTurnStarted {
                    codex_turn_id,
                    source,
                    ..
                } => (codex_turn_id, source.as_str(), true),
                P::CodexTurnEnded {
                    codex_turn_id,
                    source,
                } => (codex_turn_id, source.as_str(), false),
                _ => continue,
            };
            let thread = match &e.payload {
                P::CodexTurnStarted {
                    thread_id: Some(t), ..
                } => Some(t.clone()),
                _ => None,
            };
            let idx = match self.by_id.get(turn_id) {
                Some(idx) => *idx,
                None => {
                    self.list.push(TurnBuild {
                        id: turn_id.clone(),
                        thread_id: ctx.thread_of(e).to_string(),
                        start: (e.wall_time_unix_ms, ctx.seq(i)),
                        span_end: None,
                        from_span: true,
                        trace_id: e
                            .evidence
                            .as_ref()
                            .and_then(|ev| ev.trace_id.as_deref().map(str::to_string)),
                        ttft_ms: None,
                    });
                    self.by_id.insert(turn_id.clone(), self.list.len() - 1);
                    self.list.len() - 1
                }
            };
            if let Some(thread) = thread {
                self.list[idx].thread_id = thread;
            }
            let at = (source, e.wall_time_unix_ms, ctx.seq(i));
            if is_start {
                starts.entry(idx).or_default().push(at)
            } else {
                ends.entry(idx).or_default().push(at)
            }
        }
        for (idx, list) in starts {
            let pick = list
                .iter()
                .find(|s| s.0 == "session_task.turn")
                .or_else(|| list.iter().min_by_key(|s| (s.1, s.2)));
            if let Some(s) = pick {
                self.list[idx].start = (s.1, s.2);
            }
        }
        for (idx, list) in ends {
            let pick = list
                .iter()
                .find(|s| s.0 == "session_task.turn")
                .or_else(|| list.iter().max_by_key(|s| (s.1, s.2)));
            self.list[idx].span_end = pick.map(|s| (s.1, s.2));
        }
        // (thread, trace) → turn, from every event that names its turn.
        for e in ctx.events.iter() {
            let (Some(turn), Some(trace)) = (
                e.codex_turn_id.as_deref(),
                e.evidence.as_ref().and_then(|ev| ev.trace_id.as_deref()),
            ) else {
                continue;
            };
            let Some(&idx) = self.by_id.get(turn) else {
                continue;
            };
            let threads = match self.by_trace.get_mut(trace) {
                Some(threads) => threads,
                None => self.by_trace.entry(trace.to_string()).or_default(),
            };
            let thread = self.list[idx].thread_id.as_str();
            match threads.get_mut(thread) {
                Some(entry) if *entry != Some(idx) => *entry = None,
                Some(_) => {}
                None => {
                    threads.insert(thread.to_string(), Some(idx));
                }
            }
        }
        for turn in self.list.iter_mut() {
            if turn.trace_id.is_none() {
                let idx = self.by_id.get(&turn.id).copied();
                turn.trace_id = self
                    .by_trace
                    .iter()
                    .find(|(_, threads)| threads.values().any(|v| v.is_some() && *v == idx))
                    .map(|(trace, _)| trace.clone());
            }
        }
        for (idx, turn) in self.list.iter().enumerate() {
            self.span_turns
                .entry(turn.thread_id.clone())
                .or_default()
                .push((turn.start, idx));
        }
        for turns in self.span_turns.values_mut() {
            turns.sort_unstable();
        }
    }

    fn assign_events(&mut self, ctx: &Ctx) {
        for (i, e) in ctx.events.iter().enumerate() {
            let turn = match &e.payload {
                P::CodexTurnStarted { codex_turn_id, .. }
                | P::CodexTurnEnded { codex_turn_id, .. } => self.by_id.get(codex_turn_id).copied(),
                P::ThreadStarted(_)
                | P::ProcessExited { .. }
                | P::RolloutEnded { .. }
                | P::RolloutStarted { .. } => None,
                _ => self.turn_for(ctx, i),
            };
            self.of_event[i] = turn;
            if let (Some(t), P::TurnTtft { duration_ms }) = (turn, &e.payload) {
                self.list[t].ttft_ms = *duration_ms;
            }
        }
    }

    fn turn_for(&mut self, ctx: &Ctx, i: usize) -> Option<usize> {
        let e = ctx.events[i];
        let thread = ctx.thread_of(e);
        if let Some(turn) = e.codex_turn_id.as_deref().and_then(|t| self.by_id.get(t)) {
            return Some(*turn);
        }
        let trace = e.evidence.as_ref().and_then(|ev| ev.trace_id.as_deref());
        if let Some(trace) = trace
            && let Some(Some(idx)) = self.by_trace.get(trace).and_then(|t| t.get(thread))
        {
            return Some(*idx);
        }
        let t = e.wall_time_unix_ms;
        if let Some(idx) = self.latest_span_turn(thread, t + EARLY_SLACK_MS) {
            let same_trace = match (trace, &self.list[idx].trace_id) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if same_trace {
                return Some(idx);
            }
        }
        let opens_turn = matches!(e.payload, P::UserPrompt { .. });
        match trace {
            // Spans of this trace have not arrived (yet): the trace stands for the turn.
            Some(trace) => {
                let id = format!("{PROVISIONAL_BY_TRACE}{trace}");
                Some(self.get_or_open(id, thread, (t, ctx.seq(i)), Some(trace.to_string())))
            }
            None if opens_turn => Some(self.get_or_open(
                format!("{PROVISIONAL_BY_PROMPT}{thread}:{t}"),
                thread,
                (t, ctx.seq(i)),
                None,
            )),
            None => self.latest(thread, t, false),
        }
    }

    /// The latest span turn of the thread started at or before `t` (the span turns
    /// are all known before events are assigned).
    fn latest_span_turn(&self, thread: &str, t: i64) -> Option<usize> {
        let turns = self.span_turns.get(thread)?;
        let started = turns.partition_point(|(start, _)| start.0 <= t);
        started.checked_sub(1).map(|k| turns[k].1)
    }

    /// The latest turn of the thread started at or before `t`.
    fn latest(&self, thread: &str, t: i64, from_span: bool) -> Option<usize> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, turn)| {
                turn.thread_id == thread && turn.from_span == from_span && turn.start.0 <= t
            })
            .max_by_key(|(_, turn)| turn.start)
            .map(|(idx, _)| idx)
    }

    fn get_or_open(
        &mut self,
        id: String,
        thread: &str,
        start: (i64, u64),
        trace_id: Option<String>,
    ) -> usize {
        if let Some(idx) = self.by_id.get(&id) {
            return *idx;
        }
        self.list.push(TurnBuild {
            id: id.clone(),
            thread_id: thread.to_string(),
            start,
            span_end: None,
            from_span: false,
            trace_id,
            ttft_ms: None,
        });
        self.by_id.insert(id, self.list.len() - 1);
        self.list.len() - 1
    }

    /// Turns of a thread in start order.
    pub fn of_thread<'s>(
        &'s self,
        thread: &'s str,
    ) -> impl Iterator<Item = (usize, &'s TurnBuild)> + 's {
        let mut v: Vec<(usize, &TurnBuild)> = self
            .list
            .iter()
            .enumerate()
            .filter(|(_, t)| t.thread_id == thread)
            .collect();
        v.sort_by_key(|(_, t)| t.start);
        v.into_iter()
    }
}
