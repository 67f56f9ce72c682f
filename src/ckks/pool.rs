//! A recycling pool of RNS limbs: buffers of N residues (one limb of `ring`'s `Limbs`) for
//! the large temporaries of the evaluator (issue 14).
//!
//! One key switch at N = 2^16 allocates and frees ~100 MB of limbs (the ModUp digits of
//! hybrid key switching, the key inner-product accumulators over Q·P, the conversions of
//! ModDown and rescaling, the permuted limbs of rotations, the accumulators of linear
//! transforms). The system allocator hands each 512 KiB limb back to the kernel when it is
//! freed, and the next allocation faults every page in again (~23 % of a rotation's CPU
//! time, measured). The pool keeps freed limbs and hands them out again, already mapped.
//!
//! Contract: [`LimbPool::take`] returns a limb of N residues whose **contents are
//! unspecified** (the residues of an earlier use, or zeros): the caller overwrites every
//! entry before reading any. [`LimbPool::take_zeroed`] and [`LimbPool::take_copy`] return
//! defined contents. Only limbs of exactly N residues and capacity N are kept, at most
//! [`LimbPool::cap_bytes`] bytes of them (the rest is freed), so the retained memory is
//! bounded and counted exactly; the bootstrapping memory model adds the cap
//! (`bootstrap::KeyMemory::pool_bytes`).
//!
//! Why the cap bounds the peak: a limb is taken from the pool whenever the pool holds one, so
//! allocations of this size class add to the process's memory only while the pool is empty;
//! live plus retained pooled limbs therefore never exceed the largest live set seen before
//! (the peak without the pool). Only memory allocated elsewhere while the pool retains limbs
//! can sit on top of them, hence the peak grows by at most the cap.
//!
//! [`Pooled`] is the guard: a value (a limb, `Limbs`, a list of `Limbs`) whose limbs go back
//! to the pool when it is dropped. The pool is thread-safe (one mutex, held for a push or a
//! pop only: each limb is N residues of work).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// What the limb pool of a [`crate::ckks::CkksContext`] did so far (`pool` module docs):
/// counts, not timings (with several threads they may vary slightly with the order in which
/// the threads take and give back limbs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LimbPoolStats {
    /// Limbs handed out again from the pool.
    pub reused: u64,
    /// Limbs freshly allocated because the pool was empty.
    pub fresh: u64,
    /// Bytes of the limbs retained now.
    pub retained_bytes: u64,
    /// The most bytes the pool retains.
    pub cap_bytes: u64,
}

impl std::fmt::Display for LimbPoolStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        write!(
            f,
            "{} limbs reused, {} freshly allocated, {:.1} MiB retained (cap {:.1} MiB)",
            self.reused,
            self.fresh,
            mib(self.retained_bytes),
            mib(self.cap_bytes)
        )
    }
}

/// The recycling pool of one ring's limbs (module docs).
pub(crate) struct LimbPool {
    /// Residues per limb (the ring degree N).
    n: usize,
    /// At most this many limbs are retained.
    cap_limbs: usize,
    free: Mutex<Vec<Vec<u64>>>,
    reused: AtomicU64,
    fresh: AtomicU64,
}

impl std::fmt::Debug for LimbPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LimbPool {{ n: {}, retained: {} of {} limbs }}",
            self.n,
            self.lock().len(),
            self.cap_limbs
        )
    }
}

impl LimbPool {
    /// An empty pool of limbs of `n` residues retaining at most `cap_bytes` bytes.
    pub fn new(n: usize, cap_bytes: u64) -> Self {
        let limb_bytes = 8 * n.max(1) as u64;
        Self {
            n,
            cap_limbs: usize::try_from(cap_bytes / limb_bytes).unwrap_or(usize::MAX),
            free: Mutex::new(Vec::new()),
            reused: AtomicU64::new(0),
            fresh: AtomicU64::new(0),
        }
    }

    /// The free list. A panic while it was held cannot leave it inconsistent (each operation
    /// is one push or pop of a whole limb), so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, Vec<Vec<u64>>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A limb of N residues with **unspecified contents** (module docs): every entry must be
    /// written before it is read. A retained limb when there is one, else a fresh zeroed one.
    pub fn take(&self) -> Vec<u64> {
        self.pop().unwrap_or_else(|| vec![0; self.n])
    }

    /// A limb of N zeros.
    pub fn take_zeroed(&self) -> Vec<u64> {
        match self.pop() {
            Some(mut v) => {
                v.fill(0);
                v
            }
            None => vec![0; self.n],
        }
    }

    /// A retained limb, counted as reused; None (counted as a fresh allocation) when empty.
    fn pop(&self) -> Option<Vec<u64>> {
        let v = self.lock().pop();
        let counter = if v.is_some() {
            &self.reused
        } else {
            &self.fresh
        };
        counter.fetch_add(1, Ordering::Relaxed);
        v
    }

    /// A copy of `src` (through the pool when `src` has N residues).
    pub fn take_copy(&self, src: &[u64]) -> Vec<u64> {
        if src.len() != self.n {
            return src.to_vec();
        }
        let mut v = self.take();
        v.copy_from_slice(src);
        v
    }

    /// Copies of every limb of `src`.
    pub fn copy_limbs(&self, src: &[Vec<u64>]) -> Vec<Vec<u64>> {
        src.iter().map(|l| self.take_copy(l)).collect()
    }

