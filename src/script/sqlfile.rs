//! `sql_file(db, path)`: runs a `.sql` script on a writable handle, one
//! statement at a time as SQLite's own parser splits it
//! ([`crate::sqlscript`]), with errors naming the file and the line of the
//! failing statement. The path is relative to the recipe.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::Result;
use rhai::{Engine, EvalAltResult};

use super::engine::{Shared, fail};
use crate::error::input;
use crate::pipeline::session::{Db, Run};

/// Registers `sql_file`, resolving paths against `recipe_dir`.
pub fn register(engine: &mut Engine, run: &Shared<Run>, recipe_dir: Option<&Path>) {
    let (run, dir) = (Rc::clone(run), recipe_dir.map(Path::to_path_buf));
    engine.register_fn(
        "sql_file",
        move |db: Db, path: &str| -> Result<(), Box<EvalAltResult>> {
            let file = dir
                .as_ref()
                .map_or_else(|| PathBuf::from(path), |d| d.join(path));
            let result = run_file(&run.borrow(), &db, &file);
            result.map_err(|e| fail(&run, &e))
        },
    );
}

/// Reads the script and runs it on the handle, as its role allows.
fn run_file(run: &Run, db: &Db, file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| input(format!("sql_file: reading {}: {e}", file.display())))?;
    let conn = run.connect(db, "sql_file")?;
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(input(format!(
            "sql_file: {}: attempt to write a readonly database: {}",
            db.path.display(),
            run.read_only_reason(db)
        )));
    }
    crate::sqlscript::execute(&conn, &text, &file.display().to_string())
        .map_err(|e| input(format!("sql_file: {e:#}")))
}
