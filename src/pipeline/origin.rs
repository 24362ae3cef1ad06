//! Where a run's settings came from, for the first lines of its log: the
//! configuration file used (or none) and, when no RECIPE was named, the
//! recipe taken from its `recipe` key.

use crate::config::Options;

/// One or two lines naming the configuration file and the recipe's origin.
pub fn describe(opts: &Options) -> String {
    let config = match &opts.config_file {
        Some(file) => format!("configuration: {}", file.display()),
        None => "configuration: none (flags, environment and defaults)".to_string(),
    };
    if !opts.recipe_from_config {
        return config;
    }
    format!(
        "{config}\nrecipe: {} (the `recipe` key of the configuration)",
        opts.recipe_name
    )
}