    /// Give limbs back: each of exactly N residues and capacity N is retained while the pool
    /// holds fewer than its cap, the others are freed (after the lock is released).
    pub fn put_all(&self, limbs: impl IntoIterator<Item = Vec<u64>>) {
        let mut freed = Vec::new();
        {
            let mut free = self.lock();
            for v in limbs {
                if v.len() == self.n && v.capacity() == self.n && free.len() < self.cap_limbs {
                    free.push(v);
                } else {
                    freed.push(v);
                }
            }
        }
        drop(freed);
    }

    /// Give one limb back (as [`LimbPool::put_all`]).
    pub fn put(&self, v: Vec<u64>) {
        self.put_all(std::iter::once(v));
    }

    /// `value` under a guard that gives its limbs back when dropped.
    pub fn guard<T: Recycle>(&self, value: T) -> Pooled<'_, T> {
        Pooled { pool: self, value }
    }

    /// Bytes of the limbs retained now.
    pub fn retained_bytes(&self) -> u64 {
        self.lock().len() as u64 * 8 * self.n as u64
    }

    /// The most bytes the pool retains.
    pub fn cap_bytes(&self) -> u64 {
        self.cap_limbs as u64 * 8 * self.n as u64
    }

    /// The counts so far.
    pub fn stats(&self) -> LimbPoolStats {
        LimbPoolStats {
            reused: self.reused.load(Ordering::Relaxed),
            fresh: self.fresh.load(Ordering::Relaxed),
            retained_bytes: self.retained_bytes(),
            cap_bytes: self.cap_bytes(),
        }
    }
}

/// Values made of limbs that can be given back to a [`LimbPool`].
pub(crate) trait Recycle: Default {
    /// Give every limb of `self` to `pool`.
    fn recycle(self, pool: &LimbPool);
}

impl Recycle for Vec<u64> {
    fn recycle(self, pool: &LimbPool) {
        pool.put(self);
    }
}

impl Recycle for Vec<Vec<u64>> {
    fn recycle(self, pool: &LimbPool) {
        pool.put_all(self);
    }
}

impl Recycle for Vec<Vec<Vec<u64>>> {
    fn recycle(self, pool: &LimbPool) {
        pool.put_all(self.into_iter().flatten());
    }
}

impl Recycle for (Vec<Vec<u64>>, Vec<Vec<u64>>) {
    fn recycle(self, pool: &LimbPool) {
        pool.put_all(self.0.into_iter().chain(self.1));
    }
}

/// A value whose limbs go back to its pool when it is dropped (module docs).
pub(crate) struct Pooled<'p, T: Recycle> {
    pool: &'p LimbPool,
    value: T,
}

impl<T: Recycle> Deref for Pooled<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Recycle> DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: Recycle> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        std::mem::take(&mut self.value).recycle(self.pool);
    }
}

#[cfg(test)]
mod tests {
    use super::LimbPool;

    #[test]
    fn retained_bytes_respect_the_cap() {
        // Room for 3 limbs of 16 residues (a cap of 3.5 limbs rounds down).
        let pool = LimbPool::new(16, 3 * 128 + 64);
        assert_eq!(pool.cap_bytes(), 3 * 128);
        let limbs: Vec<Vec<u64>> = (0..5).map(|_| pool.take()).collect();
        assert_eq!(pool.retained_bytes(), 0);
        pool.put_all(limbs);
        assert_eq!(pool.retained_bytes(), 3 * 128);
        pool.put(vec![7; 16]);
        assert_eq!(pool.retained_bytes(), 3 * 128);
        // Other sizes (or a larger capacity) are never retained.
        let pool = LimbPool::new(16, 1 << 20);
        pool.put(vec![1; 15]);
        let mut big = Vec::with_capacity(32);
        big.resize(16, 1u64);
        pool.put(big);
        assert_eq!(pool.retained_bytes(), 0);
        // A guard gives its limbs back when dropped.
        let g = pool.guard(vec![pool.take(), pool.take()]);
        assert_eq!((g.len(), pool.retained_bytes()), (2, 0));
        drop(g);
        assert_eq!(pool.retained_bytes(), 2 * 128);
    }

    #[test]
    fn taken_limbs_have_the_promised_contents() {
        let pool = LimbPool::new(8, 1 << 20);
        pool.put_all((0..4).map(|_| vec![u64::MAX; 8]));
        assert_eq!(pool.take_zeroed(), vec![0; 8]);
        let src: Vec<u64> = (1..=8).collect();
        assert_eq!(pool.take_copy(&src), src);
        // A fresh limb (empty pool) is zeroed; a stale one keeps its residues (the
        // contract: unspecified, overwritten by the caller).
        assert_eq!(pool.take(), vec![u64::MAX; 8]);
        assert_eq!(pool.take(), vec![u64::MAX; 8]);
        assert_eq!(pool.retained_bytes(), 0);
        assert_eq!(pool.take(), vec![0; 8]);
        assert_eq!(pool.take_copy(&[5, 6]), vec![5, 6]);
        let st = pool.stats();
        assert_eq!((st.reused, st.fresh, st.retained_bytes), (4, 1, 0));
        assert_eq!(
            st.to_string(),
            "4 limbs reused, 1 freshly allocated, 0.0 MiB retained (cap 1.0 MiB)"
        );
    }
}
