//! `AES256CTR-POLY1305`: the RFC 8439 AEAD construction with AES-256-CTR in
//! place of ChaCha20.
//!
//! - A 16-byte random nonce is the initial 128-bit big-endian counter block.
//! - Keystream blocks 0 and 1 (32 bytes) are the Poly1305 one-time key.
//! - The plaintext is encrypted with the keystream from block 2 on.
//! - Tag = Poly1305(otk, aad ‖ pad16 ‖ ct ‖ pad16 ‖ le64(len aad) ‖ le64(len ct)).
//! - Sealed = nonce ‖ ct ‖ tag; the tag is checked in constant time before
//!   anything is decrypted.
//!
//! Why not AES-GCM: the product we replace specifies AES-CTR with Poly1305,
//! and the one-time-key derivation from the keystream keeps a single key per
//! vault safe for a practically unbounded number of random nonces (2^64
//! messages at 2^-32 collision probability with 128-bit nonces).

use aes::cipher::{KeyIvInit, StreamCipher};
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;
use subtle::ConstantTimeEq;

/// A 256-bit AES key.
pub type Key = [u8; 32];
/// Length of the nonce prefix.
pub const NONCE_LEN: usize = 16;
/// Length of the Poly1305 tag suffix.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed blob adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// The sealed blob failed authentication: wrong key, wrong context (AAD) or
/// tampered bytes. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed (wrong key, wrong context or tampered data)")]
pub struct OpenError;

/// Seals `plaintext` under `key`, binding `aad`, with a fresh random nonce.
pub fn seal(key: &Key, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_with_nonce(key, rand::random(), aad, plaintext)
}

/// Seals with a caller-chosen nonce. Only for known-answer tests and golden
/// fixtures: reusing a nonce under one key breaks confidentiality.
pub fn seal_with_nonce(key: &Key, nonce: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_parts(key, nonce, aad, &[plaintext])
}

/// Seals the concatenation of `parts` (saves the caller a copy when the
/// plaintext is a header plus a body).
pub fn seal_parts(key: &Key, nonce: [u8; NONCE_LEN], aad: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len + OVERHEAD);
    out.extend_from_slice(&nonce);
    for part in parts {
        out.extend_from_slice(part);
    }
    let mut cipher = Aes256Ctr::new(key.into(), &nonce.into());
    let mut otk = [0u8; 32];
    cipher.apply_keystream(&mut otk);
    cipher.apply_keystream(&mut out[NONCE_LEN..]);
    let tag = tag(&otk, aad, &out[NONCE_LEN..]);
    out.extend_from_slice(&tag);
    out
}

/// Verifies and decrypts a sealed blob made by [`seal`] with the same `key`
/// and `aad`.
pub fn open(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut out = Vec::new();
    open_into(key, aad, sealed, &mut out)?;
    Ok(out)
}

/// Like [`open`], but writes the plaintext into `out` (replacing its
/// contents) so a caller can reuse one buffer. `out` is left empty on error.
pub fn open_into(key: &Key, aad: &[u8], sealed: &[u8], out: &mut Vec<u8>) -> Result<(), OpenError> {
    out.clear();
    if sealed.len() < OVERHEAD {
        return Err(OpenError);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ct, expected) = rest.split_at(rest.len() - TAG_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError)?;
    let mut cipher = Aes256Ctr::new(key.into(), &nonce.into());
    let mut otk = [0u8; 32];
    cipher.apply_keystream(&mut otk);
    if !bool::from(tag(&otk, aad, ct).ct_eq(expected)) {
        return Err(OpenError);
    }
    out.extend_from_slice(ct);
    cipher.apply_keystream(out);
    Ok(())
}

