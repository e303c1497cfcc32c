//! Inference calls. One call per `endpoint_session` span (its HTTP attempts are the
//! `codex.api_request` records on that span), or, without span ids, one call per run
//! of attempts starting at attempt 0. `codex.sse_event` records carry no ids: they
//! belong to the latest call of their thread.

use super::Ctx;
use super::graph::HttpAttempt;
use super::turns::Turns;
use crate::normalize::raw_event::InferenceAttemptFields;
use crate::normalize::{RawEventPayload as P, TokenUsage};
use std::collections::{BTreeSet, HashMap};

#[derive(Debug)]
pub struct CallBuild {
    pub id: String,
    pub thread_id: String,
    pub turn: Option<usize>,
    pub start: (i64, u64),
    pub model: Option<String>,
    pub span_key: Option<String>,
    pub attempts: Vec<HttpAttempt>,
    pub last_attempt_seq: u64,
    pub completed: Option<((i64, u64), TokenUsage, Option<i64>)>,
    pub failed: Option<((i64, u64), Option<String>)>,
    pub first_stream_event: Option<i64>,
}

impl CallBuild {
    pub fn last_attempt_failed(&self) -> bool {
        self.attempts.last().is_some_and(|a| {
            a.error.is_some() || a.status_code.is_some_and(|c| !(200..300).contains(&c))
        })
    }

    /// Codex does not retry these answers.
    fn last_attempt_is_final_error(&self) -> bool {
        self.attempts
            .last()
            .and_then(|a| a.status_code)
            .is_some_and(|c| (400..500).contains(&c) && c != 408 && c != 429)
    }
}

pub struct Calls {
    pub list: Vec<CallBuild>,
}

impl Calls {
    pub fn build(ctx: &Ctx, turns: &Turns) -> Calls {
        let mut list: Vec<CallBuild> = Vec::new();
        let mut by_span: HashMap<String, usize> = HashMap::new();
        let mut starts = Starts::default();
        for (i, e) in ctx.events.iter().enumerate() {
            let thread = ctx.thread_of(e);
            let t = e.wall_time_unix_ms;
            match &e.payload {
                P::InferenceAttempt(a) => {
                    let InferenceAttemptFields {
                        attempt,
                        status_code,
                        duration_ms,
                        error_message,
                        upstream_request_id,
                        model,
                        ..
                    } = &**a;
                    let started = t - duration_ms.unwrap_or(0).max(0);
                    let span_key = e.evidence.as_ref().and_then(|ev| {
                        Some(format!(
                            "{}:{}",
                            ev.trace_id.as_ref()?,
                            ev.span_id.as_ref()?
                        ))
                    });
                    let existing = match &span_key {
                        Some(key) => by_span.get(key).copied(),
                        None if *attempt > 0 => list
                            .iter()
                            .rposition(|c| c.thread_id == thread && c.span_key.is_none())
                            .filter(|&c| {
                                list[c]
                                    .attempts
                                    .last()
                                    .is_some_and(|a| a.attempt < *attempt)
                            }),
                        None => None,
                    };
                    let idx = existing.unwrap_or_else(|| {
                        let id = match &span_key {
                            Some(key) => {
                                format!("inference:{}", key.rsplit(':').next().unwrap_or(key))
                            }
                            None => format!("inference:{thread}:{started}"),
                        };
                        list.push(CallBuild {
                            id,
                            thread_id: thread.to_string(),
                            turn: turns.of_event[i],
                            start: (started, ctx.seq(i)),
                            model: model.clone(),
                            span_key: span_key.clone(),
                            attempts: Vec::new(),
                            last_attempt_seq: 0,
                            completed: None,
                            failed: None,
                            first_stream_event: None,
                        });
                        if let Some(key) = &span_key {
                            by_span.insert(key.clone(), list.len() - 1);
                        }
                        let idx = list.len() - 1;
                        starts.insert(&list[idx], idx);
                        idx
                    });
                    if started < list[idx].start.0 {
                        starts.remove(&list[idx], idx);
                        list[idx].start.0 = started;
                        starts.insert(&list[idx], idx);
                    }
                    let call = &mut list[idx];
                    call.last_attempt_seq = ctx.seq(i);
                    call.attempts.push(HttpAttempt {
                        attempt: *attempt,
                        started_at_unix_ms: started,
                        ended_at_unix_ms: t,
                        status_code: *status_code,
                        error: error_message.clone(),
                        upstream_request_id: upstream_request_id.clone(),
                    });
                }
                P::InferenceStreamEvent { .. } => {
                    if let Some(c) = starts.latest(thread, t) {
                        list[c].first_stream_event.get_or_insert(t);
                    }
                }
                P::InferenceCompleted { usage, ttft_ms } => {
                    if let Some(c) = starts.latest(thread, t) {
                        let c = &mut list[c];
                        c.first_stream_event.get_or_insert(t);
                        c.completed = Some(((t, ctx.seq(i)), usage.clone(), *ttft_ms));
                    }
                }
                P::InferenceFailed {
                    error_message,
                    source,
                } => {
                    let call = if source == "codex.sse_event" {
                        starts.latest(thread, t).map(|c| &mut list[c])
                    } else {
                        // The stream-error span: the latest call of its turn.
                        let turn = turns.of_event[i];
                        list.iter_mut()
                            .filter(|c| c.turn == turn && c.start.0 <= t)
                            .max_by_key(|c| c.start)
                    };
                    if let Some(c) = call {
                        let at = if source == "codex.sse_event" {
                            t
                        } else {
                            c.attempts.last().map(|a| a.ended_at_unix_ms).unwrap_or(t)
                        };
                        let error = error_message
                            .clone()
                            .or_else(|| c.attempts.last().and_then(|a| a.error.clone()));
                        if c.failed.is_none() || source == "codex.sse_event" {
                            c.failed = Some(((at, ctx.seq(i)), error));
                        }
                    }
                }
                _ => {}
            }
        }
        list.sort_by_key(|c| c.start);
        Calls { list }
    }

