//! Terminal operations, read from the tool result text. `success="true"` is not an
//! exit code: the exit code is only inside the output ("Process exited with code 2"
//! in 0.169, "Exit code: 2" in 0.80). A command still running when the tool returned
//! ("Process running with session ID 8624") ends in a later `write_stdin` poll.

use super::tools::ToolBuild;

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

/// The session a `write_stdin` call polls.
pub fn polled_session(tool: &ToolBuild) -> Option<String> {
    let args = tool.arguments_json()?;
    match args.get("session_id")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The request of an exec command, from the tool arguments (nothing invented).
pub fn exec_request(tool: &ToolBuild) -> serde_json::Value {
    let args = tool.arguments_json().unwrap_or(serde_json::Value::Null);
    let command: Vec<String> = match args.get("cmd").or_else(|| args.get("command")) {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => tool.arguments.clone().into_iter().collect(),
    };
    serde_json::json!({
        "type": "exec_command",
        "command": command,
        "display_command": command.join(" "),
        "cwd": args.get("workdir").or_else(|| args.get("cwd")).cloned(),
        "yield_time_ms": args.get("yield_time_ms").cloned(),
        "max_output_tokens": args.get("max_output_tokens").cloned(),
    })
}

pub fn write_stdin_request(tool: &ToolBuild) -> serde_json::Value {
    let args = tool.arguments_json().unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "type": "write_stdin",
        "stdin": args.get("chars").or_else(|| args.get("stdin")).cloned().unwrap_or(serde_json::Value::String(String::new())),
        "yield_time_ms": args.get("yield_time_ms").cloned(),
        "max_output_tokens": args.get("max_output_tokens").cloned(),
    })
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
}
