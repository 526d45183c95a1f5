//! Content-defined chunking with FastCDC (v2020), streaming.
//!
//! Parameters are fixed per vault at creation (default min 256 KiB, avg
//! 1 MiB, max 4 MiB) because changing them would change every chunk boundary
//! and defeat deduplication. Files up to `max` bytes are read in one piece;
//! larger ones are streamed through a window of twice `max`, so memory per
//! file is bounded whatever the file size. Both paths cut at the same
//! boundaries (tested below).
//!
//! The cut search is FastCDC v2020's (`fastcdc::v2020::cut_gear`: same gear
//! table, masks and two-byte steps, so the same boundaries as vaults written
//! with that crate; a property test compares the two) with one shortcut: a
//! run of zero bytes. Once 64 zero bytes have gone through the gear hash
//! its state is a fixed point, so a longer run cannot cut and is skipped at
//! memory speed instead of hashed byte by byte. Disk images are mostly such
//! runs. The window also saves copies: fastcdc's `StreamCDC` shifts its
//! whole buffer after every chunk (about three copies of every byte).

use std::borrow::Cow;
use std::io::Read;

use fastcdc::v2020::Normalization;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What [`ChunkerParams::split_file`] hands each chunk to: the chunk (lent
/// unless it is a whole small file) and whether content cut it.
pub type FileChunks<'a> = dyn FnMut(Cow<'_, [u8]>, bool) -> Result<()> + 'a;

/// FastCDC size bounds in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// No chunk is smaller, except a file's last.
    pub min_size: u32,
    /// Target average chunk size.
    pub avg_size: u32,
    /// No chunk is larger.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self {
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds FastCDC v2020 accepts.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let (min, avg, max) = self.sizes();
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "invalid chunker parameters {self:?}"
            )))
        }
    }

    /// Whether `len` bytes make one chunk without a cut search: a file up
    /// to `min` bytes ([`ChunkerParams::split_file`]; the benchmark asks
    /// the same, so both cut alike).
    pub fn is_one_chunk(&self, len: u64) -> bool {
        len <= u64::from(self.min_size)
    }

    fn sizes(&self) -> (usize, usize, usize) {
        (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        )
    }

    /// Splits an in-memory buffer, calling `each` with every chunk in order.
    pub fn split_slice(
        &self,
        data: &[u8],
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let cutter = Cutter::new(self);
        let mut rest = data;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(cutter.cut(rest));
            each(chunk)?;
            rest = tail;
        }
        Ok(())
    }

    /// Splits a file the way a backup does, so the same content always
    /// yields the same chunk ids: a file of `len` bytes (as `stat` said) up
    /// to `max` is read in one piece (and is one chunk up to `min`), a
    /// larger one streamed. `each` gets every chunk and whether it was cut
    /// by content (false: a small file's only chunk, handed over owned).
    /// Chunks are lent, not copied: most of a re-run or a disk image is
    /// chunks the vault already holds, which only need their id.
    pub fn split_file(
        &self,
        file: &mut std::fs::File,
        len: u64,
        each: &mut FileChunks<'_>,
    ) -> Result<()> {
        if len > self.max_size as u64 {
            return self.split_stream(file, &mut |c| each(Cow::Borrowed(c), true));
        }
        let data = read_small(file, len).map_err(read_error)?;
        if self.is_one_chunk(data.len() as u64) {
            if !data.is_empty() {
                each(Cow::Owned(data), false)?;
            }
            Ok(())
        } else {
            self.split_slice(&data, &mut |c| each(Cow::Borrowed(c), true))
        }
    }

    /// Splits a stream, calling `each` with every chunk in order.
    ///
    /// The window holds twice `max`: chunks are cut from its front while at
    /// least `max` bytes (or the stream's end) are in it, and only the
    /// remainder, under `max`, moves to the front before the next read.
    pub fn split_stream<R: Read>(
        &self,
        mut source: R,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let cutter = Cutter::new(self);
        let max = self.max_size as usize;
        let mut window = vec![0u8; 2 * max];
        let (mut start, mut end, mut eof) = (0, 0, false);
        loop {
            if !eof && end - start < max {
                window.copy_within(start..end, 0);
                (start, end) = (0, end - start);
                while !eof && end < window.len() {
                    match source.read(&mut window[end..]) {
                        Ok(0) => eof = true,
                        Ok(n) => end += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(read_error(e)),
                    }
                }
            }
            if start == end {
                return Ok(());
            }
            let len = cutter.cut(&window[start..end]);
            each(&window[start..start + len])?;
            start += len;
        }
    }
}

fn read_error(source: std::io::Error) -> Error {
    Error::Io {
        context: "read".into(),
        source,
    }
}

/// FastCDC v2020's cut search for one vault's parameters, with zero runs
/// skipped (see the module documentation).
struct Cutter {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: [u64; 256],
    gear_ls: [u64; 256],
    /// The hash after each two zero bytes once a zero run has gone on long
    /// enough, if no mask can ever match it (then a zero run cannot cut);
    /// `None` turns the shortcut off.
    zero_state: Option<u64>,
}

