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
//! `decode_migrating`, which decodes the layout its format byte names and
//! converts it step by step to today's (each persisted type declares its
//! older layout through the crate-private `state::Layout` trait). Log entries stay
//! at format 1 although [`Event`](crate::Event) gained variants: appending
//! variants leaves every older entry's bytes and meaning intact (an older
//! build refuses the new variants with a decode error). State format 2
//! changed the layout of devices, tiers, job ends and the whole state;
//! state format 3 that of items, vaults, jobs and the whole state; state
//! format 4 appended the license to the whole state (and a new `m/license`
//! record); state format 5 the topology (and a new `m/topology` record);
//! state format 6 appended the console's records to the whole state (and
//! the `O`, `G`, `W` and `U` records); state format 7 disabled accounts
//! and operators' last TOTP steps (and the `X` and `Z` records); each has
//! a new number and the formats before are migrated.
//! | vote, log ids, membership, snapshot meta | [`META_FORMAT`] | `u8` ‖ bincode(value) |

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ConsensusError, Result};
use crate::state::{Layout, State};

/// Format of a stored log entry.
pub const LOG_ENTRY_FORMAT: u8 = 1;
/// Format of the persisted state machine and of snapshot data.
///
/// 1: the first layout. 2: devices gained `last_login_at`, tiers a quota
/// and a description, job ends counters and an error, and the state
/// protected items and the server secret. 3: items and vaults gained
/// before/after commands, vaults a retention policy, jobs their item,
/// schedule, `last_seen` and `revived`, and the state schedules and item
/// retention overrides. 4: the state gained the license. 5: the state
/// gained the topology (node roles, storage labels, tier labels). 6: the
/// state gained the console's operators, organizations, accounts'
/// organizations and audit trail. 7: the state gained disabled accounts
/// and the last TOTP step of each operator. Every older format is still
/// read (see [`decode_state`]).
pub const STATE_FORMAT: u8 = 7;
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
/// state format; formats 1 and 2 are migrated (the legacy layouts live in
/// `state/v1.rs` and `state/v2.rs`).
pub fn decode_state(bytes: &[u8]) -> Result<State> {
    decode_migrating::<State>("snapshot data", STATE_FORMAT, bytes)
}

/// Decodes a value of a [`Layout`] chain written with any format up to
/// `supported`: the layout in force at the value's format is decoded and
/// converted up the chain, so a newer build keeps reading what an older one
/// wrote (stored state records and snapshot data alike).
pub(crate) fn decode_migrating<T: Layout>(
    what: &'static str,
    supported: u8,
    bytes: &[u8],
) -> Result<T> {
    let (found, body) = split(what, supported, bytes)?;
    deserialize_layout(what, found, body)
}

fn deserialize_layout<T: Layout>(what: &'static str, found: u8, body: &[u8]) -> Result<T> {
    if found >= T::SINCE || T::SINCE <= 1 {
        deserialize(what, body)
    } else {
        deserialize_layout::<T::Older>(what, found, body).map(Into::into)
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

    /// Format 1: one byte.
    #[derive(serde::Deserialize)]
    struct V1(u8);

    /// Format 2: two bytes.
    #[derive(serde::Deserialize)]
    struct V2(u8, u8);

    /// Format 3: three bytes.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct V3(u8, u8, u8);

    impl Layout for V1 {
        const SINCE: u8 = 1;
        type Older = V1;
    }
    impl Layout for V2 {
        const SINCE: u8 = 2;
        type Older = V1;
    }
    impl Layout for V3 {
        const SINCE: u8 = 3;
        type Older = V2;
    }
    impl From<V1> for V2 {
        fn from(o: V1) -> Self {
            V2(o.0, 0)
        }
    }
    impl From<V2> for V3 {
        fn from(o: V2) -> Self {
            V3(o.0, o.1, 0)
        }
    }

    #[test]
    fn migrating_decode_picks_the_layout_by_format() {
        let v1 = encode("t", 1, &5u8).expect("encode");
        let v2 = encode("t", 2, &(5u8, 6u8)).expect("encode");
        let v3 = encode("t", 3, &(5u8, 6u8, 7u8)).expect("encode");
        assert_eq!(
            decode_migrating::<V3>("t", 3, &v1).expect("v1"),
            V3(5, 0, 0)
        );
        assert_eq!(
            decode_migrating::<V3>("t", 3, &v2).expect("v2"),
            V3(5, 6, 0)
        );
        assert_eq!(
            decode_migrating::<V3>("t", 3, &v3).expect("v3"),
            V3(5, 6, 7)
        );
        let newer = encode("t", 4, &(5u8, 6u8, 7u8)).expect("encode");
        assert!(matches!(
            decode_migrating::<V3>("t", 3, &newer),
            Err(ConsensusError::UnsupportedFormat { found: 4, .. })
        ));
        // Format 1 is one byte: a trailing byte is refused, not ignored.
        assert!(matches!(
            decode_migrating::<V3>("t", 3, &[1, 5, 6]),
            Err(ConsensusError::Decode { what: "t", .. })
        ));
        assert!(matches!(
            decode_migrating::<V3>("t", 3, &[]),
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
