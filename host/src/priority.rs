//! Background work that must yield to requests runs on threads of its own
//! at a lower scheduling priority.

/// Lowers the calling thread's priority by `nice` (Linux schedules threads
/// one by one; elsewhere this does nothing).
pub fn lower_current_thread(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}
