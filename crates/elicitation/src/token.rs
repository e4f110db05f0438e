//! Agent identity: standard JWTs (HS256) whose `sub` is the agent id, signed with the app's
//! `token_secret`, with `iss` and `aud` the app's `token_issuer` and `token_audience`, and `iat`
//! (required), `nbf` (optional) and `exp` (required) checked with [`LEEWAY_SECONDS`] of clock skew.
//! Any JWT library can mint one; this module mints and verifies them. `iat` may carry a fraction
//! of a second (RFC 7519 NumericDate), which this module writes, so a revocation
//! ([`revoked`]) can tell a token minted just before it from one minted just after.

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
    iss: String,
    aud: Audience,
    exp: u64,
    iat: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<f64>,
}

/// `aud`: one audience or several.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// How far the clocks of whoever mints a token and of this app may disagree (`nbf`, `iat`).
pub const LEEWAY_SECONDS: u64 = 60;

/// Who a token is for: its issuer and audience must be these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realm {
    /// `iss`.
    pub issuer: String,
    /// `aud` (or one of them).
    pub audience: String,
}

/// What a verified token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The agent (`sub`).
    pub agent: String,
    /// When it was issued (`iat`, ms).
    pub issued: Timestamp,
    /// When it expires (`exp`, ms).
    pub expires: Timestamp,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Signs a token for `agent` in `realm`, issued at `issued` (to the millisecond), valid until
/// `expires` (whole seconds).
pub fn mint(
    secret: &[u8],
    realm: &Realm,
    agent: &str,
    issued: Timestamp,
    expires: Timestamp,
) -> String {
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    #[allow(
        clippy::cast_precision_loss,
        reason = "milliseconds since 1970 fit f64 exactly"
    )]
    let claims = Claims {
        sub: agent.to_string(),
        iss: realm.issuer.clone(),
        aud: Audience::One(realm.audience.clone()),
        exp: expires.0 / 1000,
        iat: issued.0 as f64 / 1000.0,
        nbf: None,
    };
    let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let sig = B64.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Verifies an `Authorization` header value and returns what it proves.
pub fn verify_bearer(
    secret: &[u8],
    realm: &Realm,
    authorization: Option<&str>,
    now: Timestamp,
) -> Result<Verified, Error> {
    let token = bearer(authorization)?;
    verify(secret, realm, token, now)
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

/// Verifies a compact JWT: its signature, issuer, audience and times.
pub fn verify(
    secret: &[u8],
    realm: &Realm,
    token: &str,
    now: Timestamp,
) -> Result<Verified, Error> {
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
        .ok_or_else(|| bad("unreadable claims (sub, iss, aud, iat and exp are required)"))?;
    if claims.iss != realm.issuer {
        return Err(bad("iss is not this app's issuer"));
    }
    let audiences = match &claims.aud {
        Audience::One(a) => std::slice::from_ref(a),
        Audience::Many(a) => a.as_slice(),
    };
    if !audiences.contains(&realm.audience) {
        return Err(bad("aud does not name this app"));
    }
    let millis = |t: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped to the range of u64 first"
        )]
        let ms = (t * 1000.0).clamp(0.0, u64::MAX as f64) as u64;
        ms
    };
    let skew = now.plus_secs(LEEWAY_SECONDS).0;
    if !claims.iat.is_finite() || millis(claims.iat) > skew {
        return Err(bad("iat is in the future"));
    }
    if claims
        .nbf
        .is_some_and(|nbf| !nbf.is_finite() || millis(nbf) > skew)
    {
        return Err(Error::Unauthorized("token not valid yet (nbf)".into()));
    }
    if claims.exp.saturating_mul(1000) <= now.0 {
        return Err(Error::Unauthorized("token expired".into()));
    }
    if !is_valid_agent_id(&claims.sub) {
        return Err(bad("sub is not a valid agent id"));
    }
    Ok(Verified {
        agent: claims.sub,
        issued: Timestamp(millis(claims.iat)),
        expires: Timestamp(claims.exp.saturating_mul(1000)),
    })
}

