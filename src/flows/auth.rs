//! Bearer-token authentication. The configuration holds SHA-256 digests only; the presented
//! token is hashed and compared against every configured digest in constant time.

use crate::config::TokenDigest;
use crate::scim::error::ScimError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Returns the label of the token that matches the `Authorization` header.
pub fn authenticate<'a>(
    authorization: Option<&str>,
    tokens: &'a [TokenDigest],
) -> Result<&'a str, ScimError> {
    let header = authorization.ok_or_else(|| {
        ScimError::unauthorized("Authentication required: send `Authorization: Bearer <token>`.")
    })?;
    let (scheme, token) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ScimError::unauthorized(
            "Unsupported authorization scheme: use `Authorization: Bearer <token>`.",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ScimError::unauthorized("The bearer token is empty."));
    }
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    // Check every digest (no early exit) so timing does not reveal which one matched.
    let mut matched: Option<&str> = None;
    for t in tokens {
        if bool::from(t.sha256.ct_eq(&digest)) && matched.is_none() {
            matched = Some(t.label.as_str());
        }
    }
    matched.ok_or_else(|| ScimError::unauthorized("The bearer token is not valid."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex::sha256_hex;

    fn tokens() -> Vec<TokenDigest> {
        ["old-token", "new-token"]
            .iter()
            .zip(["old", "new"])
            .map(|(t, label)| TokenDigest {
                label: label.into(),
                sha256: Sha256::digest(t.as_bytes()).into(),
            })
            .collect()
    }

    #[test]
    fn both_rotation_tokens_authenticate_with_their_label() {
        let t = tokens();
        assert_eq!(authenticate(Some("Bearer old-token"), &t).unwrap(), "old");
        assert_eq!(authenticate(Some("bearer new-token"), &t).unwrap(), "new");
    }

    #[test]
    fn missing_wrong_and_other_schemes_are_401() {
        let t = tokens();
        for h in [
            None,
            Some("Bearer nope"),
            Some("Basic b2xkLXRva2Vu"),
            Some("Bearer "),
            Some("old-token"),
        ] {
            let e = authenticate(h, &t).unwrap_err();
            assert_eq!(e.status, 401, "{h:?}");
            assert!(e
                .headers
                .iter()
                .any(|(n, v)| n == "www-authenticate" && v.starts_with("Bearer")));
        }
    }

    #[test]
    fn hex_digest_matches_sha256sum() {
        assert_eq!(
            sha256_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
