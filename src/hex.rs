//! The one hex helper: lower-case hex of bytes (token digests, ETags, lock keys) and its
//! decoding (the SHA-256 digests in the configuration).

use sha2::{Digest, Sha256};

/// Lower-case hex of `bytes`, two digits per byte.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 (`printf %s "$TOKEN" | sha256sum`), also naming credentials without holding them.
pub fn sha256_hex(text: &str) -> String {
    encode(&Sha256::digest(text.as_bytes()))
}

/// Decodes exactly `N` bytes of hex (either case); `None` for any other length or character.
pub fn decode<const N: usize>(hex: &str) -> Option<[u8; N]> {
    if hex.len() != N.checked_mul(2)? {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_input() {
        assert_eq!(encode(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(decode::<3>("00AB10"), Some([0, 0xab, 0x10]));
        assert_eq!(decode::<3>("00ab1"), None);
        assert_eq!(decode::<2>("zz00"), None);
        assert_eq!(
            sha256_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
