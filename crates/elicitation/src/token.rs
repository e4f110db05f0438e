//! Agent identity: standard JWTs (HS256) whose `sub` is the agent id, signed with the app's
//! `token_secret`. Any JWT library can mint one; this module mints and verifies them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::Error;
use crate::time::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// Whether `id` is a valid agent id: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
pub fn is_valid_agent_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Signs a token for `agent`, valid until `expires` (whole seconds).
pub fn mint(secret: &[u8], agent: &str, issued: Timestamp, expires: Timestamp) -> String {
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = Claims {
        sub: agent.to_string(),
        exp: expires.0 / 1000,
        iat: Some(issued.0 / 1000),
    };
    let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let sig = B64.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies an `Authorization` header value and returns the agent id it proves.
pub fn verify_bearer(
    secret: &[u8],
    authorization: Option<&str>,
    now: Timestamp,
) -> Result<String, Error> {
    let token = bearer(authorization)?;
    verify(secret, token, now)
}

/// The token of a `Bearer` authorization header.
pub fn bearer(authorization: Option<&str>) -> Result<&str, Error> {
    let value = authorization
        .ok_or_else(|| Error::Unauthorized("send Authorization: Bearer <token>".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        Error::Unauthorized("the Authorization header must be `Bearer <token>`".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthorized(
            "the Authorization header must be `Bearer <token>`".into(),
        ));
    }
    Ok(token.trim())
}

/// Verifies a compact JWT and returns its `sub`.
pub fn verify(secret: &[u8], token: &str, now: Timestamp) -> Result<String, Error> {
    let bad = |why: &str| Error::Unauthorized(format!("invalid token: {why}"));
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not a compact JWT"));
    };
    let header: Header = B64
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("unreadable header"))?;
    if header.alg != "HS256" {
        return Err(bad("only HS256 tokens are accepted"));
    }
    let sig = B64.decode(s).map_err(|_| bad("unreadable signature"))?;
    let mut m = mac(secret);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    m.verify_slice(&sig)
        .map_err(|_| bad("signature does not match"))?;
    let claims: Claims = B64
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("unreadable claims (sub and exp are required)"))?;
    if claims.exp.saturating_mul(1000) <= now.0 {
        return Err(Error::Unauthorized("token expired".into()));
    }
    if !is_valid_agent_id(&claims.sub) {
        return Err(bad("sub is not a valid agent id"));
    }
    Ok(claims.sub)
}

fn purpose_mac(secret: &[u8], purpose: &str, data: &[u8]) -> HmacSha256 {
    let mut m = mac(secret);
    m.update(purpose.as_bytes());
    m.update(&[0]);
    m.update(data);
    m
}

/// A MAC of `data` for one `purpose` under the token secret (base64url, no padding): what the
/// server hands a client to bring back unchanged (the MCP gateway's relay request ids and MRTR
/// `requestState`). A tag for one purpose never verifies for another.
pub fn tag(secret: &[u8], purpose: &str, data: &[u8]) -> String {
    B64.encode(purpose_mac(secret, purpose, data).finalize().into_bytes())
}

/// Whether `tag` is [`tag`]`(secret, purpose, data)`, compared in constant time.
pub fn tag_matches(secret: &[u8], purpose: &str, data: &[u8], tag: &str) -> bool {
    B64.decode(tag)
        .is_ok_and(|t| purpose_mac(secret, purpose, data).verify_slice(&t).is_ok())
}

/// Constant-time comparison of two secrets (for the admin token).
pub fn secrets_match(a: &[u8], b: &[u8]) -> bool {
    // Compare MACs of both values under a fixed key: equal length, constant-time verify.
    let mut m = mac(b"lighthouse-admin-compare");
    m.update(a);
    let tag = m.finalize().into_bytes();
    let mut m = mac(b"lighthouse-admin-compare");
    m.update(b);
    m.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    #[test]
    fn minted_tokens_verify() {
        let t = mint(b"s3cret", "agent-1", NOW, NOW.plus_secs(60));
        assert_eq!(verify(b"s3cret", &t, NOW).unwrap(), "agent-1");
        assert_eq!(
            verify_bearer(b"s3cret", Some(&format!("Bearer {t}")), NOW).unwrap(),
            "agent-1"
        );
    }

    #[test]
    fn forged_expired_and_malformed_tokens_fail() {
        let t = mint(b"s3cret", "a", NOW, NOW.plus_secs(60));
        assert!(verify(b"other", &t, NOW).is_err());
        assert!(verify(b"s3cret", &t, NOW.plus_secs(61)).is_err());
        let forged_claims = format!(
            "{}.{}.{}",
            t.split('.').next().unwrap(),
            B64.encode(br#"{"sub":"b","exp":9999999999}"#),
            t.split('.').nth(2).unwrap()
        );
        assert!(verify(b"s3cret", &forged_claims, NOW).is_err());
        let none_alg = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none"}"#),
            B64.encode(br#"{"sub":"a","exp":9999999999}"#)
        );
        assert!(verify(b"s3cret", &none_alg, NOW).is_err());
        assert!(verify_bearer(b"s3cret", None, NOW).is_err());
        assert!(verify_bearer(b"s3cret", Some("Basic abc"), NOW).is_err());
        assert!(verify(b"s3cret", "a.b", NOW).is_err());
    }

    #[test]
    fn agent_ids() {
        assert!(is_valid_agent_id("a"));
        assert!(is_valid_agent_id("Agent.1_x-y"));
        assert!(is_valid_agent_id(&"a".repeat(64)));
        assert!(!is_valid_agent_id(&"a".repeat(65)));
        assert!(!is_valid_agent_id(""));
        assert!(!is_valid_agent_id("-a"));
        assert!(!is_valid_agent_id("a b"));
        assert!(!is_valid_agent_id("a/b"));
    }

    #[test]
    fn secret_comparison() {
        assert!(secrets_match(b"abc", b"abc"));
        assert!(!secrets_match(b"abc", b"abd"));
        assert!(!secrets_match(b"abc", b"ab"));
    }
}
