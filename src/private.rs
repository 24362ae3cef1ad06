//! Files only the user can read. A run's files hold production's data (or
//! its schema), so every file sqlmorph writes for a run is created mode 0600
//! and every directory it creates 0700, whatever the umask; files are
//! created exclusively (`O_EXCL`, never through a planted symlink), and
//! temporary files get unpredictable names.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// Mode of a private file.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a private directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates a new file (it must not exist), mode 0600.
pub fn create_new(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have taken bits from the mode; none may be added.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Writes `bytes` to `path` (0600) through an unpredictably named temporary
/// file in the same directory, renamed over `path`.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    let dir = parent(path);
    let mut tmp = temp_file_in(dir, ".sqlmorph-", ".tmp")?;
    tmp.write_all(bytes.as_ref())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A new temporary file in `dir`, mode 0600, created exclusively under an
/// unpredictable name (`<prefix><random><suffix>`); removed when dropped.
pub fn temp_file_in(dir: &Path, prefix: &str, suffix: &str) -> Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .permissions(Permissions::from_mode(FILE_MODE))
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// Creates a new directory (it must not exist), mode 0700.
pub fn create_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .mode(DIR_MODE)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, Permissions::from_mode(DIR_MODE))
        .with_context(|| format!("creating {}", path.display()))
}

/// Creates `path` and its missing parents, each new one mode 0700;
/// directories that exist keep their mode.
pub fn create_dir_all(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(up) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(up)?;
    }
    match create_dir(path) {
        Err(_) if path.is_dir() => Ok(()),
        other => other,
    }
}

/// 16 random hex digits (from the system's random source), for names on
/// other hosts that must not be guessed.
pub fn random_hex() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(hex::encode(bytes))
}

/// The directory of `path` (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_are_private_and_unpredictable() {
        let dir = tempfile::tempdir().unwrap();
        let a = temp_file_in(dir.path(), "probe-", ".sqlite3").unwrap();
        let b = temp_file_in(dir.path(), "probe-", ".sqlite3").unwrap();
        assert_ne!(a.path(), b.path());
        let mode = a.as_file().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, FILE_MODE);
    }

    #[test]
    fn a_planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = dir.path().join("plan.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_new(&link).is_err());
        write(&link, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "new");
    }
}
