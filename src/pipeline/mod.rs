//! The migration pipeline: one session's state and steps (backup,
//! snapshot, plan, review, copy, transform, validate, deploy, rollback),
//! with no Rhai in it. The CLI, recipes (through `crate::script`) and the
//! REPL all drive the same [`session::Run`].

pub mod affinity;
pub mod alter;
pub mod backup;
pub mod backupcheck;
pub mod carry;
pub mod check;
pub mod checksum;
pub mod copy;
pub mod declared;
pub mod deploy;
pub mod fastpath;
pub mod fixtures;
pub mod fkproof;
pub mod gate;
pub mod indexcheck;
pub mod leftovers;
pub mod origin;
pub mod pageproof;
pub mod path;
pub mod plan;
pub mod preview;
pub mod prompt;
pub mod rehearsal;
pub mod retention;
pub mod review;
pub mod rollback;
pub mod rundirs;
pub mod session;
pub mod status;
pub mod testcase;
pub mod transform;
pub mod validate;
