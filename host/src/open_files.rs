//! The process's limit of open files, raised to what the system allows.
//! Every connection, plugin socket, SSH login and store file is a
//! descriptor; a soft limit of 1,024 (systemd's default) is below what the
//! default connection cap alone may hold, and past it the server could not
//! accept, dial or open anything, for everyone.

/// Raises the soft limit to the hard one; the soft limit before and after.
pub fn raise() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain syscall writing into a local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: a plain syscall reading a local struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}