impl Cutter {
    fn new(params: &ChunkerParams) -> Self {
        let (min, avg, max) = params.sizes();
        let (mask_s, mask_l) = fastcdc::v2020::select_masks(avg, Normalization::Level1);
        let table = |t: Cow<'static, [u64]>| -> [u64; 256] {
            let mut a = [0; 256];
            a.copy_from_slice(&t);
            a
        };
        let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
        let (gear, gear_ls) = (table(gear), table(gear_ls));
        // Per two zero bytes the hash goes h -> 4h + 3 g0 (mod 2^64): the
        // distance to the fixed point quadruples, so it is reached after 32
        // steps whatever h was.
        let mut h = 0u64;
        for _ in 0..32 {
            h = (h << 2).wrapping_add(gear_ls[0]).wrapping_add(gear[0]);
        }
        let mid = (h << 2).wrapping_add(gear_ls[0]);
        let never = [
            (mid, mask_s << 1),
            (h, mask_s),
            (mid, mask_l << 1),
            (h, mask_l),
        ]
        .iter()
        .all(|&(state, mask)| state & mask != 0);
        Self {
            min,
            avg,
            max,
            mask_s,
            mask_l,
            gear,
            gear_ls,
            zero_state: never.then_some(h),
        }
    }

    /// Length of the chunk at the start of `src` (all of it if it ends
    /// before a cut): exactly `fastcdc::v2020::cut_gear`'s answer.
    fn cut(&self, src: &[u8]) -> usize {
        let mut remaining = src.len();
        if remaining <= self.min {
            return remaining;
        }
        let mut center = self.avg;
        if remaining > self.max {
            remaining = self.max;
        } else if remaining < center {
            center = remaining;
        }
        let src = &src[..remaining];
        let mut index = self.min / 2;
        let mut hash = 0u64;
        for (limit, mask) in [(center / 2, self.mask_s), (remaining / 2, self.mask_l)] {
            let mask_ls = mask << 1;
            while index < limit {
                let a = index * 2;
                hash = (hash << 2).wrapping_add(self.gear_ls[src[a] as usize]);
                if hash & mask_ls == 0 {
                    return a;
                }
                hash = hash.wrapping_add(self.gear[src[a + 1] as usize]);
                if hash & mask == 0 {
                    return a + 1;
                }
                index += 1;
                if Some(hash) == self.zero_state {
                    index = zeros_end(src, index, limit);
                }
            }
        }
        remaining
    }
}

/// The first pair index in `from..limit` whose two bytes are not both zero
/// (`limit` if there is none).
fn zeros_end(src: &[u8], from: usize, limit: usize) -> usize {
    from + zero_prefix(&src[from * 2..limit * 2]) / 2
}

/// How many bytes at the start of `bytes` are zero: whole 64-byte blocks
/// at a time (which the compiler vectorizes), then byte by byte.
pub(crate) fn zero_prefix(bytes: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let mut blocks = bytes.chunks_exact(BLOCK);
    let whole = bytes.len() - blocks.remainder().len();
    let mut at = blocks
        .position(|b| b.iter().fold(0u8, |acc, &x| acc | x) != 0)
        .map_or(whole, |i| i * BLOCK);
    while at < bytes.len() && bytes[at] == 0 {
        at += 1;
    }
    at
}

