//! Compressed evidence: physical memory stored in blocks that must be decoded before they are read
//! (EWF chunks). A block store lays the decoded blocks end to end in a "decoded space" (block `b`
//! at `b * block_size`), which the physical space's runs point into as they point into a file for
//! the other containers. Blocks are decoded on demand into a small per-thread cache, so that the
//! scan (which decodes each block once, on the worker that searches it) and the decoder's pointer
//! chains (which revisit the few blocks holding kernel structures) share one path.
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Why a block cannot be read: the decoder's own typed error, shown in the warning that names
/// the block.
pub type BlockError = Box<dyn std::error::Error + Send + Sync>;

/// Decodes one block of a container's storage.
pub trait BlockDecoder: Send + Sync {
    fn block_count(&self) -> u64;
    /// Decoded bytes of every block but possibly the last.
    fn block_size(&self) -> u64;
    /// Decodes block `index` into `out` (`block_size` bytes); returns how many bytes it holds.
    /// `Err` says why the block cannot be read, naming it.
    fn decode(&self, index: u64, out: &mut [u8]) -> Result<usize, BlockError>;
}

/// Blocks decoded per thread and kept: the scan needs one at a time, decoding the objects it finds
/// revisits the blocks holding page tables, processes and address records.
const CACHED_BLOCKS: usize = 64;
/// Failed blocks named in warnings; the rest are counted.
const NAMED_FAILURES: usize = 8;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

pub struct BlockStore {
    decoder: Box<dyn BlockDecoder>,
    /// Tells this store's blocks apart from another's in the per-thread cache.
    id: u64,
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    blocks: std::collections::BTreeSet<u64>,
    named: Vec<String>,
}

struct CachedBlock {
    store: u64,
    index: u64,
    /// `None`: the block failed to decode (remembered so it is not decoded again). Shared so
    /// that a caller can read it while it reads other blocks (the scan decodes the objects it
    /// finds in a block while it searches the block).
    bytes: Option<Rc<Box<[u8]>>>,
    len: usize,
}

thread_local! {
    static CACHE: RefCell<Vec<CachedBlock>> = const { RefCell::new(Vec::new()) };
}

impl BlockStore {
    pub fn new(decoder: Box<dyn BlockDecoder>) -> BlockStore {
        BlockStore {
            decoder,
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            failures: Mutex::new(Failures::default()),
        }
    }

    pub fn block_size(&self) -> u64 {
        self.decoder.block_size()
    }

    pub fn block_count(&self) -> u64 {
        self.decoder.block_count()
    }

    /// Bytes of the decoded space (every block at full size).
    pub fn decoded_size(&self) -> u64 {
        self.block_count().saturating_mul(self.block_size())
    }

    /// Calls `f` with the decoded bytes of block `index`, from this thread's cache or decoded into
    /// it; `None` when the block cannot be decoded (recorded for [`warnings`](Self::warnings)).
    pub fn with_block<R>(&self, index: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let (bytes, len) = self.block(index)?;
        Some(f(&bytes[..len]))
    }

