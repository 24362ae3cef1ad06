//! One integration-test binary (one link step): every module drives the real
//! `sqlmorph` binary against real SQLite files made in temporary directories.

mod support;

mod check_cmd;
mod ci_example;
mod config_env;
mod conventions;
mod conversation;
mod declared_renames;
mod diff_cmd;
mod fastpath;
mod faults;
mod fidelity;
mod gate;
mod handles;
mod history;
mod input_errors;
mod json_doc;
mod litestream;
mod live_app;
mod migrate;
mod progress_bars;
mod quickstart;
mod recipe_checks;
mod recipes;
mod repl;
mod retention;
mod schema_cmd;
mod security;
mod ssh_deploy;
mod ssh_live;
mod ssh_transport;
mod status_cmd;
mod test_cmd;
