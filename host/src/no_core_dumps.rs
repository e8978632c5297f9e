//! The process's memory kept out of core dumps and away from other
//! processes of its user. It holds the KEK, the data keys and, while they
//! are used, passwords and private keys: a crash must not write them to a
//! file (`core`, or a crash collector that keeps dumps), and a process
//! running as the same user must not read them through `ptrace` or
//! `/proc/PID/mem`.

/// No core file at all (soft and hard limit 0), and the process not
/// dumpable: the kernel then writes no dump whatever `core_pattern` says,
/// and only root may attach to it.
pub fn forbid() -> std::io::Result<()> {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a plain syscall reading a local struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a plain syscall with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_is_left_without_dumps() {
        super::forbid().unwrap();
        // SAFETY: plain syscalls with integer arguments or a local struct.
        let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        assert_eq!(dumpable, 0);
        let mut limit = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut limit) }, 0);
        assert_eq!((limit.rlim_cur, limit.rlim_max), (0, 0));
    }
}
