//! A simulated server's own disk, where backups to a directory on the server go: a real
//! directory on this machine stands for its root, so an archive is a file a test can find,
//! list and lose, not a value in memory. Archives hold the domains as they were backed up
//! (their settings, files, mail and database rows; a domain first, then its sub-servers and
//! aliases) as JSON, under the `.tar.gz` name the real server would give them.

use std::path::PathBuf;
use std::sync::Arc;

use super::SimDomain;

#[derive(Debug, Clone)]
pub struct SimDisk(Arc<tempfile::TempDir>);

impl Default for SimDisk {
    /// A disk with the directories a Debian server has for backups: `/backups` (Virtualmin's
    /// default) and `/var/backups`.
    fn default() -> Self {
        let root = tempfile::Builder::new()
            .prefix("drover-sim-disk-")
            .tempdir()
            .expect("a temporary directory for a simulated server's disk");
        let disk = Self(Arc::new(root));
        for dir in ["/backups", "/var/backups"] {
            disk.make_directories(dir);
        }
        disk
    }
}

impl SimDisk {
    /// Where a path on the server lies on this machine: always below the disk's root (`..`
    /// and `.` are dropped, as at the server's `/`).
    pub fn real_path(&self, path: &str) -> PathBuf {
        let inside: PathBuf = path
            .split('/')
            .filter(|part| !part.is_empty() && *part != "." && *part != "..")
            .collect();
        self.0.path().join(inside)
    }

    pub fn is_directory(&self, path: &str) -> bool {
        self.real_path(path).is_dir()
    }

    /// A plain `mkdir`: fails when the parent is missing.
    pub fn make_directory(&self, path: &str) -> std::io::Result<()> {
        std::fs::create_dir(self.real_path(path))
    }

    /// `mkdir -p`, as an administrator on the box would (for tests).
    pub fn make_directories(&self, path: &str) {
        std::fs::create_dir_all(self.real_path(path)).expect("a directory on the simulated disk");
    }

    pub fn write_archive(&self, path: &str, domains: &[SimDomain]) -> std::io::Result<()> {
        std::fs::write(self.real_path(path), encode(domains))
    }

    pub fn read_archive(&self, path: &str) -> Option<Vec<SimDomain>> {
        decode(&std::fs::read(self.real_path(path)).ok()?)
    }

    pub fn has_archive(&self, path: &str) -> bool {
        self.real_path(path).is_file()
    }

    /// Removes an archive; one already gone is no error.
    pub fn remove_archive(&self, path: &str) {
        let _ = std::fs::remove_file(self.real_path(path));
    }

    /// Every archive on the disk, by its path on the server.
    pub fn archives(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut todo = vec![self.0.path().to_owned()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    todo.push(path);
                } else if let Ok(on_server) = path.strip_prefix(self.0.path()) {
                    found.push(format!("/{}", on_server.display()));
                }
            }
        }
        found.sort();
        found
    }
}

/// An archive's bytes: the domains as backed up.
pub(crate) fn encode(domains: &[SimDomain]) -> Vec<u8> {
    serde_json::to_vec(domains).expect("a simulated domain serializes")
}

pub(crate) fn decode(bytes: &[u8]) -> Option<Vec<SimDomain>> {
    serde_json::from_slice(bytes).ok()
}
