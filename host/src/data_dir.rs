//! The data directory holds the database, the keyring, the RSA key and
//! compiled plugins: it is the server's alone. It is created 0700 and every
//! file in it 0600 (the process umask is tightened before anything is
//! written), and the server refuses to start, as OpenSSH's StrictModes do,
//! when the directory or a key file could be changed or read by someone
//! else.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create the data directory {0}: {1}")]
    Create(PathBuf, std::io::Error),
    #[error("cannot inspect {0}: {1}")]
    Inspect(PathBuf, std::io::Error),
    #[error(
        "{path} is owned by uid {owner}, not by this server's uid {me}: \
         `chown {me} {path}` or run the server as its owner"
    )]
    Owner { path: String, owner: u32, me: u32 },
    #[error("{path} is writable by group or others (mode {mode:o}): `chmod 700 {path}`")]
    DirectoryMode { path: String, mode: u32 },
    #[error("{path} is open to group or others (mode {mode:o}): `chmod 600 {path}`")]
    FileMode { path: String, mode: u32 },
    #[error(
        "{path}, a directory above a key file, is writable by group or others \
         (mode {mode:o}) and not sticky, so anyone who may write it may replace the key \
         file: `chmod go-w {path}`"
    )]
    ParentMode { path: String, mode: u32 },
}

/// Files whose disclosure or replacement gives away secrets or control:
/// the keyring, the RSA key, the keys that authenticate the plugin cache
/// and the audit log, and the shared store's key-encryption key.
const KEY_FILES: [&str; 5] = [
    "keys.json",
    "rsa_key.der",
    "cache.key",
    "audit.key",
    "kek.key",
];

/// The user the server runs as.
pub(crate) fn euid() -> u32 {
    // SAFETY: a plain syscall with no arguments.
    unsafe { libc::geteuid() }
}

/// Creates `dir` if needed and checks it and its key files. Call before
/// anything else touches the directory.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    // SAFETY: sets this process's file creation mask; nothing else reads it.
    unsafe { libc::umask(0o077) };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| DataDirError::Create(dir.to_path_buf(), e))?;
    let me = euid();
    let inspect = |path: &Path| {
        std::fs::symlink_metadata(path).map_err(|e| DataDirError::Inspect(path.to_path_buf(), e))
    };
    let owned = |path: &Path, meta: &std::fs::Metadata| {
        if meta.uid() != me {
            return Err(DataDirError::Owner {
                path: path.display().to_string(),
                owner: meta.uid(),
                me,
            });
        }
        Ok(())
    };
    let meta = std::fs::metadata(dir).map_err(|e| DataDirError::Inspect(dir.to_path_buf(), e))?;
    owned(dir, &meta)?;
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(DataDirError::DirectoryMode {
            path: dir.display().to_string(),
            mode: meta.permissions().mode() & 0o7777,
        });
    }
    for name in KEY_FILES {
        let path = dir.join(name);
        let meta = match inspect(&path) {
            Ok(meta) => meta,
            Err(DataDirError::Inspect(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {
                continue;
            }
            Err(e) => return Err(e),
        };
        owned(&path, &meta)?;
        if meta.file_type().is_symlink() || meta.permissions().mode() & 0o077 != 0 {
            return Err(DataDirError::FileMode {
                path: path.display().to_string(),
                mode: meta.permissions().mode() & 0o7777,
            });
        }
    }
    // Older versions created the database with the default umask: it holds
    // names, usernames and addresses, so it is tightened rather than refused.
    let database = dir.join("credhost.redb");
    if let Ok(meta) = std::fs::metadata(&database)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %database.display(), "tightening the database file to mode 0600");
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| DataDirError::Inspect(database.clone(), e))?;
    }
    Ok(())
}

