//! Sealed vault keys (`cairn_client::crypto::keys`): `VaultKeys::unwrap`
//! (keys-only blob in `vault.json`) and `VaultSecrets::unwrap` (an account
//! vault's keys and creation parameters, as the server stores them). With a
//! fixed wrap key:
//!
//! - selector 0: the input as the sealed blob. The server is not trusted:
//!   anything that does not pass the tag under this key and vault must be
//!   rejected as a wrong password, never a panic or keys.
//! - otherwise: the input is sealed as the plaintext under the right key and
//!   context, reaching the version, length and parameter checks. Whatever
//!   unwraps must have exactly the documented layout and valid chunker
//!   bounds and zstd level, and must re-wrap to a blob that unwraps to the
//!   same keys and parameters.
#![no_main]

use cairn_client::crypto::{aead, VaultKeys, VaultSecrets};
use cairn_client::error::Error;
use cairn_fuzz::{fixed, selector};
use cairn_proto::version::KEYS_FORMAT;
use libfuzzer_sys::fuzz_target;

const KEYS_AAD: &[u8] = b"cairn/vault-keys/v1";

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = selector(data) else {
        return;
    };
    let vault = fixed::VAULT;
    let aad = [KEYS_AAD, vault.as_bytes()].concat();
    if which == 0 {
        // Only a blob that passes the tag under this key and context may
        // unwrap (or fail on its contents); anything else is a wrong password.
        let authentic = aead::open(&fixed::WRAP_KEY, &aad, body).is_ok();
        for result in [
            VaultKeys::unwrap(vault, &fixed::WRAP_KEY, body).map(drop),
            VaultSecrets::unwrap(vault, &fixed::WRAP_KEY, body).map(drop),
        ] {
            match result {
                Err(Error::WrongPassword) => assert!(!authentic),
                Ok(()) | Err(Error::Format(_)) => assert!(authentic),
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        return;
    }
    let sealed = aead::seal_with_nonce(&fixed::WRAP_KEY, fixed::NONCE, &aad, body);
    match VaultKeys::unwrap(vault, &fixed::WRAP_KEY, &sealed) {
        Ok(keys) => {
            assert_eq!(body.len(), 65);
            assert_eq!(body[0], KEYS_FORMAT);
            assert_eq!(&keys.encryption[..], &body[1..33]);
            assert_eq!(&keys.chunk_id[..], &body[33..65]);
            let again =
                VaultKeys::unwrap(vault, &fixed::WRAP_KEY, &keys.wrap(vault, &fixed::WRAP_KEY))
                    .expect("re-wrapped keys unwrap");
            assert_eq!(again.encryption, keys.encryption);
            assert_eq!(again.chunk_id, keys.chunk_id);
        }
        Err(e) => assert!(matches!(e, Error::Format(_)), "{e}"),
    }
    match VaultSecrets::unwrap(vault, &fixed::WRAP_KEY, &sealed) {
        Ok(s) => {
            assert_eq!(body.len(), 81);
            assert!(s.chunker.validate().is_ok());
            assert!((1..=22).contains(&s.zstd_level));
            assert_eq!(&s.keys.encryption[..], &body[1..33]);
            let again =
                VaultSecrets::unwrap(vault, &fixed::WRAP_KEY, &s.wrap(vault, &fixed::WRAP_KEY))
                    .expect("re-wrapped secrets unwrap");
            assert_eq!(again.keys.encryption, s.keys.encryption);
            assert_eq!(again.keys.chunk_id, s.keys.chunk_id);
            assert_eq!(again.chunker, s.chunker);
            assert_eq!(again.zstd_level, s.zstd_level);
        }
        Err(e) => assert!(matches!(e, Error::Format(_)), "{e}"),
    }
});
