//! The result of one `sqlmorph test` case: a recipe run (dry) against one
//! fixture or production copy, then its assertions.

use serde::Serialize;

/// One recipe against one database.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// The recipe's file (or `default`).
    pub recipe: String,
    /// The fixture's file, or `production (copy)`.
    pub fixture: String,
    pub passed: bool,
    /// Why it failed: the failing assertion's message, or why the migration
    /// stopped.
    pub message: Option<String>,
    /// `file:line:column` of the failing assertion (its call in the test
    /// file or the recipe's `test` function).
    pub location: Option<String>,
    /// The whole diagnostic (source line, call chain).
    pub detail: Option<String>,
    /// How many test bodies ran (the recipe's `test` function, the test
    /// file): 0 means only the migration itself was tested.
    pub test_bodies: usize,
    pub seconds: f64,
}

/// What a case found, before it is named and timed.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub passed: bool,
    pub message: Option<String>,
    pub location: Option<String>,
    pub detail: Option<String>,
    pub test_bodies: usize,
}

impl Verdict {
    /// A failure with its message, location and full diagnostic.
    pub fn failed(message: String, location: Option<String>, detail: String) -> Verdict {
        Verdict {
            passed: false,
            message: Some(message),
            location,
            detail: Some(detail),
            test_bodies: 0,
        }
    }
}
