//! Where `sqlmorph.toml` is and what its relative paths mean: the file is
//! `--config F` (or `SQLMORPH_CONFIG`), else the first `sqlmorph.toml` in
//! the current directory or one of its parents; a relative path in it is
//! relative to the directory the file is in, wherever sqlmorph runs from.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::{Config, FILE_NAME, Production};
use crate::error::input;

/// The configuration file to read: `explicit`, else the nearest
/// `sqlmorph.toml` from `cwd` up to the root (`sqlmorph.toml` itself when
/// it is in `cwd`, so that messages stay short), else none. A file found in
/// a parent directory must have the owner of `cwd`: one planted in a shared
/// directory (`/tmp/sqlmorph.toml`) is refused, never used.
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<Option<PathBuf>> {
    if let Some(p) = explicit {
        return Ok(Some(p.to_path_buf()));
    }
    if cwd.join(FILE_NAME).is_file() {
        return Ok(Some(PathBuf::from(FILE_NAME)));
    }
    let Some(found) = cwd
        .ancestors()
        .skip(1)
        .map(|dir| dir.join(FILE_NAME))
        .find(|p| p.is_file())
    else {
        return Ok(None);
    };
    if owner(&found) != owner(cwd) {
        return Err(input(format!(
            "{} was found above the current directory but belongs to another user: \
             sqlmorph does not use it; give --config (or SQLMORPH_CONFIG) to name the \
             configuration, or remove that file",
            found.display()
        )));
    }
    Ok(Some(found))
}

fn owner(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.uid())
}

/// `path` read relative to `base` (the configuration file's directory).
fn rebase(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() || path.starts_with("~") {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn rebase_target(base: &Path, target: &str) -> String {
    if target.starts_with("ssh://") {
        target.to_string()
    } else {
        rebase(base, Path::new(target)).display().to_string()
    }
}

/// Rewrites every relative path of `config` (read from `file`) against the
/// file's directory. A file in the current directory changes nothing.
pub fn resolve_relative(config: &mut Config, file: &Path) {
    let base = file.parent().unwrap_or(Path::new("")).to_path_buf();
    if base.as_os_str().is_empty() {
        return;
    }
    let fix = |p: &mut Option<PathBuf>| {
        if let Some(path) = p.as_mut() {
            *path = rebase(&base, path);
        }
    };
    fix(&mut config.source);
    fix(&mut config.backup_dir);
    fix(&mut config.work_dir);
    fix(&mut config.recipe);
    fix(&mut config.ssh.identity);
    fix(&mut config.ssh.known_hosts);
    fix(&mut config.test.fixtures);
    config.production = config.production.take().map(|p| match p {
        Production::One(t) => Production::One(rebase_target(&base, &t)),
        Production::Fleet(v) => {
            Production::Fleet(v.iter().map(|t| rebase_target(&base, t)).collect())
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_file_upwards() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "").unwrap();
        let found = |from: &Path| locate(None, from).unwrap();
        assert_eq!(found(&sub), Some(dir.path().join(FILE_NAME)));
        assert_eq!(found(dir.path()), Some(PathBuf::from(FILE_NAME)));
        let explicit = Path::new("x.toml");
        let named = locate(Some(explicit), &sub).unwrap();
        assert_eq!(named, Some(explicit.to_path_buf()));
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let mut c = Config {
            source: Some("schema.sql".into()),
            production: Some(Production::Fleet(vec![
                "db/prod.sqlite3".into(),
                "ssh://u@h/srv/a.sqlite3".into(),
            ])),
            backup_dir: Some("/abs/backups".into()),
            test: crate::config::TestConfig {
                fixtures: Some("tests/fixtures".into()),
            },
            ..Config::default()
        };
        resolve_relative(&mut c, Path::new("/proj/sqlmorph.toml"));
        assert_eq!(c.source, Some(PathBuf::from("/proj/schema.sql")));
        assert_eq!(c.test.fixtures, Some(PathBuf::from("/proj/tests/fixtures")));
        assert_eq!(c.backup_dir, Some(PathBuf::from("/abs/backups")));
        let targets = c.production.unwrap().targets();
        assert_eq!(
            targets,
            vec!["/proj/db/prod.sqlite3", "ssh://u@h/srv/a.sqlite3"]
        );
        let mut here = Config {
            source: Some("schema.sql".into()),
            ..Config::default()
        };
        resolve_relative(&mut here, Path::new(FILE_NAME));
        assert_eq!(here.source, Some(PathBuf::from("schema.sql")));
    }
}
