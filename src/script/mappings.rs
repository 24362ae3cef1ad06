//! The mapping primitives (renames, expressions, fills, drops), declared
//! before `plan`: each checks the names it is given against the schema they
//! apply to (see [`super::names`]) when it is called, so a typo is an error
//! at its own recipe line, before anything is backed up.

use std::rc::Rc;

use anyhow::Result;
use rhai::{Engine, EvalAltResult};

use super::engine::{Shared, fail};
use super::names::{self, Known};
use crate::pipeline::plan::Mappings;
use crate::pipeline::session::Run;

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Checks a mapping's names (reading both schemas on the first mapping),
/// then records it unless the check found it applied already.
fn declare(
    run: &Shared<Run>,
    known: &Shared<Option<Known>>,
    check: impl FnOnce(&Known, &Mappings) -> Result<bool>,
    add: impl FnOnce(&mut Mappings),
) -> Result<()> {
    let mut cell = known.borrow_mut();
    let known = cell.get_or_insert_with(|| names::load(&mut run.borrow_mut()));
    if check(known, run.borrow().mappings())? {
        add(run.borrow_mut().mappings_mut());
    }
    Ok(())
}

/// Registers the mapping primitives, bound to one run.
pub fn register(engine: &mut Engine, run: &Shared<Run>) {
    let known: Shared<Option<Known>> = Rc::default();
    macro_rules! mapping {
        ($name:expr, |$k:ident, $m:ident $(, $arg:ident : $ty:ty)*| $check:expr, $add:expr) => {{
            let (run, known) = (Rc::clone(run), Rc::clone(&known));
            engine.register_fn($name, move |$($arg: $ty),*| -> RhaiResult<()> {
                declare(&run, &known, |$k, $m| { let _ = $m; $check }, |$m| $add).map_err(|e| fail(&run, &e))
            });
        }};
    }

    mapping!(
        "rename_table",
        |k, m, old: &str, new: &str| k.rename_table(old, new),
        m.table_renames.push((old.into(), new.into()))
    );
    mapping!(
        "rename_column",
        |k, m, table: &str, old: &str, new: &str| k.rename_column(m, table, old, new),
        m.column_renames
            .push((table.into(), old.into(), new.into()))
    );
    mapping!(
        "map_column",
        |k, m, table: &str, column: &str, expr: &str| k
            .source_column("map_column", table, column)
            .map(|()| true),
        m.expressions
            .push((table.into(), column.into(), expr.into()))
    );
    mapping!(
        "fill",
        |k, m, table: &str, column: &str, expr: &str| k
            .source_column("fill", table, column)
            .map(|()| true),
        m.fills.push((table.into(), column.into(), expr.into()))
    );
    mapping!(
        "fill",
        |k, m, table: &str, column: &str, value: i64| k
            .source_column("fill", table, column)
            .map(|()| true),
        m.fills
            .push((table.into(), column.into(), value.to_string()))
    );
    mapping!(
        "fill",
        |k, m, table: &str, column: &str, value: f64| k
            .source_column("fill", table, column)
            .map(|()| true),
        m.fills
            .push((table.into(), column.into(), format!("{value:?}")))
    );
    mapping!(
        "drop_table",
        |k, m, table: &str| k.drop_table(table).map(|()| true),
        m.drop_tables.push(table.into())
    );
    mapping!(
        "drop_column",
        |k, m, table: &str, column: &str| k.drop_column(table, column).map(|()| true),
        m.drop_columns.push((table.into(), column.into()))
    );
}
