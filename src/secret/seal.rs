//! Sealing what the database must not hold in clear, and the space tokens it holds hashed.
//!
//! * [`MasterKey`]: the 256-bit key of hosted mode (`PAASTIS_MASTER_KEY`, base64 or hex).
//! * [`MasterKey::seal`] / [`MasterKey::open`]: AES-256-GCM with a fresh random 96-bit nonce
//!   per value, bound to what it belongs to (the associated data, e.g. the space id), so a
//!   sealed value copied to another row does not open. Text form: `v1:` + base64 of
//!   nonce ‖ ciphertext ‖ tag.
//! * [`new_token`] / [`token_hash`]: space tokens are 256 random bits, so one SHA-256 is
//!   enough to store them (no password stretching needed); only the hash is kept.
//!
//! Nothing here logs, and no error says more than what failed.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::secret::Secret;

/// The prefix of the sealed text format (a later format gets another).
const VERSION: &str = "v1:";

/// What a space token starts with: tells people (and secret scanners) what it is.
pub const TOKEN_PREFIX: &str = "pst_";

/// The master key of hosted mode: 32 bytes, ready for AES-256-GCM. Never printed.
#[derive(Clone)]
pub struct MasterKey(std::sync::Arc<LessSafeKey>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The text is not a sealed value of a known format.
    #[error("not a sealed value (damaged or from an unknown version)")]
    Malformed,
    /// The key or the associated data is not the one it was sealed with, or the value was
    /// changed.
    #[error("does not open with this master key (another key, or a changed value)")]
    WrongKey,
    /// The system's random generator (or the cipher) failed.
    #[error("cannot seal: no randomness available, or the value is too long")]
    Random,
}

impl MasterKey {
    /// Reads a key given as 32 bytes in base64 (standard or URL-safe, padding optional) or
    /// 64 hex digits. The error never repeats the value.
    pub fn parse(text: &str) -> Result<MasterKey, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "is not hex".to_owned())?
        } else {
            let unpadded = text.trim_end_matches('=');
            let standard = base64::engine::general_purpose::STANDARD_NO_PAD;
            standard
                .decode(unpadded)
                .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
                .map_err(|_| {
                    "must be 32 random bytes in base64 or 64 hex digits \
                     (e.g. the output of `openssl rand -base64 32`)"
                        .to_owned()
                })?
        };
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "must be 32 bytes (256 bits), found {} bytes: use `openssl rand -base64 32`",
                bytes.len()
            )
        })?;
        if key.iter().all(|b| *b == key[0]) {
            return Err("is not random (every byte is the same)".to_owned());
        }
        MasterKey::from_bytes(&key)
    }

    fn from_bytes(key: &[u8; 32]) -> Result<MasterKey, String> {
        let key = UnboundKey::new(&AES_256_GCM, key)
            .map_err(|_| "is not usable as an AES-256 key".to_owned())?;
        Ok(MasterKey(std::sync::Arc::new(LessSafeKey::new(key))))
    }

    /// Seals `plain`, bound to `context` (which must be given again to open it).
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut sealed = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}{}", STANDARD.encode(out)))
    }

    /// Opens what [`MasterKey::seal`] sealed with the same `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let encoded = sealed.strip_prefix(VERSION).ok_or(SealError::Malformed)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SealError::Malformed)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::Malformed);
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SealError::WrongKey)?;
        Ok(plain.to_vec())
    }
}

/// A new space token: its public id (for listing and revoking) and its value, shown once.
pub fn new_token() -> Result<(String, Secret), SealError> {
    let mut id = [0u8; 6];
    let mut value = [0u8; 32];
    aws_lc_rs::rand::fill(&mut id).map_err(|_| SealError::Random)?;
    aws_lc_rs::rand::fill(&mut value).map_err(|_| SealError::Random)?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    Ok((
        format!("tok_{id}"),
        Secret::new(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(value))),
    ))
}

/// The SHA-256 of a token, as stored and as compared.
pub fn token_hash(token: &str) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.trim().as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// A hash as stored: 64 lowercase hex digits.
pub fn hash_text(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored hash read back; `None` when it is not 64 hex digits.
pub fn hash_from_text(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        let mut bytes = [byte; 32];
        bytes[0] = byte.wrapping_add(1);
        MasterKey::from_bytes(&bytes).expect("key")
    }

    #[test]
    fn sealed_values_open_with_their_key_and_context_only() {
        let sealed = key(7).seal("space acme", b"tk-us-secret").expect("seal");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("tk-us-secret"));
        assert_eq!(
            key(7).open("space acme", &sealed).expect("open"),
            b"tk-us-secret"
        );
        assert_eq!(key(8).open("space acme", &sealed), Err(SealError::WrongKey));
        assert_eq!(
            key(7).open("space globex", &sealed),
            Err(SealError::WrongKey)
        );
        // Each seal draws a new nonce.
        assert_ne!(
            sealed,
            key(7).seal("space acme", b"tk-us-secret").expect("seal")
        );
        // A changed byte does not open.
        let mut bytes = STANDARD.decode(&sealed[3..]).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let changed = format!("v1:{}", STANDARD.encode(bytes));
        assert_eq!(
            key(7).open("space acme", &changed),
            Err(SealError::WrongKey)
        );
        for bad in ["", "v1:", "v1:!!", "v2:AAAA", "v1:AAAA"] {
            assert_eq!(key(7).open("x", bad), Err(SealError::Malformed), "{bad}");
        }
    }

    #[test]
    fn master_keys_are_32_bytes_of_base64_or_hex() {
        let b64 = STANDARD.encode([3u8, 1, 4, 1, 5, 9, 2, 6].repeat(4));
        assert!(MasterKey::parse(&b64).is_ok());
        assert!(MasterKey::parse(b64.trim_end_matches('=')).is_ok());
        assert!(MasterKey::parse(&format!(" {b64}\n")).is_ok());
        let hex: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
        assert!(MasterKey::parse(&hex).is_ok());
        let short = STANDARD.encode([9u8; 16]);
        let error = MasterKey::parse(&short).expect_err("16 bytes");
        assert!(error.contains("found 16 bytes"), "{error}");
        assert!(!error.contains(&short));
        assert!(MasterKey::parse("not a key at all").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([0u8; 32])).is_err());
        assert_eq!(format!("{:?}", key(1)), "MasterKey(<redacted>)");
    }

    #[test]
    fn tokens_are_random_and_stored_as_hashes() {
        let (id, token) = new_token().expect("token");
        let (other_id, other) = new_token().expect("token");
        assert_ne!(id, other_id);
        assert_ne!(token.expose(), other.expose());
        assert!(token.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(token.expose().len(), TOKEN_PREFIX.len() + 43);
        let hash = token_hash(token.expose());
        assert_eq!(hash_from_text(&hash_text(&hash)), Some(hash));
        assert_ne!(hash, token_hash(other.expose()));
        assert!(!hash_text(&hash).contains(token.expose()));
        assert_eq!(hash_from_text("zz"), None);
    }
}