    /// Decides a call's final status: completed, failed, or still running.
    /// `turn_over` says whether nothing more can come for it (its turn ended, a later
    /// call started, or the rollout was closed).
    pub fn outcome(call: &CallBuild, turn_over: bool) -> Outcome {
        if let Some((at, error)) = &call.failed
            && call.completed.as_ref().is_none_or(|(done, ..)| done < at)
        {
            return Outcome::Failed(*at, error.clone());
        }
        if let Some((at, ..)) = &call.completed {
            return Outcome::Completed(*at);
        }
        if call.last_attempt_failed() && (turn_over || call.last_attempt_is_final_error()) {
            let last = call.attempts.last().expect("attempt");
            let error = last
                .error
                .clone()
                .or_else(|| last.status_code.map(|c| format!("http {c}")));
            return Outcome::Failed((last.ended_at_unix_ms, call.last_attempt_seq), error);
        }
        Outcome::Running
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Completed((i64, u64)),
    Failed((i64, u64), Option<String>),
    Running,
}

/// The calls of each thread by (start, index): finds the latest call of a thread
/// started by a given time (the one its stream events belong to) without a scan.
#[derive(Default)]
struct Starts {
    of_thread: HashMap<String, BTreeSet<(At, usize)>>,
}

/// (wall time in ms, canonical seq).
type At = (i64, u64);

impl Starts {
    fn insert(&mut self, call: &CallBuild, idx: usize) {
        match self.of_thread.get_mut(&call.thread_id) {
            Some(starts) => starts.insert((call.start, idx)),
            None => self
                .of_thread
                .entry(call.thread_id.clone())
                .or_default()
                .insert((call.start, idx)),
        };
    }

    fn remove(&mut self, call: &CallBuild, idx: usize) {
        if let Some(starts) = self.of_thread.get_mut(&call.thread_id) {
            starts.remove(&(call.start, idx));
        }
    }

    /// The call of `thread` with the latest start at or before `t` (of equal starts,
    /// the last made).
    fn latest(&self, thread: &str, t: i64) -> Option<usize> {
        self.of_thread
            .get(thread)?
            .range(..=((t, u64::MAX), usize::MAX))
            .next_back()
            .map(|(_, idx)| *idx)
    }
}