/// Reads a file expected to be `expected` bytes long, in as few calls as
/// possible: one `read` asks for a byte more than `stat` said, so getting
/// exactly `expected` bytes means the end was reached without a second call
/// to find it (a million small files, a million calls saved). A file that
/// grew is read to its end; one that grows after the read shows in the stat
/// the caller takes afterwards.
fn read_small(file: &mut std::fs::File, expected: u64) -> std::io::Result<Vec<u8>> {
    let expected = expected as usize;
    let mut data = vec![0u8; expected + 1];
    let mut filled = 0;
    while filled < data.len() {
        match file.read(&mut data[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == expected {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    data.truncate(filled);
    if filled > expected {
        file.read_to_end(&mut data)?;
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    /// The chunk lengths `split` hands its callback.
    fn cuts(split: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>) -> Vec<usize> {
        let mut out = vec![];
        split(&mut |c| {
            out.push(c.len());
            Ok(())
        })
        .unwrap();
        out
    }

    fn cuts_slice(p: &ChunkerParams, d: &[u8]) -> Vec<usize> {
        cuts(|each| p.split_slice(d, each))
    }

    fn cuts_stream(p: &ChunkerParams, d: &[u8]) -> Vec<usize> {
        cuts(|each| p.split_stream(d, each))
    }

    #[test]
    fn stream_and_slice_cut_at_the_same_places() {
        let p = ChunkerParams::default();
        let d = data(20 * 1024 * 1024, 23);
        let streamed = cuts_stream(&p, &d);
        assert_eq!(streamed, cuts_slice(&p, &d));
        assert_eq!(streamed.iter().sum::<usize>(), d.len());
        assert!(streamed.iter().all(|&l| l <= p.max_size as usize));
    }

    /// Seeded snapshot of chunk boundaries: any change to the chunker (and so
    /// to deduplication against existing vaults) shows up here.
    #[test]
    fn boundaries_are_stable() {
        let p = ChunkerParams::default();
        let d = data(8 * 1024 * 1024, 23);
        assert_eq!(
            cuts_slice(&p, &d),
            [1309560, 1903665, 1042067, 1369606, 1615261, 1148449]
        );
    }

    #[test]
    fn an_insert_changes_only_nearby_chunks() {
        let p = ChunkerParams::default();
        let d = data(16 * 1024 * 1024, 7);
        let mut e = d.clone();
        e.splice(8 * 1024 * 1024..8 * 1024 * 1024, data(100, 8));
        let chunks = |x: &[u8]| {
            let mut v = vec![];
            p.split_slice(x, &mut |c| {
                v.push(blake3::hash(c));
                Ok(())
            })
            .unwrap();
            v
        };
        let (a, b) = (chunks(&d), chunks(&e));
        let changed = b.iter().filter(|h| !a.contains(h)).count();
        assert!(changed <= 2, "{changed} of {} chunks changed", b.len());
    }

    /// Random bytes with zero runs (and runs of another byte) of all
    /// lengths in between: what disk images look like.
    fn with_runs(parts: &[(u8, usize, u64)]) -> Vec<u8> {
        let mut d = vec![];
        for &(kind, len, seed) in parts {
            match kind % 3 {
                0 => d.extend(data(len, seed)),
                1 => d.resize(d.len() + len, 0),
                _ => d.resize(d.len() + len, 7),
            }
        }
        d
    }

    /// All cut lengths of `d` by fastcdc's own `cut_gear`.
    fn fastcdc_cuts(p: &ChunkerParams, d: &[u8]) -> Vec<usize> {
        let (min, avg, max) = p.sizes();
        let (s, l) = fastcdc::v2020::select_masks(avg, Normalization::Level1);
        let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
        let (mut at, mut out) = (0, vec![]);
        while at < d.len() {
            let rest = &d[at..];
            let (_, n) = fastcdc::v2020::cut_gear(
                rest,
                min,
                avg,
                max,
                s,
                l,
                s << 1,
                l << 1,
                &gear,
                &gear_ls,
            );
            out.push(n);
            at += n;
        }
        out
    }

    #[test]
    fn zero_runs_are_skipped_with_the_default_parameters() {
        assert!(Cutter::new(&ChunkerParams::default()).zero_state.is_some());
        let p = ChunkerParams::default();
        let d = with_runs(&[
            (0, 3_000_000, 1),
            (1, 9_000_001, 0),
            (0, 100, 2),
            (1, 5_000_000, 0),
            (2, 6_000_000, 0),
            (0, 2_000_000, 3),
        ]);
        let streamed = cuts_stream(&p, &d);
        assert_eq!(streamed, fastcdc_cuts(&p, &d));
        assert_eq!(cuts_slice(&p, &d), streamed);
    }

    #[test]
    fn zero_prefix_counts_leading_zeros() {
        for len in [0, 1, 63, 64, 65, 200] {
            for nonzero in 0..=len {
                let mut v = vec![0u8; len];
                if nonzero < len {
                    v[nonzero] = 9;
                }
                assert_eq!(zero_prefix(&v), nonzero, "len {len}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The cut search (zero-run shortcut included) finds exactly what
        /// fastcdc's `cut_gear` finds, streamed or in one piece.
        #[test]
        fn cuts_are_fastcdc_cuts(
            parts in proptest::collection::vec((0u8..3, 0usize..20_000, 0u64..1000), 0..24),
            min in 64u32..2048,
            avg_bits in 8u32..13,
        ) {
            let min = min & !1;
            let avg = (1u32 << avg_bits).max(min);
            let p = ChunkerParams { min_size: min, avg_size: avg, max_size: 4 * avg };
            proptest::prop_assume!(p.validate().is_ok());
            let d = with_runs(&parts);
            let expected = fastcdc_cuts(&p, &d);
            proptest::prop_assert_eq!(cuts_slice(&p, &d), expected.clone());
            proptest::prop_assert_eq!(cuts_stream(&p, &d), expected);
        }
    }

    #[test]
    fn small_reads_return_the_whole_file_whatever_stat_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for len in [0usize, 1, 4095, 4096, 70_000] {
            let d = data(len, len as u64);
            std::fs::write(&path, &d).unwrap();
            for expected in [len, len.saturating_sub(1), len / 2, len + 1, len + 5000] {
                let mut f = std::fs::File::open(&path).unwrap();
                let back = read_small(&mut f, expected as u64).unwrap();
                assert!(back == d, "len {len}, stat said {expected}");
            }
        }
    }

    #[test]
    fn parameters_are_validated() {
        assert!(ChunkerParams::default().validate().is_ok());
        let bad = ChunkerParams {
            min_size: 8,
            ..Default::default()
        };
        assert!(matches!(bad.validate(), Err(Error::Invalid(_))));
        let bad = ChunkerParams {
            min_size: 2 * 1024 * 1024,
            avg_size: 1024 * 1024,
            ..Default::default()
        };
        assert!(matches!(bad.validate(), Err(Error::Invalid(_))));
    }
}
