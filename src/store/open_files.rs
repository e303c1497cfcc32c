//! How many bundles may hold their files open at once.
//!
//! A bundle being written keeps two files open (`trace.jsonl` and its payload pack).
//! A collector with more sessions in memory than the process may open files for
//! would refuse to store ("Too many open files") until sessions went quiet and were
//! evicted. So once more bundles than [`bundle_budget`] hold files open, the
//! collector closes the files of the quietest; the next append opens them again.

/// A quarter of the process's open-file limit: two files per bundle take half of the
/// descriptors, and the rest are left for connections, spare bundles, the write-ahead
/// log and readers. At least 16.
pub fn bundle_budget() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    usize::try_from(soft / 4).unwrap_or(usize::MAX).max(16)
}
