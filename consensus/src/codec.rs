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
//! | snapshot data | [`STATE_FORMAT`] | `u8` ‖ bincode([`State`]) |
//!
//! A value whose layout changed with a format bump is read with
//! [`decode_migrating`], which decodes the older layout and converts it.
//! Log entries stay at format 1 although [`Event`](crate::Event) gained
//! variants: appending variants leaves every older entry's bytes and
//! meaning intact (an older build refuses the new variants with a decode
//! error). State format 2 changed the layout of devices, tiers, job ends
//! and the whole state, so it has a new number and format 1 is migrated.
//! | vote, log ids, membership, snapshot meta | [`META_FORMAT`] | `u8` ‖ bincode(value) |

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ConsensusError, Result};
use crate::state::State;

/// Format of a stored log entry.
pub const LOG_ENTRY_FORMAT: u8 = 1;
/// Format of the persisted state machine and of snapshot data.
///
/// 1: the first layout. 2: devices gained `last_login_at`, tiers a quota
/// and a description, job ends counters and an error, and the state
/// protected items and the server secret. Format 1 is still read (see
/// [`decode_migrating`] and [`decode_state`]).
pub const STATE_FORMAT: u8 = 2;
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

/// Splits a value into its format byte (checked against `supported`) and
/// its body.
fn split<'a>(what: &'static str, supported: u8, bytes: &'a [u8]) -> Result<(u8, &'a [u8])> {
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
    Ok((found, body))
}

fn deserialize<T: DeserializeOwned>(what: &'static str, body: &[u8]) -> Result<T> {
    options()
        .deserialize(body)
        .map_err(|source| ConsensusError::Decode { what, source })
}

/// Decodes a value written by [`encode`] with a format up to `supported`,
/// for values whose layout is the same in every format up to `supported`.
pub fn decode<T: DeserializeOwned>(what: &'static str, supported: u8, bytes: &[u8]) -> Result<T> {
    let (_, body) = split(what, supported, bytes)?;
    deserialize(what, body)
}

/// Decodes snapshot data (a whole [`State`]) written with any supported
/// state format; format 1 is migrated (the legacy layouts live in
/// `state/v1.rs`).
pub fn decode_state(bytes: &[u8]) -> Result<State> {
    decode_migrating::<State, crate::state::v1::State>("snapshot data", 2, STATE_FORMAT, bytes)
}

/// Decodes a value whose layout changed at format `since`: a value written
/// with an older format is decoded with the old layout `Old` and converted,
/// so a newer build keeps reading what an older one wrote.
pub fn decode_migrating<T, Old>(
    what: &'static str,
    since: u8,
    supported: u8,
    bytes: &[u8],
) -> Result<T>
where
    T: DeserializeOwned,
    Old: DeserializeOwned + Into<T>,
{
    let (found, body) = split(what, supported, bytes)?;
    if found < since {
        deserialize::<Old>(what, body).map(Into::into)
    } else {
        deserialize(what, body)
    }
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

    #[derive(serde::Deserialize)]
    struct Old(u8);

    impl From<Old> for (u8, u8) {
        fn from(o: Old) -> Self {
            (o.0, 0)
        }
    }

    #[test]
    fn migrating_decode_picks_the_layout_by_format() {
        let old = encode("t", 1, &5u8).expect("encode");
        let new = encode("t", 2, &(5u8, 6u8)).expect("encode");
        assert_eq!(
            decode_migrating::<(u8, u8), Old>("t", 2, 2, &old).expect("v1"),
            (5, 0)
        );
        assert_eq!(
            decode_migrating::<(u8, u8), Old>("t", 2, 2, &new).expect("v2"),
            (5, 6)
        );
        let newer = encode("t", 3, &(5u8, 6u8)).expect("encode");
        assert!(matches!(
            decode_migrating::<(u8, u8), Old>("t", 2, 2, &newer),
            Err(ConsensusError::UnsupportedFormat { found: 3, .. })
        ));
        // Format 1 is one byte: a trailing byte is refused, not ignored.
        assert!(matches!(
            decode_migrating::<(u8, u8), Old>("t", 2, 2, &[1, 5, 6]),
            Err(ConsensusError::Decode { what: "t", .. })
        ));
        assert!(matches!(
            decode_migrating::<(u8, u8), Old>("t", 2, 2, &[]),
            Err(ConsensusError::Corrupt { what: "t", .. })
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
        assert!(matches!(
            decode::<String>("t", 1, &huge),
            Err(ConsensusError::Decode { .. })
        ));
    }
}
