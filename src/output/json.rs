//! The one JSON shape of every command's `--format json` (docs/json.md):
//! an object with `format_version`, `command` and `ok`, then the command's
//! own fields; on failure (exit 2, 3, 4…) an `error` object instead, printed
//! on standard output too, so a pipeline always has one object to parse.

use anyhow::Result;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ExitKind, exit_kind};
use crate::pipeline::gate::Stop;

/// The version of the shape below; it changes only when a documented key
/// changes meaning or disappears (new keys may be added).
pub const FORMAT_VERSION: u64 = 1;

/// The `kind` of an error object, snake_case.
pub fn kind_name(kind: ExitKind) -> &'static str {
    match kind {
        ExitKind::Input => "input",
        ExitKind::Aborted => "aborted",
        ExitKind::DeployFailed => "deploy_failed",
        ExitKind::Interrupted => "interrupted",
        ExitKind::Terminated => "terminated",
    }
}

fn head(command: &str, ok: bool) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("format_version".into(), FORMAT_VERSION.into());
    map.insert("command".into(), command.into());
    map.insert("ok".into(), ok.into());
    map
}

/// Adds the fields of `body` (an object; anything else goes under
/// `result`) after the head.
fn merge(map: &mut Map<String, Value>, body: Value) {
    match body {
        Value::Object(fields) => {
            for (k, v) in fields {
                map.entry(k).or_insert(v);
            }
        }
        Value::Null => {}
        other => {
            map.insert("result".into(), other);
        }
    }
}

fn pretty(map: Map<String, Value>) -> String {
    serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_else(|_| "{}".into()) + "\n"
}

/// A command that completed (exit 0, or 1 for "differences found").
pub fn success(command: &str, body: &impl Serialize) -> Result<String> {
    let mut map = head(command, true);
    merge(&mut map, serde_json::to_value(body)?);
    Ok(pretty(map))
}

/// The error object of a command that failed: `error.kind`,
/// `error.message`, `error.exit_code`, and for a gate's stop `error.needs`
/// (with the command's own fields, e.g. `plan`'s `changes`, beside).
pub fn error(command: &str, err: &anyhow::Error) -> String {
    let kind = exit_kind(err);
    let mut error = Map::new();
    error.insert("kind".into(), kind_name(kind).into());
    error.insert("message".into(), format!("{err:#}").into());
    error.insert("exit_code".into(), (kind as u8).into());
    let stop = err.chain().find_map(|e| e.downcast_ref::<Stop>());
    if let Some(stop) = stop {
        error.insert(
            "needs".into(),
            serde_json::to_value(&stop.needs).unwrap_or_default(),
        );
    }
    let mut map = head(command, false);
    map.insert("error".into(), Value::Object(error));
    if let Some(detail) = stop.and_then(|s| s.detail.clone()) {
        merge(&mut map, detail);
    }
    pretty(map)
}

/// The error object of a command line clap rejected (exit 2), when it
/// asked for `--format json`: the command is the first word that is not an
/// option.
pub fn usage_error(args: &[String], message: &str) -> Option<String> {
    let json = args
        .windows(2)
        .any(|w| w[0] == "--format" && w[1] == "json")
        || args.iter().any(|a| a == "--format=json");
    if !json {
        return None;
    }
    let command = args
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or("sqlmorph", String::as_str);
    let message = message.trim();
    let err = crate::error::input(message.strip_prefix("error: ").unwrap_or(message));
    Some(error(command, &err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_object_names_kind_and_exit_code() {
        let v: Value = serde_json::from_str(&error("run", &crate::error::aborted("no"))).unwrap();
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["kind"], "aborted");
        assert_eq!(v["error"]["exit_code"], 3);
        assert_eq!(v["error"]["message"], "no");
    }

    #[test]
    fn a_usage_error_is_an_object_only_when_json_was_asked_for() {
        let args: Vec<String> = ["sqlmorph", "plan", "--bogus", "--format", "json"]
            .map(String::from)
            .to_vec();
        let v: Value = serde_json::from_str(&usage_error(&args, "bad flag\n").unwrap()).unwrap();
        assert_eq!(v["command"], "plan");
        assert_eq!(v["error"]["kind"], "input");
        assert_eq!(v["error"]["exit_code"], 2);
        assert!(usage_error(&args[..3], "bad flag").is_none());
    }

    #[test]
    fn success_keeps_the_head_first_and_the_body_fields() {
        let text = success("diff", &serde_json::json!({"identical": true, "ok": "x"})).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ok"], true, "the body cannot overwrite the head");
        assert_eq!(v["identical"], true);
    }
}
