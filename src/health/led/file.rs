//! The `file` backend: one line per change, `<unix_ms> <state> <pattern>`.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::health::pattern::Pattern;
use crate::health::state::State;

/// Appends a line to a file every time the state changes.
#[derive(Debug)]
pub struct FileRecorder {
    file: std::fs::File,
}

impl FileRecorder {
    /// Open (create) the file for appending.
    pub fn open(path: &Path) -> std::io::Result<FileRecorder> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(FileRecorder { file })
    }

    /// Append `<unix_ms> <state> <pattern>`.
    pub fn record(&mut self, state: State, pattern: &Pattern) -> std::io::Result<()> {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        // One write per line, so a reader never sees half a line.
        self.file
            .write_all(format!("{unix_ms} {state} {pattern}\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_line_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("led.log");
        let mut recorder = FileRecorder::open(&path).unwrap();
        recorder
            .record(State::Booting, &Pattern::parse("flash").unwrap())
            .unwrap();
        recorder
            .record(State::Leader, &Pattern::parse("solid").unwrap())
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(&lines[1][1..], ["leader", "solid"]);
        assert!(lines[1][0].parse::<u64>().unwrap() > 1_600_000_000_000);
    }
}
