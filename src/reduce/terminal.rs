//! Terminal operation requests, from the tool arguments. The result side (exit code,
//! a still-running session) is read by [`crate::normalize::tool_output`].

use super::tools::ToolBuild;

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
