//! Sealing a dispatched snapshot listing for the account (format v2 of
//! [`cairn_proto::control::SealedListing`]): AES-256-GCM under
//! `HKDF-SHA256(wrap key)`, with a fresh 12-byte nonce. Those are exactly
//! WebCrypto's `HKDF` and `AES-GCM`, so the web console opens a listing in
//! the browser with no hand-written cryptography, after deriving the wrap
//! key with the same argon2id as `cairn login`; the server relays bytes it
//! cannot read. `client/tests/fixtures/listing-v2.json` is the known-answer
//! vector both this module's test and the browser test check.

use cairn_proto::control::{LISTING_AAD, LISTING_HKDF_INFO};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{KeyType, Salt, HKDF_SHA256};

/// The listing key: what the daemon keeps instead of the wrap key.
pub type ListingKey = [u8; 32];

/// 32 bytes of HKDF output.
struct Len32;

impl KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// The listing key of an account from its wrap key.
pub fn key(wrap: &[u8; 32]) -> ListingKey {
    let mut out = [0u8; 32];
    Salt::new(HKDF_SHA256, &[])
        .extract(wrap)
        .expand(&[LISTING_HKDF_INFO.as_bytes()], Len32)
        .and_then(|okm| okm.fill(&mut out))
        .unwrap_or_else(|_| unreachable!("32 bytes are within HKDF-SHA256's output limit"));
    out
}

fn aead(key: &ListingKey) -> LessSafeKey {
    let unbound = UnboundKey::new(&AES_256_GCM, key)
        .unwrap_or_else(|_| unreachable!("a 32-byte key is an AES-256 key"));
    LessSafeKey::new(unbound)
}

/// Seals `listing` (nonce ‖ ciphertext ‖ tag) with a fresh random nonce.
pub fn seal(key: &ListingKey, listing: &[u8]) -> Vec<u8> {
    seal_with_nonce(key, rand::random(), listing)
}

fn seal_with_nonce(key: &ListingKey, nonce: [u8; NONCE_LEN], listing: &[u8]) -> Vec<u8> {
    let mut out = nonce.to_vec();
    out.extend_from_slice(listing);
    let tag = aead(key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(LISTING_AAD.as_bytes()),
            &mut out[NONCE_LEN..],
        )
        .unwrap_or_else(|_| unreachable!("a listing is far below AES-GCM's length limit"));
    out.extend_from_slice(tag.as_ref());
    out
}

/// Opens a sealed listing: the reference the browser's steps must match.
/// `None`: a wrong key, a wrong version's bytes, or tampering.
pub fn open(key: &ListingKey, sealed: &[u8]) -> Option<Vec<u8>> {
    let nonce: [u8; NONCE_LEN] = sealed.get(..NONCE_LEN)?.try_into().ok()?;
    let mut body = sealed[NONCE_LEN..].to_vec();
    let plain = aead(key)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(LISTING_AAD.as_bytes()),
            &mut body,
        )
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::kdf::{derive, Cost};
    use serde_json::Value;

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/listing-v2.json"))
            .expect("fixture json")
    }

    fn hexfield(v: &Value, k: &str) -> Vec<u8> {
        hex::decode(v[k].as_str().expect(k)).expect("hex")
    }

    /// The known-answer vector the browser test opens too: from the
    /// password and the account's KDF parameters to the wrap key, the
    /// listing key and the sealed bytes, pinned.
    #[test]
    fn known_answer_vector() {
        let f = fixture();
        let kdf = &f["kdf"];
        let n = |k: &str| kdf[k].as_u64().expect(k) as u32;
        let keys = derive(
            f["password"].as_str().expect("password").as_bytes(),
            &hexfield(kdf, "salt"),
            Cost {
                memory_kib: n("memory_kib"),
                iterations: n("iterations"),
                parallelism: n("parallelism"),
            },
        )
        .expect("derive");
        assert_eq!(hex::encode(keys.wrap), f["wrap"]);
        let k = key(&keys.wrap);
        assert_eq!(hex::encode(k), f["listing_key"]);
        let plain = f["listing"].as_str().expect("listing").as_bytes();
        let sealed = hexfield(&f, "sealed");
        let nonce = sealed[..NONCE_LEN].try_into().expect("nonce");
        assert_eq!(seal_with_nonce(&k, nonce, plain), sealed);
        assert_eq!(open(&k, &sealed).as_deref(), Some(plain));
    }

    /// Fresh nonces; a wrong key, a flipped bit or a short input opens
    /// nothing (and never panics).
    #[test]
    fn sealing_round_trips_and_refuses_tampering() {
        let k = key(&[3; 32]);
        let a = seal(&k, b"[]");
        assert_ne!(a, seal(&k, b"[]"));
        assert_eq!(open(&k, &a).as_deref(), Some(&b"[]"[..]));
        assert_eq!(open(&key(&[4; 32]), &a), None);
        let mut bad = a.clone();
        bad[NONCE_LEN] ^= 1;
        assert_eq!(open(&k, &bad), None);
        for n in 0..a.len() {
            assert_eq!(open(&k, &a[..n]), None);
        }
    }
}