    fn block(&self, index: u64) -> Option<(Rc<Box<[u8]>>, usize)> {
        if index >= self.block_count() {
            return None;
        }
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some(at) = cache
                .iter()
                .position(|c| c.store == self.id && c.index == index)
            {
                // Move to the front: the least recently used block is the one evicted.
                let hit = cache.remove(at);
                cache.insert(0, hit);
            } else {
                let mut entry = if cache.len() >= CACHED_BLOCKS {
                    cache.pop().expect("cache is full")
                } else {
                    CachedBlock {
                        store: 0,
                        index: 0,
                        bytes: None,
                        len: 0,
                    }
                };
                let size = usize::try_from(self.block_size()).ok()?;
                // The evicted block's buffer is reused unless a caller still holds it.
                let fresh = || Rc::new(vec![0u8; size].into_boxed_slice());
                let mut buf = match entry.bytes.take() {
                    Some(mut b) if b.len() == size => match Rc::get_mut(&mut b) {
                        Some(_) => b,
                        None => fresh(),
                    },
                    _ => fresh(),
                };
                let out = Rc::get_mut(&mut buf).expect("a fresh or unshared buffer");
                match self.decoder.decode(index, out) {
                    Ok(len) => {
                        entry.len = len.min(size);
                        entry.bytes = Some(buf);
                    }
                    Err(why) => {
                        self.record_failure(index, why.to_string());
                        entry.len = 0;
                        entry.bytes = None;
                    }
                }
                entry.store = self.id;
                entry.index = index;
                cache.insert(0, entry);
            }
            let front = &cache[0];
            front.bytes.clone().map(|b| (b, front.len))
        })
    }

    /// Copies decoded bytes at `pos` of the decoded space into `out`, across blocks. False when a
    /// block is missing, fails to decode, or is shorter than asked.
    pub fn read(&self, pos: u64, out: &mut [u8]) -> bool {
        let size = self.block_size();
        if size == 0 {
            return false;
        }
        let mut done = 0usize;
        while done < out.len() {
            let at = pos + done as u64;
            let (index, offset) = (at / size, (at % size) as usize);
            let want = (out.len() - done).min((size as usize) - offset);
            let copied = self.with_block(index, |bytes| {
                let part = bytes.get(offset..offset + want)?;
                out[done..done + want].copy_from_slice(part);
                Some(())
            });
            if copied.flatten().is_none() {
                return false;
            }
            done += want;
        }
        true
    }

    fn record_failure(&self, index: u64, why: String) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.blocks.insert(index) && failures.named.len() < NAMED_FAILURES {
            failures.named.push(why);
        }
    }

    /// The blocks that could not be decoded so far, as warnings (a few named, the rest counted).
    pub fn warnings(&self) -> Vec<String> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = failures.named.clone();
        let unnamed = failures.blocks.len().saturating_sub(failures.named.len());
        if unnamed > 0 {
            out.push(format!(
                "{unnamed} more block(s) could not be decoded and were skipped"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    /// Blocks of 16 bytes, each filled with its index; block 3 fails; the last holds 8 bytes.
    struct Counting {
        decoded: Arc<AtomicU64>,
    }

    impl BlockDecoder for Counting {
        fn block_count(&self) -> u64 {
            6
        }
        fn block_size(&self) -> u64 {
            16
        }
        fn decode(&self, index: u64, out: &mut [u8]) -> Result<usize, BlockError> {
            self.decoded.fetch_add(1, Ordering::Relaxed);
            if index == 3 {
                return Err(format!("block {index}: bad").into());
            }
            out.fill(index as u8);
            Ok(if index == 5 { 8 } else { 16 })
        }
    }

    fn store() -> (BlockStore, Arc<AtomicU64>) {
        let decoded = Arc::new(AtomicU64::new(0));
        let store = BlockStore::new(Box::new(Counting {
            decoded: decoded.clone(),
        }));
        (store, decoded)
    }

    #[test]
    fn reads_cross_blocks_and_failures_are_remembered() {
        let (store, decoded) = store();
        let mut buf = [0u8; 20];
        assert!(store.read(10, &mut buf));
        assert_eq!(&buf[..6], &[0; 6]);
        assert_eq!(&buf[6..], &[1; 14]);
        let mut one = [0u8; 4];
        assert!(!store.read(3 * 16, &mut one), "a failed block is absent");
        assert!(!store.read(3 * 16 + 4, &mut one));
        assert_eq!(
            decoded.load(Ordering::Relaxed),
            3,
            "the failure is not retried"
        );
        assert!(
            store.read(5 * 16 + 4, &mut one),
            "within the short last block"
        );
        assert!(!store.read(5 * 16 + 6, &mut one), "past its end");
        assert_eq!(store.warnings(), vec!["block 3: bad".to_string()]);
    }

    #[test]
    fn the_cache_keeps_recent_blocks_and_tells_stores_apart() {
        let (a, decoded_a) = store();
        let (b, decoded_b) = store();
        let mut byte = [0u8; 1];
        for _ in 0..10 {
            assert!(a.read(16, &mut byte) && byte[0] == 1);
            assert!(b.read(32, &mut byte) && byte[0] == 2);
        }
        assert_eq!(decoded_a.load(Ordering::Relaxed), 1);
        assert_eq!(decoded_b.load(Ordering::Relaxed), 1);
        // More blocks than the cache holds: the oldest is decoded again.
        let many = BlockStore::new(Box::new(Counting {
            decoded: decoded_a.clone(),
        }));
        for round in 0..(CACHED_BLOCKS as u64 + 1) {
            let fresh = BlockStore::new(Box::new(Counting {
                decoded: Arc::new(AtomicU64::new(0)),
            }));
            assert!(fresh.read(round % 3 * 16, &mut byte));
        }
        let before = decoded_a.load(Ordering::Relaxed);
        assert!(many.read(0, &mut byte));
        assert!(a.read(16, &mut byte));
        assert_eq!(
            decoded_a.load(Ordering::Relaxed),
            before + 2,
            "evicted blocks decode again"
        );
    }
}
