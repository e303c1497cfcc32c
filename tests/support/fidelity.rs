//! A port of `shared/tools/fidelity.py`: compares a rebuilt graph with the state.json
//! that Codex's own reducer made of the same session, on the facts telemetry carries.

use serde_json::Value;
use std::collections::BTreeMap;

const TURN: &[&str] = &[
    "thread_id",
    "execution.status",
    "execution.started_at_unix_ms~",
    "execution.ended_at_unix_ms~",
];
const THREAD: &[&str] = &[
    "agent_path",
    "nickname",
    "origin.type",
    "origin.parent_thread_id",
    "execution.status",
];
const INFERENCE: &[&str] = &[
    "thread_id",
    "codex_turn_id",
    "execution.status",
    "model",
    "provider_name",
    "usage.input_tokens",
    "usage.cached_input_tokens",
    "usage.cache_write_input_tokens",
    "usage.output_tokens",
    "usage.reasoning_output_tokens",
    "tool_call_ids_started_by_response#",
    "execution.started_at_unix_ms~",
    "execution.ended_at_unix_ms~",
];
const TOOL: &[&str] = &[
    "thread_id",
    "started_by_codex_turn_id",
    "execution.status",
    "kind",
    "requester.type",
    "model_visible_call_id",
    "execution.started_at_unix_ms~",
    "execution.ended_at_unix_ms~",
];
const TERMINAL: &[&str] = &["kind", "execution.status", "result.exit_code"];
const EDGE: &[&str] = &["kind", "source.tool_call_id", "target.thread_id"];
const COLLECTIONS: &[&str] = &[
    "threads",
    "codex_turns",
    "inference_calls",
    "tool_calls",
    "terminal_operations",
    "interaction_edges",
];

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, p| v.get(p))
        .filter(|v| !v.is_null())
}

