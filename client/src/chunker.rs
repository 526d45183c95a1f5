//! Content-defined chunking with FastCDC (v2020), streaming.
//!
//! Parameters are fixed per vault at creation (default min 256 KiB, avg
//! 1 MiB, max 4 MiB) because changing them would change every chunk boundary
//! and defeat deduplication. Files up to `max` bytes are read in one piece;
//! larger ones are streamed through a `max`-sized window, so memory per file
//! never exceeds one chunk window whatever the file size. Both paths cut at
//! the same boundaries (tested below).

use std::io::Read;

use fastcdc::v2020::{FastCDC, StreamCDC};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
        if data.is_empty() {
            return Ok(());
        }
        let (min, avg, max) = self.sizes();
        let cdc = FastCDC::new(data, min, avg, max);
        for c in cdc {
            each(&data[c.offset..c.offset + c.length])?;
        }
        Ok(())
    }

    /// Splits a file the way a backup does, so the same content always
    /// yields the same chunk ids: a file of `len` bytes (as `stat` said) up
    /// to `max` is read in one piece (and is one chunk up to `min`), a
    /// larger one streamed. `each` gets every chunk and whether it was cut
    /// by content (false: a small file's only chunk).
    pub fn split_file(
        &self,
        file: &mut std::fs::File,
        len: u64,
        each: &mut dyn FnMut(Vec<u8>, bool) -> Result<()>,
    ) -> Result<()> {
        if len > self.max_size as u64 {
            return self.split_stream(file, &mut |c| each(c, true));
        }
        let data = read_small(file, len).map_err(|e| Error::Io {
            context: "read".into(),
            source: e,
        })?;
        if data.len() <= self.min_size as usize {
            if !data.is_empty() {
                each(data, false)?;
            }
            Ok(())
        } else {
            self.split_slice(&data, &mut |c| each(c.to_vec(), true))
        }
    }

    /// Splits a stream, calling `each` with every chunk (owned) in order.
    pub fn split_stream<R: Read>(
        &self,
        source: R,
        each: &mut dyn FnMut(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let (min, avg, max) = self.sizes();
        let cdc = StreamCDC::new(source, min, avg, max);
        for c in cdc {
            let c = c.map_err(|e| match e {
                fastcdc::v2020::Error::IoError(e) => Error::Io {
                    context: "read".into(),
                    source: e,
                },
                other => Error::Format(format!("chunker: {other}")),
            })?;
            each(c.data)?;
        }
        Ok(())
    }
}

/// Reads a file expected to be `expected` bytes long, in as few calls as
/// possible (no extra stat the way `read_to_end` does); a file that grew is
/// read to its end.
fn read_small(file: &mut std::fs::File, expected: u64) -> std::io::Result<Vec<u8>> {
    let mut data = vec![0u8; expected as usize];
    let mut filled = 0;
    while filled < data.len() {
        match file.read(&mut data[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    data.truncate(filled);
    if filled == expected as usize {
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

    fn cuts_slice(p: &ChunkerParams, d: &[u8]) -> Vec<usize> {
        let mut out = vec![];
        p.split_slice(d, &mut |c| {
            out.push(c.len());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn stream_and_slice_cut_at_the_same_places() {
        let p = ChunkerParams::default();
        let d = data(20 * 1024 * 1024, 23);
        let mut streamed = vec![];
        p.split_stream(&d[..], &mut |c| {
            streamed.push(c.len());
            Ok(())
        })
        .unwrap();
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
