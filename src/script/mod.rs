//! The script host: the Rhai engine with sqlmorph's values and primitives,
//! the recipe runner, and the reference of everything a recipe can call.
//! Every primitive is a thin call into `crate::pipeline`.

pub mod engine;
pub mod mappings;
pub mod names;
pub mod primitives;
pub mod recipe;
pub mod reference;
pub mod sqlfile;
pub mod testing;
pub mod values;