/// Whether `token` was taken back by a revocation of its agent recorded at `revoked_at` (ms):
/// every token issued up to that moment is.
pub fn revoked(token: &Verified, revoked_at: Option<Timestamp>) -> bool {
    revoked_at.is_some_and(|at| token.issued <= at)
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

    const NOW: Timestamp = Timestamp(1_800_000_000_123);

    fn realm() -> Realm {
        Realm {
            issuer: "lh".into(),
            audience: "lh-app".into(),
        }
    }

    fn verify(secret: &[u8], token: &str, now: Timestamp) -> Result<Verified, Error> {
        super::verify(secret, &realm(), token, now)
    }

    /// A token with these claims, signed with `s3cret`.
    fn signed(claims: &str) -> String {
        let h = B64.encode(br#"{"alg":"HS256"}"#);
        let p = B64.encode(claims.as_bytes());
        let mut m = mac(b"s3cret");
        m.update(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", B64.encode(m.finalize().into_bytes()))
    }

    #[test]
    fn minted_tokens_verify() {
        let t = mint(b"s3cret", &realm(), "agent-1", NOW, NOW.plus_secs(60));
        let v = verify(b"s3cret", &t, NOW).unwrap();
        assert_eq!(v.agent, "agent-1");
        // Issued to the millisecond, so a revocation a moment later takes it back.
        assert_eq!(v.issued, NOW);
        assert!(revoked(&v, Some(NOW)));
        assert!(!revoked(&v, Some(Timestamp(NOW.0 - 1))));
        assert!(!revoked(&v, None));
        assert_eq!(
            verify_bearer(b"s3cret", &realm(), Some(&format!("Bearer {t}")), NOW)
                .unwrap()
                .agent,
            "agent-1"
        );
    }

    #[test]
    fn issuer_audience_and_times_are_checked_with_leeway() {
        let now = NOW.0 / 1000;
        let ok = |claims: &str| verify(b"s3cret", &signed(claims), NOW);
        let exp = now + 600;
        assert!(
            ok(&format!(
                r#"{{"sub":"a","iss":"lh","aud":"lh-app","iat":{now},"exp":{exp}}}"#
            ))
            .is_ok()
        );
        assert!(
            ok(&format!(
                r#"{{"sub":"a","iss":"lh","aud":["x","lh-app"],"iat":{now},"exp":{exp}}}"#
            ))
            .is_ok()
        );
        for bad in [
            format!(r#"{{"sub":"a","iss":"other","aud":"lh-app","iat":{now},"exp":{exp}}}"#),
            format!(r#"{{"sub":"a","iss":"lh","aud":"other","iat":{now},"exp":{exp}}}"#),
            format!(r#"{{"sub":"a","aud":"lh-app","iat":{now},"exp":{exp}}}"#),
            format!(r#"{{"sub":"a","iss":"lh","iat":{now},"exp":{exp}}}"#),
            format!(r#"{{"sub":"a","iss":"lh","aud":"lh-app","exp":{exp}}}"#),
            // Issued, or valid from, beyond the leeway in the future.
            format!(
                r#"{{"sub":"a","iss":"lh","aud":"lh-app","iat":{},"exp":{exp}}}"#,
                now + 61
            ),
            format!(
                r#"{{"sub":"a","iss":"lh","aud":"lh-app","iat":{now},"nbf":{},"exp":{exp}}}"#,
                now + 61
            ),
        ] {
            assert!(ok(&bad).is_err(), "{bad}");
        }
        // Within the leeway: accepted.
        assert!(
            ok(&format!(
                r#"{{"sub":"a","iss":"lh","aud":"lh-app","iat":{},"nbf":{},"exp":{exp}}}"#,
                now + 30,
                now + 30
            ))
            .is_ok()
        );
    }

    #[test]
    fn forged_expired_and_malformed_tokens_fail() {
        let t = mint(b"s3cret", &realm(), "a", NOW, NOW.plus_secs(60));
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
        assert!(verify_bearer(b"s3cret", &realm(), None, NOW).is_err());
        assert!(verify_bearer(b"s3cret", &realm(), Some("Basic abc"), NOW).is_err());
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
