//! What Codex's tool results and arguments say, in the text formats of each version.
//! `success="true"` is not an exit code: the exit code is only inside the output
//! ("Process exited with code 2" in 0.169, "Exit code: 2" in 0.80). A command still
//! running when the tool returned ("Process running with session ID 8624") ends in a
//! later `write_stdin` poll of that session. `spawn_agent` answers
//! `{"agent_id": ..., "nickname": ...}`; agent tools name their target in arguments.

#[derive(Debug, Default, PartialEq)]
pub struct ParsedOutput {
    pub exit_code: Option<i32>,
    pub running_session: Option<String>,
    pub stdout: Option<String>,
    pub chunk_id: Option<String>,
    pub original_token_count: Option<u64>,
}

pub fn parse_output(output: &str) -> ParsedOutput {
    let mut parsed = ParsedOutput::default();
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line
            .strip_prefix("Process exited with code ")
            .or_else(|| line.strip_prefix("Exit code: "))
        {
            parsed.exit_code = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("Process running with session ID ") {
            parsed.running_session = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("Chunk ID: ") {
            parsed.chunk_id = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("Original token count: ") {
            parsed.original_token_count = rest.trim().parse().ok();
        }
    }
    if let Some(pos) = output.find("Output:\n") {
        parsed.stdout = Some(output[pos + "Output:\n".len()..].to_string());
    }
    parsed
}

/// The child a `spawn_agent` result names.
#[derive(Debug, PartialEq)]
pub struct SpawnedAgent {
    pub thread_id: String,
    pub nickname: Option<String>,
}

pub fn spawned_agent(output: &str) -> Option<SpawnedAgent> {
    let output: serde_json::Value = serde_json::from_str(output).ok()?;
    let thread_id = output
        .get("agent_id")
        .or_else(|| output.get("thread_id"))?
        .as_str()?;
    Some(SpawnedAgent {
        thread_id: super::thread_id_attr(Some(thread_id.into()))?,
        nickname: output
            .get("nickname")
            .and_then(|n| n.as_str())
            .map(str::to_string),
    })
}

/// The thread an agent tool (`close_agent`, ...) acts on, from its arguments.
pub fn agent_target(arguments: &str) -> Option<String> {
    let args: serde_json::Value = serde_json::from_str(arguments).ok()?;
    ["target", "id", "agent_id", "thread_id"]
        .iter()
        .find_map(|k| args.get(*k).and_then(|v| v.as_str()).map(str::to_string))
}

/// The session a `write_stdin` call polls, from its arguments.
pub fn polled_session(arguments: &str) -> Option<String> {
    let args: serde_json::Value = serde_json::from_str(arguments).ok()?;
    match args.get("session_id")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_exit_codes_of_both_formats() {
        let new = parse_output(
            "Chunk ID: a69c0f\nWall time: 0.1 seconds\nProcess exited with code 2\nOriginal token count: 9\nOutput:\nls: cannot access\n",
        );
        assert_eq!(new.exit_code, Some(2));
        assert_eq!(new.chunk_id.as_deref(), Some("a69c0f"));
        assert_eq!(new.original_token_count, Some(9));
        assert_eq!(new.stdout.as_deref(), Some("ls: cannot access\n"));
        assert_eq!(
            parse_output("Exit code: 0\nWall time: 0.1 seconds\nOutput:\nhi\n").exit_code,
            Some(0)
        );
        let running = parse_output("Chunk ID: 1\nProcess running with session ID 8624\nOutput:\n");
        assert_eq!(
            (running.exit_code, running.running_session.as_deref()),
            (None, Some("8624"))
        );
    }

    #[test]
    fn reads_spawned_agents_and_targets() {
        let spawned = spawned_agent(
            r#"{"agent_id":"01a20112-d8e5-7ca2-b543-9815a215d838","nickname":"Ramanujan"}"#,
        );
        assert_eq!(
            spawned,
            Some(SpawnedAgent {
                thread_id: "01a20112-d8e5-7ca2-b543-9815a215d838".into(),
                nickname: Some("Ramanujan".into())
            })
        );
        assert_eq!(spawned_agent("not json"), None);
        assert_eq!(agent_target(r#"{"target":"abc"}"#).as_deref(), Some("abc"));
        assert_eq!(
            polled_session(r#"{"session_id":8624,"chars":""}"#).as_deref(),
            Some("8624")
        );
    }
}
