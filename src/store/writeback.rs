//! Starting the writeback of appended bundle bytes early, so that the page cache never
//! holds a checkpoint's worth of dirty bundle data.
//!
//! Left alone, the kernel keeps appended pages dirty for up to 30 s, so a checkpoint's
//! `syncfs` (see [`super::file_system_sync`]) writes everything appended since the last
//! one in a burst, and the write-ahead log's fsyncs meanwhile (which acknowledged
//! Exports wait for) queue behind it. Once [`MIN_BATCH`] has been appended to a file,
//! the kernel is asked to start writing its full pages (`sync_file_range`), which
//! spreads that work out. Only the start is asked for, never a wait; a failed writeback
//! is reported by the checkpoint's `syncfs`, which makes the bytes durable either way.

use std::fs::File;

/// Pages of this size are written whole: the last, partial page of an append waits
/// for the next append (or the checkpoint), so it is not written twice.
const PAGE: u64 = 4096;

/// At least this much must be appended to a file since its last writeback was started
/// before another is: larger writes cost the kernel less per byte than page-sized ones.
const MIN_BATCH: u64 = 64 << 10;

/// How far the writeback of a file being appended to has been started.
#[derive(Debug, Default)]
pub struct Cursor {
    started: u64,
}

impl Cursor {
    /// For a file opened to append at `len`: what it held already is left to the
    /// checkpoint (it was written, or handed over, by whoever appended it).
    pub fn at(len: u64) -> Cursor {
        Cursor {
            started: len - len % PAGE,
        }
    }

    /// After an append that ends at `end`: starts the writeback of what was appended
    /// since the last one, once that is [`MIN_BATCH`] or more.
    pub fn appended(&mut self, file: &File, end: u64) {
        if end.saturating_sub(self.started) < MIN_BATCH {
            return;
        }
        start(file, self.started, end);
        self.started = end - end % PAGE;
    }
}

/// Starts writing back the full pages of the bytes `[from, to)` of `file` (just
/// appended), without waiting.
fn start(file: &File, from: u64, to: u64) {
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
    fn writeback_starts_once_a_batch_is_appended_and_from_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("payloads.jsonl")).unwrap();
        let mut cursor = Cursor::default();
        cursor.appended(&file, MIN_BATCH - 1);
        assert_eq!(cursor.started, 0);
        cursor.appended(&file, MIN_BATCH + 100);
        assert_eq!(cursor.started, MIN_BATCH);
        // Not yet a batch since where it stopped.
        cursor.appended(&file, 2 * MIN_BATCH - 1);
        assert_eq!(cursor.started, MIN_BATCH);
        // The partial page left is part of the next batch.
        cursor.appended(&file, 2 * MIN_BATCH + 5000);
        assert_eq!(cursor.started, 2 * MIN_BATCH + PAGE);
    }

    #[test]
    fn a_reopened_file_starts_from_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("trace.jsonl")).unwrap();
        let mut cursor = Cursor::at(10 * MIN_BATCH + 100);
        cursor.appended(&file, 10 * MIN_BATCH + 200);
        assert_eq!(cursor.started, 10 * MIN_BATCH);
        cursor.appended(&file, 11 * MIN_BATCH + 100);
        assert_eq!(cursor.started, 11 * MIN_BATCH);
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
