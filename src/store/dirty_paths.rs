//! The files and directories that changes touched since the last checkpoint, which the
//! checkpoint makes durable.
//!
//! The storer marks a path for every write it logs, so the set is looked up a few times
//! per bundle per round. A `PathBuf`'s hash walks the path component by component (so
//! that `a//b` and `a/b` are equal); here a path is hashed and compared as its bytes,
//! which is what the store gives it: every path of a bundle file is built the same
//! way, by joining names to the data directory.

use crate::fast_hash::HashSet;
use std::ffi::OsString;
use std::path::Path;

#[derive(Debug, Default)]
pub struct DirtyPaths {
    paths: HashSet<OsString>,
}

impl DirtyPaths {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn contains(&self, path: &Path) -> bool {
        self.paths.contains(path.as_os_str())
    }

    pub fn insert(&mut self, path: &Path) {
        if !self.contains(path) {
            self.paths.insert(path.as_os_str().to_owned());
        }
    }

    /// Marks `path` and its directory (a file's new size, or a new file's name).
    pub fn insert_with_parent(&mut self, path: &Path) {
        // Most writes touch a file already touched: nothing is copied then.
        if self.contains(path) {
            return;
        }
        self.paths.insert(path.as_os_str().to_owned());
        if let Some(parent) = path.parent() {
            self.insert(parent);
        }
    }

    /// Forgets `dir` and everything under it (it was removed).
    pub fn remove_tree(&mut self, dir: &Path) {
        self.paths.retain(|p| !Path::new(p).starts_with(dir));
    }

    pub fn extend(&mut self, other: DirtyPaths) {
        if self.paths.is_empty() {
            self.paths = other.paths;
        } else {
            self.paths.extend(other.paths);
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Path> {
        self.paths.iter().map(Path::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_marked_with_its_directory_and_forgotten_with_its_tree() {
        let mut dirty = DirtyPaths::default();
        dirty.insert_with_parent(Path::new("/data/rollouts/a/trace.jsonl"));
        dirty.insert_with_parent(Path::new("/data/rollouts/a/payloads.jsonl"));
        dirty.insert(Path::new("/data/rollouts"));
        dirty.insert(Path::new("/data/rollouts"));
        assert_eq!(dirty.iter().count(), 4);
        assert!(dirty.contains(Path::new("/data/rollouts/a")));

        let mut more = DirtyPaths::default();
        more.insert(Path::new("/data/rollouts/ab"));
        dirty.extend(more);
        dirty.remove_tree(Path::new("/data/rollouts/a"));
        let mut left: Vec<&Path> = dirty.iter().collect();
        left.sort();
        // `a` and what is under it are gone; `ab` only shares its first letter.
        assert_eq!(
            left,
            [Path::new("/data/rollouts"), Path::new("/data/rollouts/ab")]
        );
    }
}
