//! `sqlmorph plan`: what a run would do and whether it would complete,
//! from a consistent read-only copy of production in a private temporary
//! directory (removed when done; nothing is left beside production).

use anyhow::Result;

use crate::config::Options;
use crate::diff::SchemaDiff;
use crate::pipeline::gate::{self, Flags, Need};
use crate::pipeline::path::{self, Choice};
use crate::pipeline::plan::{self, Plan};

/// The plan of the stock recipe and what its run would need.
pub struct Preview {
    pub diff: SchemaDiff,
    pub plan: Plan,
    pub choice: Choice,
    /// Empty when `run` with the same flags would complete.
    pub needs: Vec<Need>,
}

/// Plans the stock migration of production to the source.
pub fn preview(opts: &Options, flags: Flags) -> Result<Preview> {
    let source = crate::pipeline::session::load_source(opts)?;
    let scratch = tempfile::Builder::new()
        .prefix("sqlmorph-plan-")
        .tempdir()?;
    let local = scratch.path().join("production.sqlite3");
    crate::target::Production::new(opts, crate::target::Access::ReadOnly)
        .copy_to(&local, &mut crate::log::Log::console(true))?;
    let mut maps = plan::Mappings::default();
    // Renames declared in a .sql source (`-- @renamed from=OLD`).
    for note in crate::pipeline::declared::apply(&opts.source, &local, &mut maps)? {
        eprintln!("{}", note.trim_start());
    }
    let (prod, diff, plan) = plan::from_copy(&local, &source, &maps)?;
    let forced = path::forced(opts.rebuild, opts.is_remote());
    let choice = path::choose(&prod, &source, &diff, &plan, &maps, forced);
    let needs = gate::predict(&plan, &diff, flags);
    Ok(Preview {
        diff,
        plan,
        choice,
        needs,
    })
}