/// Poly1305 over the RFC 8439 §2.8 MAC input.
fn tag(otk: &[u8; 32], aad: &[u8], ct: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = Poly1305::new(otk.into());
    mac.update_padded(aad);
    mac.update_padded(ct);
    let mut lens = [0u8; 16];
    lens[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lens[8..].copy_from_slice(&(ct.len() as u64).to_le_bytes());
    mac.update_padded(&lens);
    mac.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace([' ', ':'], "")).unwrap()
    }

    /// NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt).
    const NIST_KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    const NIST_CTR: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    const NIST_PT: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51 \
                           30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";
    const NIST_CT: &str = "601ec313775789a5b7a7f504bbf3d228 f443e3ca4d62b59aca84e990cacaf5c5 \
                           2b0930daa23de94ce87017ba2d84988d dfc9c58db67aada613c2dd08457941a6";

    #[test]
    fn aes256_ctr_matches_nist_sp800_38a_f55() {
        let key: Key = h(NIST_KEY).try_into().unwrap();
        let ctr: [u8; 16] = h(NIST_CTR).try_into().unwrap();
        let mut data = h(NIST_PT);
        Aes256Ctr::new(&key.into(), &ctr.into()).apply_keystream(&mut data);
        assert_eq!(data, h(NIST_CT));
    }

    #[test]
    fn seal_encrypts_from_keystream_block_two() {
        // With the nonce two blocks before NIST's counter, our ciphertext must
        // be NIST's: the payload is encrypted from block 2 on.
        let key: Key = h(NIST_KEY).try_into().unwrap();
        let ctr = u128::from_be_bytes(h(NIST_CTR).try_into().unwrap());
        let nonce = (ctr - 2).to_be_bytes();
        let sealed = seal_with_nonce(&key, nonce, b"", &h(NIST_PT));
        assert_eq!(&sealed[..NONCE_LEN], &nonce);
        assert_eq!(
            &sealed[NONCE_LEN..sealed.len() - TAG_LEN],
            h(NIST_CT).as_slice()
        );
    }

    #[test]
    fn poly1305_matches_rfc8439_2_5_2() {
        let key: [u8; 32] = h("85:d6:be:78:57:55:6d:33:7f:44:52:fe:42:d5:06:a8:\
                               01:03:80:8a:fb:0d:b2:fd:4a:bf:f6:af:41:49:f5:1b")
        .try_into()
        .unwrap();
        let tag =
            Poly1305::new(&key.into()).compute_unpadded(b"Cryptographic Forum Research Group");
        assert_eq!(
            tag.as_slice(),
            h("a8:06:1d:c1:30:51:36:c6:c2:2b:8b:af:0c:01:27:a9")
        );
    }

    #[test]
    fn tag_is_the_rfc8439_mac_input_under_the_keystream_key() {
        // Recompute the tag independently from the primitives.
        let key = [0x42u8; 32];
        let nonce = [7u8; 16];
        let sealed = seal_with_nonce(&key, nonce, b"aad!", b"hello world");
        let mut otk = [0u8; 32];
        Aes256Ctr::new(&key.into(), &nonce.into()).apply_keystream(&mut otk);
        let ct = &sealed[NONCE_LEN..sealed.len() - TAG_LEN];
        let mut input = b"aad!".to_vec();
        input.resize(16, 0);
        input.extend_from_slice(ct);
        input.resize(32, 0);
        input.extend_from_slice(&4u64.to_le_bytes());
        input.extend_from_slice(&11u64.to_le_bytes());
        let expected = Poly1305::new(&otk.into()).compute_unpadded(&input);
        assert_eq!(&sealed[sealed.len() - TAG_LEN..], expected.as_slice());
    }

    #[test]
    fn empty_and_short_inputs() {
        let key = [1u8; 32];
        assert_eq!(open(&key, b"", &seal(&key, b"", b"")).unwrap(), b"");
        for len in 0..OVERHEAD {
            assert_eq!(open(&key, b"", &vec![0u8; len]), Err(OpenError));
        }
    }

    proptest! {
        #[test]
        fn round_trips(key: [u8; 32], aad in proptest::collection::vec(any::<u8>(), 0..64),
                       pt in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(open(&key, &aad, &seal(&key, &aad, &pt)).unwrap(), pt);
        }

        #[test]
        fn any_flipped_bit_is_rejected(pt in proptest::collection::vec(any::<u8>(), 0..100),
                                       bit: usize, in_aad: bool) {
            let key = [9u8; 32];
            let aad = b"cairn/chunk/v1 context".to_vec();
            let mut sealed = seal(&key, &aad, &pt);
            let mut aad2 = aad.clone();
            if in_aad {
                let i = bit % (aad2.len() * 8);
                aad2[i / 8] ^= 1 << (i % 8);
            } else {
                let i = bit % (sealed.len() * 8);
                sealed[i / 8] ^= 1 << (i % 8);
            }
            prop_assert_eq!(open(&key, &aad2, &sealed), Err(OpenError));
        }

        #[test]
        fn wrong_key_is_rejected(pt in proptest::collection::vec(any::<u8>(), 0..100)) {
            let sealed = seal(&[1u8; 32], b"", &pt);
            prop_assert_eq!(open(&[2u8; 32], b"", &sealed), Err(OpenError));
        }
    }
}
