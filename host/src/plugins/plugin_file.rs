//! The operator's plugin directory decides which code sees every secret: a
//! policy there seals and opens them all, a verifier logs in with them. It
//! is held to what the data directory is held to (OpenSSH's StrictModes):
//! only this server's user or root may own it and what is in it, and no
//! one else may write to either. A plugin is read from a regular file of its
//! own, never through a link (which could point at the data directory's
//! keys, or at a device or a FIFO that never ends), and at most 64 MiB.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest plugin read: the biggest embedded one is well under 1 MiB.
pub const MAX_PLUGIN_BYTES: u64 = 64 << 20;

/// Why `meta` may not be trusted to hold plugins: another owner than this
/// server's user or root, or writable by group or others.
fn untrusted(meta: &std::fs::Metadata) -> Option<String> {
    let me = crate::data_dir::euid();
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!(
            "owned by uid {}, not by this server's uid {me} or root",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    None
}

/// Refuses a plugin directory that someone else could put a plugin in.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    match untrusted(&meta) {
        Some(why) => Err(format!(
            "the plugin directory is {why}: whoever can write it chooses the code that \
             sees every secret"
        )),
        None => Ok(()),
    }
}

/// A plugin file's bytes, read from the file itself, once.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    // No link is followed, and opening a FIFO does not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "a symbolic link, not a plugin file of its own".to_string(),
            _ => e.to_string(),
        })?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if let Some(why) = untrusted(&meta) {
        return Err(format!("the file is {why}"));
    }
    if meta.len() > MAX_PLUGIN_BYTES {
        return Err(format!(
            "{} bytes, more than the {MAX_PLUGIN_BYTES} a plugin may have",
            meta.len()
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while it is read.
    file.take(MAX_PLUGIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PLUGIN_BYTES {
        return Err(format!(
            "more than the {MAX_PLUGIN_BYTES} bytes a plugin may have"
        ));
    }
    Ok(bytes)
}
