//! Producer ids for InitProducerId. Ids are handed out from blocks of [`BLOCK_SIZE`]; the end
//! of the current block is written durably (`latest-producer-id-block` in the first log
//! directory) before any id of the block is given out, so an id is never reused after a
//! restart, at the cost of skipping the unused rest of a block. Kafka on ZooKeeper kept the
//! same block in the znode `/latest_producer_id_block`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::store;

/// Ids per persisted block.
pub const BLOCK_SIZE: i64 = 1000;

const FILE: &str = "latest-producer-id-block";

/// Hands out producer ids that are never reused.
#[derive(Debug)]
pub struct ProducerIdAllocator {
    path: PathBuf,
    /// (next id to give, end of the persisted block)
    state: Mutex<(i64, i64)>,
}

impl ProducerIdAllocator {
    /// Reads the last persisted block end from `dir` (0 if none).
    pub fn open(dir: &Path) -> anyhow::Result<ProducerIdAllocator> {
        let path = dir.join(FILE);
        let end = match store::read_properties(&path) {
            Ok(props) => props
                .get("block_end")
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|v| *v >= 0)
                .ok_or_else(|| anyhow::anyhow!("{} has no valid block_end", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        Ok(ProducerIdAllocator {
            path,
            state: Mutex::new((end, end)),
        })
    }

    /// The next producer id; persists a new block first when the current one is used up
    /// (a blocking fsync once every [`BLOCK_SIZE`] ids).
    pub fn allocate(&self) -> std::io::Result<i64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (next, end) = *state;
        if next >= end {
            let new_end = end
                .checked_add(BLOCK_SIZE)
                .ok_or_else(|| std::io::Error::other("producer ids exhausted"))?;
            store::write_atomically(
                &self.path,
                format!("version=1\nblock_end={new_end}\n").as_bytes(),
            )?;
            tracing::info!(
                block_start = end,
                block_end = new_end,
                "persisted a new producer id block"
            );
            *state = (next, new_end);
        }
        let id = state.0;
        state.0 += 1;
        assert!(
            state.0 <= state.1,
            "a producer id is only given out from a persisted block"
        );
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProducerIdAllocator::open(dir.path()).unwrap();
        let a: Vec<i64> = (0..3).map(|_| first.allocate().unwrap()).collect();
        assert_eq!(a, vec![0, 1, 2]);
        drop(first);
        let second = ProducerIdAllocator::open(dir.path()).unwrap();
        let b = second.allocate().unwrap();
        assert_eq!(b, BLOCK_SIZE, "a restart starts a fresh block");
        for _ in 0..BLOCK_SIZE {
            second.allocate().unwrap();
        }
        let third = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(third.allocate().unwrap(), 3 * BLOCK_SIZE);
    }
}
