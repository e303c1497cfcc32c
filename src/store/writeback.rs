//! Starting the writeback of appended bytes at once, so that the page cache never
//! holds a checkpoint's worth of dirty bundle data.
//!
//! Left alone, the kernel keeps appended pages dirty for up to 30 s, so each
//! checkpoint's `syncfs` (see [`super::file_system_sync`]) wrote seconds of bundle
//! appends in one burst, and every write-ahead-log fsync meanwhile (which acknowledged
//! Exports wait for) queued behind that burst: those Exports were the slowest
//! hundredth. Asking the kernel to start writing each full page as soon as it is
//! appended spreads that work evenly, so the checkpoint finds little left to write.
//! Only the start is asked for, never a wait; a failed writeback is reported by the
//! checkpoint's `syncfs`, which makes the bytes durable either way.

use std::fs::File;

/// Pages of this size are written whole: the last, partial page of an append waits
/// for the next append (or the checkpoint), so it is not written twice.
const PAGE: u64 = 4096;

/// Starts writing back the full pages of the bytes `[from, to)` of `file` (just
/// appended), without waiting.
pub fn start(file: &File, from: u64, to: u64) {
    let Some((first, len)) = full_pages(from, to) else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: a plain syscall on a descriptor that `file` keeps open.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                first as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, first, len);
}

/// The pages that bytes `[from, to)` complete: from the page holding `from` (its
/// start was left for this append) up to the last page `to` fills; as start and length.
fn full_pages(from: u64, to: u64) -> Option<(u64, u64)> {
    let first = from - from % PAGE;
    let end = to - to % PAGE;
    (end > first).then(|| (first, end - first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_completed_pages_are_written() {
        // Within one page: nothing is complete yet.
        assert_eq!(full_pages(0, 100), None);
        assert_eq!(full_pages(100, 4095), None);
        // Completing the first page writes it whole, from its start.
        assert_eq!(full_pages(100, 4096), Some((0, 4096)));
        // A partial page left earlier is written with the pages completed now; the new
        // partial tail is not.
        assert_eq!(full_pages(4000, 9000), Some((0, 8192)));
        assert_eq!(full_pages(8192, 12288), Some((8192, 4096)));
        assert_eq!(full_pages(9000, 9001), None);
    }

    #[test]
    fn starting_writeback_leaves_the_bytes_as_written() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        let mut file = File::create(&path).unwrap();
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        start(&file, 0, bytes.len() as u64);
        start(&file, 9_000, 20_000); // past the end: ignored by the kernel
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
}