/// Merges the oracles of a session resumed in several processes.
pub fn merge(states: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for key in COLLECTIONS {
        let mut merged = serde_json::Map::new();
        for s in states {
            for (k, v) in s
                .get(*key)
                .and_then(|m| m.as_object())
                .into_iter()
                .flatten()
            {
                if *key == "threads"
                    && let Some(prev) = merged.get_mut(k)
                {
                    if let Some(end) = get(v, "execution.ended_at_unix_ms") {
                        prev["execution"]["ended_at_unix_ms"] = end.clone();
                        prev["execution"]["status"] = v["execution"]["status"].clone();
                    }
                } else {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        out.insert(key.to_string(), Value::Object(merged));
    }
    out.insert(
        "status".into(),
        states
            .last()
            .map(|s| s["status"].clone())
            .unwrap_or(Value::Null),
    );
    Value::Object(out)
}

#[derive(Default, Debug)]
pub struct Score {
    pub matched: usize,
    pub total: usize,
    pub mismatches: Vec<String>,
}

impl Score {
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.matched as f64 / self.total as f64
        }
    }

    fn field(&mut self, what: &str, oracle: &Value, cand: Option<&Value>, path: &str) {
        let timed = path.ends_with('~');
        let as_set = path.ends_with('#');
        let key = path.trim_end_matches(['~', '#']);
        let want = get(oracle, key);
        if timed && want.is_none() {
            return;
        }
        let got = cand.and_then(|c| get(c, key));
        let ok = match (timed, as_set) {
            _ if cand.is_none() => false,
            (true, _) => match (want.and_then(Value::as_f64), got.and_then(Value::as_f64)) {
                (Some(w), Some(g)) => (w - g).abs() <= 100.0,
                _ => false,
            },
            (_, true) => {
                let sorted = |v: Option<&Value>| {
                    let mut l: Vec<String> = v
                        .and_then(|v| v.as_array())
                        .into_iter()
                        .flatten()
                        .map(|x| x.to_string())
                        .collect();
                    l.sort();
                    l
                };
                sorted(want) == sorted(got)
            }
            _ => want == got,
        };
        self.total += 1;
        if ok {
            self.matched += 1;
        } else {
            self.mismatches
                .push(format!("{what} {key}: oracle={want:?} candidate={got:?}"));
        }
    }

    fn objects(
        &mut self,
        kind: &str,
        oracle: &BTreeMap<String, Value>,
        cand: &BTreeMap<String, Value>,
        fields: &[&str],
    ) {
        for (id, o) in oracle {
            for f in fields {
                self.field(&format!("{kind} {id}"), o, cand.get(id), f);
            }
        }
    }
}

fn map(v: &Value, key: &str) -> BTreeMap<String, Value> {
    v.get(key)
        .and_then(|m| m.as_object())
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn keyed(v: &Value, key: &str, by: impl Fn(&Value) -> String) -> BTreeMap<String, Value> {
    map(v, key).into_values().map(|o| (by(&o), o)).collect()
}

/// Scores `candidate` against the merged oracle, as fidelity.py does.
pub fn score(oracle: &Value, candidate: &Value) -> Score {
    let candidate = align_turns(oracle, candidate);
    let mut s = Score::default();
    s.field("rollout", oracle, Some(&candidate), "status");
    s.objects(
        "thread",
        &map(oracle, "threads"),
        &map(&candidate, "threads"),
        THREAD,
    );
    s.objects(
        "turn",
        &map(oracle, "codex_turns"),
        &map(&candidate, "codex_turns"),
        TURN,
    );
    s.objects(
        "tool",
        &map(oracle, "tool_calls"),
        &map(&candidate, "tool_calls"),
        TOOL,
    );
    let by_tool = |o: &Value| o["tool_call_id"].as_str().unwrap_or("").to_string();
    s.objects(
        "terminal",
        &keyed(oracle, "terminal_operations", by_tool),
        &keyed(&candidate, "terminal_operations", by_tool),
        TERMINAL,
    );
    let edge_key = |e: &Value| {
        format!(
            "{}:{}",
            e["kind"].as_str().unwrap_or(""),
            get(e, "source.tool_call_id")
                .and_then(|v| v.as_str())
                .unwrap_or("")
        )
    };
    s.objects(
        "edge",
        &keyed(oracle, "interaction_edges", edge_key),
        &keyed(&candidate, "interaction_edges", edge_key),
        EDGE,
    );
    let by_turn = |v: &Value| {
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for c in map(v, "inference_calls").into_values() {
            groups
                .entry(c["codex_turn_id"].to_string())
                .or_default()
                .push(c);
        }
        for calls in groups.values_mut() {
            calls.sort_by_key(|c| {
                (
                    get(c, "execution.started_at_unix_ms").and_then(|v| v.as_i64()),
                    get(c, "execution.started_seq").and_then(|v| v.as_i64()),
                )
            });
        }
        groups
    };
    let theirs = by_turn(&candidate);
    for (turn, calls) in by_turn(oracle) {
        for (i, call) in calls.iter().enumerate() {
            let c = theirs.get(&turn).and_then(|l| l.get(i));
            for f in INFERENCE {
                s.field(&format!("inference {turn}#{i}"), call, c, f);
            }
        }
    }
    s
}

/// Renames candidate turns the oracle does not know (logs-only sessions have no turn
/// ids) to the oracle's remaining turns of the same thread, by start order.
fn align_turns(oracle: &Value, candidate: &Value) -> Value {
    let o_turns = map(oracle, "codex_turns");
    let c_turns = map(candidate, "codex_turns");
    let start = |t: &Value| {
        (
            get(t, "execution.started_at_unix_ms")
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
            get(t, "execution.started_seq")
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
        )
    };
    let mut rename = BTreeMap::new();
    let threads: std::collections::BTreeSet<String> = c_turns
        .values()
        .map(|t| t["thread_id"].as_str().unwrap_or("").to_string())
        .collect();
    for thread in threads {
        let mut free_o: Vec<&Value> = o_turns
            .iter()
            .filter(|(k, t)| {
                t["thread_id"].as_str() == Some(thread.as_str()) && !c_turns.contains_key(*k)
            })
            .map(|(_, t)| t)
            .collect();
        let mut free_c: Vec<&Value> = c_turns
            .iter()
            .filter(|(k, t)| {
                t["thread_id"].as_str() == Some(thread.as_str()) && !o_turns.contains_key(*k)
            })
            .map(|(_, t)| t)
            .collect();
        free_o.sort_by_key(|t| start(t));
        free_c.sort_by_key(|t| start(t));
        for (o, c) in free_o.iter().zip(free_c) {
            rename.insert(
                c["codex_turn_id"].as_str().unwrap_or("").to_string(),
                o["codex_turn_id"].clone(),
            );
        }
    }
    let mut out = candidate.clone();
    let renamed = |v: &Value| {
        v.as_str()
            .and_then(|s| rename.get(s))
            .cloned()
            .unwrap_or_else(|| v.clone())
    };
    let turns: serde_json::Map<String, Value> = c_turns
        .into_iter()
        .map(|(k, mut t)| {
            let new = renamed(&Value::String(k.clone()));
            t["codex_turn_id"] = new.clone();
            (new.as_str().unwrap_or(&k).to_string(), t)
        })
        .collect();
    out["codex_turns"] = Value::Object(turns);
    for call in out["inference_calls"]
        .as_object_mut()
        .into_iter()
        .flat_map(|m| m.values_mut())
    {
        call["codex_turn_id"] = renamed(&call["codex_turn_id"]);
    }
    for tool in out["tool_calls"]
        .as_object_mut()
        .into_iter()
        .flat_map(|m| m.values_mut())
    {
        tool["started_by_codex_turn_id"] = renamed(&tool["started_by_codex_turn_id"]);
    }
    out
}