/// Removes what a write of a key file (or of the replay journal) left when
/// the process died before its rename (see `keys::write_private`): a whole
/// copy of the keyring, say, still holding keys retired since. Only the
/// server calls it, once it holds the database: a command run beside a
/// server must not take away a copy that server is about to rename.
pub fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let left = crate::keys::unfinished_copy_of(name)
            .is_some_and(|file| KEY_FILES.contains(&file) || file == "replay.journal");
        if left {
            tracing::warn!(file = name, "removing a key file's unfinished copy");
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The text of a key file kept outside the data directory (a `kek_file`,
/// TLS's key): owned by the server's user or root, and writable by no one
/// else. One of the server's user must not be readable by others either (a
/// copy made with the usual umask); one of root's may be, with a warning:
/// that is how orchestrators mount secrets (Docker's 0444, Kubernetes'
/// 0644), and inside a container there is no one else. A symbolic link is
/// followed (such mounts are links); what it leads to is what is checked.
/// The file checked is the file read (opened once, and checked by what it
/// is, not by its name again), so none can be put in its place between the
/// two. `None` when there is none, and the directory it would be made in,
/// and every one above, is safe to make it in (see
/// [`check_directories_above`]): else one could be put there by another
/// before it is made, or after.
pub fn read_key_file(path: &Path) -> Result<Option<Zeroizing<String>>, DataDirError> {
    use std::io::Read;
    let inspect = |e| DataDirError::Inspect(path.to_path_buf(), e);
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            check_directory(parent)?;
            check_directories_above(parent)?;
            return Ok(None);
        }
        Err(e) => return Err(inspect(e)),
    };
    check_directories_above(path)?;
    check_key_meta(path, &file.metadata().map_err(inspect)?)?;
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(inspect)?;
    Ok(Some(text))
}

fn check_key_meta(path: &Path, meta: &std::fs::Metadata) -> Result<(), DataDirError> {
    mine_or_root(path, meta)?;
    let mode = meta.permissions().mode() & 0o7777;
    let readable = mode & 0o044 != 0;
    if mode & 0o022 != 0 || (readable && meta.uid() != 0) {
        return Err(DataDirError::FileMode {
            path: path.display().to_string(),
            mode,
        });
    }
    if readable {
        tracing::warn!(
            path = %path.display(), mode = format!("{mode:o}"),
            "the key file is root's and readable by others: fine for a secret an orchestrator \
             mounts into a container, not on a machine others use"
        );
    }
    Ok(())
}

/// Refuses what is neither the server's user's nor root's.
pub(crate) fn mine_or_root(path: &Path, meta: &std::fs::Metadata) -> Result<(), DataDirError> {
    let me = euid();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(DataDirError::Owner {
            path: path.display().to_string(),
            owner: meta.uid(),
            me,
        });
    }
    Ok(())
}

/// Every directory above a key file, as named and as its links resolve:
/// owned by root or the server's user, and writable by no one else unless
/// sticky (there, others cannot replace a file that is not theirs).
/// Otherwise whoever may write one could put a key of their own in the
/// file's place, or a link to one.
pub fn check_directories_above(path: &Path) -> Result<(), DataDirError> {
    let check = check_directory;
    let failed = |e| DataDirError::Inspect(path.to_path_buf(), e);
    // The name as given, and each link it passes through on the way: a
    // link in a directory others may write could be swapped for another.
    let mut hop = std::path::absolute(path).map_err(failed)?;
    for _ in 0..40 {
        hop.ancestors().skip(1).try_for_each(check)?;
        let is_link = std::fs::symlink_metadata(&hop)
            .map_err(failed)?
            .file_type()
            .is_symlink();
        if !is_link {
            break;
        }
        let target = std::fs::read_link(&hop).map_err(failed)?;
        let parent = hop.parent().map(Path::to_path_buf).unwrap_or_default();
        hop = parent.join(target);
    }
    // And where it all leads, every directory link resolved.
    let resolved = std::fs::canonicalize(path).map_err(failed)?;
    resolved.ancestors().skip(1).try_for_each(check)
}

