//! What commands print: the versioned JSON envelope and error object
//! (`json`), and the renderings of commands whose logic lives elsewhere.
//! Documented in docs/json.md.

pub mod json;
pub mod plan;
pub mod status;
