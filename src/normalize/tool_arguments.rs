//! Codex's tool arguments (the JSON text of a function call), read into terminal
//! operation requests: the exec tools name the command `cmd` (exec_command) or
//! `command` (shell, a string or an argv array), the directory `workdir` or `cwd`, and
//! write_stdin its input `chars` or `stdin`. The result side (exit code, a still-running
//! session) is read by [`super::tool_output`].

fn parse(arguments: Option<&str>) -> serde_json::Value {
    arguments
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The request of an exec command, from the tool arguments (nothing invented).
pub fn exec_request(arguments: Option<&str>) -> serde_json::Value {
    let args = parse(arguments);
    let command: Vec<String> = match args.get("cmd").or_else(|| args.get("command")) {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => arguments.map(str::to_string).into_iter().collect(),
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

/// The request of a write_stdin call (input sent to a running command).
pub fn write_stdin_request(arguments: Option<&str>) -> serde_json::Value {
    let args = parse(arguments);
    serde_json::json!({
        "type": "write_stdin",
        "stdin": args.get("chars").or_else(|| args.get("stdin")).cloned().unwrap_or(serde_json::Value::String(String::new())),
        "yield_time_ms": args.get("yield_time_ms").cloned(),
        "max_output_tokens": args.get("max_output_tokens").cloned(),
    })
}