/// A directory a key file, or the audit log, is in: root's or the
/// server's user's, and writable by no one else unless sticky.
pub fn check_directory(dir: &Path) -> Result<(), DataDirError> {
    let meta = std::fs::metadata(dir).map_err(|e| DataDirError::Inspect(dir.to_path_buf(), e))?;
    mine_or_root(dir, &meta)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(DataDirError::ParentMode {
            path: dir.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// A random secret of 32 bytes kept in `path` (0600), created on first use.
pub fn secret_file(path: &Path) -> std::io::Result<crate::secret::Secret> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() == 32 => Ok(crate::secret::Secret::new(bytes)),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} does not hold 32 bytes", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = rand::random::<[u8; 32]>().to_vec();
            crate::keys::write_private(path, &bytes)?;
            Ok(crate::secret::Secret::new(bytes))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_copies_of_key_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let left = dir.path().join(".keys.json.0123456789abcdef.tmp");
        let other = dir.path().join(".notes.txt.0123456789abcdef.tmp");
        let odd = dir.path().join(".keys.json.tmp");
        let journal = dir.path().join(".replay.journal.00000000000000ff.tmp");
        for file in [&left, &other, &odd, &journal] {
            std::fs::write(file, "x").unwrap();
        }
        prepare(dir.path()).unwrap();
        assert!(
            left.exists(),
            "prepare leaves them: a server may be running"
        );
        remove_leftovers(dir.path());
        assert!(!left.exists() && !journal.exists());
        assert!(other.exists() && odd.exists());
    }

    #[test]
    fn a_key_file_elsewhere_is_private_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("kek.key");
        std::fs::write(&key, "k").unwrap();
        let set = |mode| std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode));
        set(0o600).unwrap();
        assert!(read_key_file(&key).is_ok());
        set(0o400).unwrap();
        assert!(read_key_file(&key).is_ok());
        // A link is followed, and what it leads to is judged.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(read_key_file(&link).is_ok());
        // Writable by others: refused whoever owns it.
        for open in [0o620, 0o602, 0o666] {
            set(open).unwrap();
            assert!(
                matches!(read_key_file(&link), Err(DataDirError::FileMode { .. })),
                "{open:o}"
            );
        }
        // Readable by others: refused unless it is root's (a mounted secret).
        for open in [0o644, 0o640, 0o604] {
            set(open).unwrap();
            assert_eq!(read_key_file(&link).is_err(), euid() != 0, "{open:o}");
        }
        assert!(matches!(
            read_key_file(&dir.path().join("missing")),
            Ok(None)
        ));
    }

    /// A directory of its own for a key file (not made yet), and its path.
    fn key_in_a_directory() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        let key = shared.join("kek.key");
        (dir, shared, key)
    }

    #[test]
    fn a_key_file_not_there_yet_is_made_only_where_others_cannot_put_one() {
        let (_dir, shared, key) = key_in_a_directory();
        let mode = |m| std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(m));
        mode(0o700).unwrap();
        assert!(read_key_file(&key).unwrap().is_none());
        // Absent in a directory others may write: they could put theirs
        // there before it is read, or made.
        mode(0o777).unwrap();
        assert!(matches!(
            read_key_file(&key),
            Err(DataDirError::ParentMode { .. })
        ));
        assert!(crate::keys::Kek::load(&key, true).is_err());
        assert!(
            !key.exists(),
            "a key-encryption key was made where others may write"
        );
        mode(0o700).unwrap();
        // There: read from the file checked.
        std::fs::write(&key, "k-text").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file(&key).unwrap().unwrap().as_str(), "k-text");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            read_key_file(&key),
            Err(DataDirError::FileMode { .. })
        ));
    }

    #[test]
    fn a_key_file_in_a_directory_others_may_write_is_refused() {
        let (dir, shared, key) = key_in_a_directory();
        std::fs::write(&key, "k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mode = |m| std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(m));
        mode(0o700).unwrap();
        assert!(read_key_file(&key).is_ok());
        mode(0o777).unwrap();
        assert!(matches!(
            read_key_file(&key),
            Err(DataDirError::ParentMode { .. })
        ));
        // Through a link from a private directory: what it leads to counts.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(matches!(
            read_key_file(&link),
            Err(DataDirError::ParentMode { .. })
        ));
        // Sticky, as /tmp is: others cannot replace what is not theirs.
        mode(0o1777).unwrap();
        assert!(read_key_file(&key).is_ok());
        mode(0o700).unwrap();
        // A link to the key kept in a directory others may write.
        let link_in_open = |name: &str| {
            let open = dir.path().join(name);
            std::fs::create_dir(&open).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
            let link = open.join("link");
            std::os::unix::fs::symlink(&key, &link).unwrap();
            link
        };
        // Such a link counts, named directly or as a step of a chain.
        let exposed = link_in_open("open");
        let first = dir.path().join("a");
        std::os::unix::fs::symlink(link_in_open("open-middle"), &first).unwrap();
        for (name, open) in [(&exposed, "open"), (&first, "open-middle")] {
            assert!(
                matches!(
                    read_key_file(name),
                    Err(DataDirError::ParentMode { ref path, .. }) if path.ends_with(open)
                ),
                "{open}"
            );
        }
    }
}
