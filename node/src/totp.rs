//! TOTP (RFC 6238), the optional second factor of operators: HMAC-SHA1
//! over 30-second steps, 6 digits, what every authenticator app takes from
//! an `otpauth://` URI. An operator enrolled (at creation or later) has a
//! 20-byte secret in the replicated state, shown once as the URI; a login
//! then needs the current code (one step either side is accepted for clock
//! drift), and a wrong or missing code counts as a failed login.
//!
//! A code is good once: [`accepted_step`] names the step a code belongs to
//! only when it is later than the operator's last used step, and the
//! session event carries that step through the log, whose state machine
//! refuses a step it has seen (so two nodes cannot both accept one code).
//!
//! Pure: the secret, the time and the code in, a verdict out (RFC 4226
//! and RFC 6238 test vectors below).

use sha1::{Digest, Sha1};

/// Seconds per step.
pub const STEP_S: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a generated secret (160 bits, RFC 4226's recommendation).
pub const SECRET_LEN: usize = 20;

/// A fresh random secret.
pub fn generate_secret() -> Vec<u8> {
    rand::random::<[u8; SECRET_LEN]>().to_vec()
}

/// HMAC-SHA1 (RFC 2104).
fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha1::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha1::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The HOTP value of `counter` (RFC 4226) with `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mac = hmac_sha1(secret, &counter.to_be_bytes());
    let offset = usize::from(mac[19] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The code at `unix_s` (seconds since the epoch).
pub fn code_at(secret: &[u8], unix_s: u64) -> u32 {
    hotp(secret, unix_s / STEP_S, DIGITS)
}

/// The step `code` belongs to when it is the code at `unix_s`, or one
/// step before or after, and that step is later than `last` (the step of
/// the operator's last accepted code); `None` otherwise.
pub fn accepted_step(secret: &[u8], code: &str, unix_s: u64, last: Option<u64>) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let given = code.parse::<u32>().ok()?;
    let step = unix_s / STEP_S;
    // Every candidate is computed, so the time taken does not say which.
    [step.saturating_sub(1), step, step + 1]
        .into_iter()
        .filter(|s| hotp(secret, *s, DIGITS) == given)
        .fold(None, |hit, s| {
            hit.or(cairn_consensus::apply::totp_step_fresh(last, s).then_some(s))
        })
}

/// RFC 4648 base32 without padding (what `otpauth://` URIs carry).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The enrollment URI an authenticator app scans or takes as text.
pub fn uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_S}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), want, "{counter}");
        }
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        for (t, want) in [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(RFC_SECRET, t / STEP_S, 8), want, "{t}");
        }
    }

    #[test]
    fn codes_are_accepted_one_step_either_side_only() {
        let t = 1_234_567_890;
        let step = t / STEP_S;
        let code = format!("{:06}", code_at(RFC_SECRET, t));
        assert_eq!(accepted_step(RFC_SECRET, &code, t, None), Some(step));
        assert_eq!(
            accepted_step(RFC_SECRET, &code, t + STEP_S, None),
            Some(step)
        );
        assert_eq!(
            accepted_step(RFC_SECRET, &code, t - STEP_S, None),
            Some(step)
        );
        assert_eq!(accepted_step(RFC_SECRET, &code, t + 3 * STEP_S, None), None);
        for bad in ["", "12345", "1234567", "abcdef", "+12345"] {
            assert_eq!(accepted_step(RFC_SECRET, bad, t, None), None, "{bad}");
        }
    }

    #[test]
    fn a_code_is_refused_once_its_step_or_a_later_one_was_used() {
        let t = 1_234_567_890;
        let step = t / STEP_S;
        let code = format!("{:06}", code_at(RFC_SECRET, t));
        assert_eq!(
            accepted_step(RFC_SECRET, &code, t, Some(step - 1)),
            Some(step)
        );
        assert_eq!(
            accepted_step(RFC_SECRET, &code, t, Some(step)),
            None,
            "replayed"
        );
        assert_eq!(
            accepted_step(RFC_SECRET, &code, t, Some(step + 1)),
            None,
            "older"
        );
    }

    #[test]
    fn uris_carry_the_base32_secret() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b""), "");
        assert_eq!(
            uri(b"foobar", "Cairn", "ann lee"),
            "otpauth://totp/Cairn:ann%20lee?secret=MZXW6YTBOI&issuer=Cairn&algorithm=SHA1&digits=6&period=30"
        );
    }
}
