//! The versioned binary encoding of everything this crate persists or sends.
//!
//! Every stored value is one format byte followed by bincode (1.x, fixed-int
//! little-endian, the "legacy" configuration) of the value. The format byte
//! lets a newer build read what an older one wrote and refuse, with a clear
//! error, what a newer one wrote. Trailing bytes and absurd lengths are
//! rejected so corruption surfaces as an error instead of a wrong value.
//!
//! | value | constant | layout |
//! |---|---|---|
//! | log entry (`logs` CF) | [`LOG_ENTRY_FORMAT`] | `u8` ‖ bincode(`openraft::Entry<TypeConfig>`) |
//! | state record (`state` CF, one per account, device, vault…) | [`STATE_FORMAT`] | `u8` ‖ bincode(record) |
//! | snapshot data | [`STATE_FORMAT`] | `u8` ‖ bincode([`State`](crate::State)) |
//! | vote, log ids, membership, snapshot meta | [`META_FORMAT`] | `u8` ‖ bincode(value) |

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ConsensusError, Result};

/// Format of a stored log entry.
pub const LOG_ENTRY_FORMAT: u8 = 1;
/// Format of the persisted state machine and of snapshot data.
pub const STATE_FORMAT: u8 = 1;
/// Format of small metadata values (vote, log ids, membership, snapshot meta).
pub const META_FORMAT: u8 = 1;

/// Largest value we will decode (1 GiB); a length prefix beyond this is
/// corruption, not data, and must not turn into a huge allocation.
const DECODE_LIMIT: u64 = 1 << 30;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(DECODE_LIMIT)
}

/// Encodes `value` behind the `format` byte.
pub fn encode<T: Serialize>(what: &'static str, format: u8, value: &T) -> Result<Vec<u8>> {
    let mut out = vec![format];
    options()
        .serialize_into(&mut out, value)
        .map_err(|source| ConsensusError::Encode { what, source })?;
    Ok(out)
}

/// Decodes a value written by [`encode`] with a format up to `supported`.
pub fn decode<T: DeserializeOwned>(what: &'static str, supported: u8, bytes: &[u8]) -> Result<T> {
    let (&found, body) = bytes.split_first().ok_or_else(|| ConsensusError::Corrupt {
        what,
        detail: "empty value".into(),
    })?;
    if found == 0 || found > supported {
        return Err(ConsensusError::UnsupportedFormat {
            what,
            found,
            supported,
        });
    }
    options()
        .deserialize(body)
        .map_err(|source| ConsensusError::Decode { what, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode("t", 1, &(7u64, "x".to_string())).expect("encode");
        assert_eq!(bytes[0], 1);
        let back: (u64, String) = decode("t", 1, &bytes).expect("decode");
        assert_eq!(back, (7, "x".to_string()));
    }

    #[test]
    fn newer_format_is_refused() {
        let bytes = encode("t", 2, &1u8).expect("encode");
        assert!(matches!(
            decode::<u8>("t", 1, &bytes),
            Err(ConsensusError::UnsupportedFormat {
                found: 2,
                supported: 1,
                ..
            })
        ));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            decode::<u64>("t", 1, &[]),
            Err(ConsensusError::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<u64>("t", 1, &[1, 2]),
            Err(ConsensusError::Decode { .. })
        ));
        let mut bytes = encode("t", 1, &1u64).expect("encode");
        bytes.push(0);
        assert!(matches!(
            decode::<u64>("t", 1, &bytes),
            Err(ConsensusError::Decode { .. })
        ));
        // A string claiming to be 2^62 bytes long must not allocate.
        let mut huge = vec![1u8];
        huge.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(decode::<String>("t", 1, &huge).is_err());
    }
}
