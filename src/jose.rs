//! Proof of possession, the pure part: the JSON Web Signatures a client signs to prove it holds
//! a key — a `private_key_jwt` client assertion (RFC 7523 §2.2 and §3, OpenID Connect Core §9)
//! and a DPoP proof (RFC 9449 §4.2) — built here as the JWS signing input (RFC 7515 §5.1);
//! the shells sign it with WebCrypto (`crypto.subtle`), whose ECDSA signature is already the
//! JWS form (R ‖ S, RFC 7518 §3.4), and [`compact`] joins the two.
//!
//! Also the static checks of a configured key (a JWK or a PKCS#8 PEM: its type against the
//! algorithm, never its material in a message), the public JWK a DPoP proof carries, and how a
//! server asks for a DPoP nonce (RFC 9449 §8 and §9).

use crate::http::HttpResponse;
use crate::secret::Secret;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid, seconds: short, since each token request signs a new
/// one (RFC 7523 §3 item 4 asks for an expiry; OpenID Connect Core §9 for a unique `jti`).
pub const ASSERTION_LIFETIME_S: u64 = 60;

/// A JWS algorithm tokengate signs with (RFC 7518 §3.1), as WebCrypto names its parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JwsAlg {
    /// ECDSA with P-256 and SHA-256; the default.
    #[default]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (salt of 32 bytes, RFC 7518 §3.5).
    Ps256,
}

impl JwsAlg {
    /// The JWS `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlg::Es256 => "ES256",
            JwsAlg::Rs256 => "RS256",
            JwsAlg::Ps256 => "PS256",
        }
    }

    /// The algorithm named `s` (`ES256`, `RS256` or `PS256`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(JwsAlg::Es256),
            "RS256" => Some(JwsAlg::Rs256),
            "PS256" => Some(JwsAlg::Ps256),
            _ => None,
        }
    }

    /// The JWK `kty` of its keys.
    pub fn kty(self) -> &'static str {
        match self {
            JwsAlg::Es256 => "EC",
            JwsAlg::Rs256 | JwsAlg::Ps256 => "RSA",
        }
    }
}

/// A private key as configured, checked against its algorithm.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// A private JWK (RFC 7517), as given.
    Jwk(Map<String, Value>),
    /// A PKCS#8 `PrivateKeyInfo` (RFC 5208), DER, from a `-----BEGIN PRIVATE KEY-----` PEM.
    Pkcs8(Vec<u8>),
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyMaterial::Jwk(_) => "KeyMaterial::Jwk(…)",
            KeyMaterial::Pkcs8(_) => "KeyMaterial::Pkcs8(…)",
        })
    }
}

impl KeyMaterial {
    /// Reads a configured key — a private JWK as JSON text or a PKCS#8 PEM — for `alg`. The
    /// error says what is wrong and never quotes the key.
    pub fn parse(text: &str, alg: JwsAlg) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('{') {
            let value: Value = serde_json::from_str(text)
                .map_err(|_| "is not a readable JWK (invalid JSON)".to_string())?;
            return Self::from_jwk(&value, alg);
        }
        if text.starts_with("-----BEGIN") {
            return Self::from_pem(text, alg);
        }
        Err("must be a private JWK (JSON) or a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)".into())
    }

    /// A private JWK given as a JSON value (the npm package's `clientKey` object), for `alg`.
    pub fn from_jwk(value: &Value, alg: JwsAlg) -> Result<Self, String> {
        let jwk = value
            .as_object()
            .ok_or_else(|| "is not a readable JWK (not an object)".to_string())?;
        let text = |k: &str| jwk.get(k).and_then(Value::as_str);
        let kty = text("kty").ok_or_else(|| "is not a readable JWK (no kty)".to_string())?;
        if kty != alg.kty() {
            return Err(format!(
                "is a {kty} key, which {} cannot use (it needs a {} key)",
                alg.as_str(),
                alg.kty()
            ));
        }
        if alg == JwsAlg::Es256 && text("crv") != Some("P-256") {
            return Err("is an EC key on another curve than P-256, which ES256 needs".into());
        }
        let needed: &[&str] = match alg {
            JwsAlg::Es256 => &["x", "y", "d"],
            _ => &["n", "e", "d"],
        };
        if let Some(k) = needed.iter().find(|k| text(k).is_none_or(str::is_empty)) {
            return Err(if *k == "d" {
                "is a public key; a private key is needed to sign".into()
            } else {
                format!("is not a readable JWK (no `{k}`)")
            });
        }
        if let Some(a) = text("alg") {
            if a != alg.as_str() {
                return Err(format!("says alg {a}, but {} is configured", alg.as_str()));
            }
        }
        Ok(KeyMaterial::Jwk(jwk.clone()))
    }

    fn from_pem(text: &str, alg: JwsAlg) -> Result<Self, String> {
        const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
        const END: &str = "-----END PRIVATE KEY-----";
        let body = text
            .strip_prefix(BEGIN)
            .and_then(|rest| rest.trim_end().strip_suffix(END))
            .ok_or_else(|| {
                "must be a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----); convert an RSA or EC PEM \
                 with `openssl pkcs8 -topk8 -nocrypt`"
                    .to_string()
            })?;
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| "is not a readable PEM (invalid base64)".to_string())?;
        // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, OCTET STRING } (RFC 5208
        // §5): the algorithm's OID comes in the first few dozen bytes.
        const RSA: &[u8] = &[6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1];
        const EC: &[u8] = &[6, 7, 0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1];
        const P256: &[u8] = &[6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7];
        let head = &der[..der.len().min(40)];
        let has = |oid: &[u8]| head.windows(oid.len()).any(|w| w == oid);
        let kty = if has(RSA) {
            "RSA"
        } else if has(EC) {
            "EC"
        } else {
            return Err("is not an RSA or EC PKCS#8 key".into());
        };
        if kty != alg.kty() {
            return Err(format!(
                "is a {kty} key, which {} cannot use (it needs a {} key)",
                alg.as_str(),
                alg.kty()
            ));
        }
        if kty == "EC" && !has(P256) {
            return Err("is an EC key on another curve than P-256, which ES256 needs".into());
        }
        Ok(KeyMaterial::Pkcs8(der))
    }

    /// The algorithm a DPoP key signs with: ES256 for an EC key, PS256 for an RSA key.
    pub fn dpop_alg(text: &str) -> JwsAlg {
        match Self::parse(text, JwsAlg::Es256) {
            Ok(_) => JwsAlg::Es256,
            Err(_) => JwsAlg::Ps256,
        }
    }
}

/// The public members of a JWK (RFC 7638 §3.2: `crv`, `kty`, `x`, `y` for EC; `e`, `kty`,
/// `n` for RSA) — what a DPoP proof's header carries, never a private member.
pub fn public_jwk(jwk: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for k in ["crv", "e", "kty", "n", "x", "y"] {
        if let Some(v) = jwk.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// The members of a private JWK that WebCrypto's `importKey` reads (RFC 7518 §6.2 and §6.3),
/// and no other: an `alg`, `use`, `key_ops`, `ext` or `kid` some tool wrote cannot make the
/// import fail.
pub fn importable_jwk(jwk: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for k in [
        "kty", "crv", "x", "y", "d", "n", "e", "p", "q", "dp", "dq", "qi",
    ] {
        if let Some(v) = jwk.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    out
}

/// The JWK thumbprint of a public JWK (RFC 7638 §3): SHA-256 of its required members in
/// lexicographic order, without whitespace, base64url.
pub fn jwk_thumbprint(jwk: &Value) -> String {
    let public = match jwk.as_object() {
        Some(m) => public_jwk(m),
        None => Value::Null,
    };
    // serde_json's maps are sorted by key, and `to_string` adds no whitespace.
    b64url(&Sha256::digest(public.to_string().as_bytes()))
}

/// base64url without padding (RFC 7515 §2).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWS signing input `BASE64URL(header) "." BASE64URL(claims)` (RFC 7515 §5.1).
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// The compact JWS: `signing_input "." BASE64URL(signature)`.
pub fn compact(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", b64url(signature))
}

/// The header of a client assertion.
pub fn assertion_header(alg: JwsAlg, kid: Option<&str>) -> Value {
    let mut h = json!({"alg": alg.as_str(), "typ": "JWT"});
    if let Some(kid) = kid {
        h["kid"] = Value::String(kid.into());
    }
    h
}

/// The claims of a client assertion (RFC 7523 §3): `iss` and `sub` the client id, `aud` the
/// token endpoint (or the configured audience), a unique `jti`, `iat` now and `exp`
/// [`ASSERTION_LIFETIME_S`] later.
pub fn assertion_claims(client_id: &str, audience: &str, jti: &str, now_s: u64) -> Value {
    json!({
        "iss": client_id, "sub": client_id, "aud": audience, "jti": jti,
        "iat": now_s, "exp": now_s + ASSERTION_LIFETIME_S,
    })
}

/// The header of a DPoP proof (RFC 9449 §4.2): `typ` `dpop+jwt`, the algorithm and the public
/// key.
pub fn dpop_header(alg: JwsAlg, public_jwk: &Value) -> Value {
    json!({"typ": "dpop+jwt", "alg": alg.as_str(), "jwk": public_jwk})
}

/// The claims of a DPoP proof (RFC 9449 §4.2): `jti`, `htm`, `htu` (the URL without query and
/// fragment), `iat`, and `ath` (the access token's SHA-256, base64url) on a request that
/// carries one, `nonce` when the server gave one.
pub fn dpop_claims(
    method: &str,
    url: &str,
    jti: &str,
    now_s: u64,
    access_token: Option<&Secret>,
    nonce: Option<&str>,
) -> Value {
    let mut c = json!({"jti": jti, "htm": method, "htu": htu(url), "iat": now_s});
    if let Some(t) = access_token {
        c["ath"] = Value::String(ath(t));
    }
    if let Some(n) = nonce {
        c["nonce"] = Value::String(n.into());
    }
    c
}

/// `htu`: the request URL without its query and fragment (RFC 9449 §4.2; §4.3 compares it so).
pub fn htu(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or(url).to_string(),
    }
}

/// `ath`: base64url of the SHA-256 of the access token (RFC 9449 §4.2).
pub fn ath(token: &Secret) -> String {
    b64url(&Sha256::digest(token.expose().as_bytes()))
}

/// A nonce the server supplied (`DPoP-Nonce`, RFC 9449 §8.1 and §9.1): a server may send a new
/// one with any response. Only a value of the header's grammar (`1*NQCHAR`) is kept.
pub fn supplied_nonce(resp: &HttpResponse) -> Option<String> {
    nonce_value(resp.header("dpop-nonce"))
}

/// A `DPoP-Nonce` header value, if it has the header's grammar (`1*NQCHAR`, RFC 9449 §8.1).
pub fn nonce_value(header: Option<&str>) -> Option<String> {
    let n = header?.trim();
    let ok = !n.is_empty() && n.len() <= 1024 && n.bytes().all(|b| (0x21..=0x7e).contains(&b));
    ok.then(|| n.to_string())
}

/// Whether a token endpoint's answer asks for a nonce: 400 with `error` `use_dpop_nonce`
/// (RFC 9449 §8).
pub fn token_endpoint_wants_nonce(resp: &HttpResponse) -> bool {
    resp.status == 400
        && crate::json_from_bytes(&resp.body)
            .and_then(|v: Value| v.get("error").and_then(Value::as_str).map(String::from))
            .is_some_and(|e| e == "use_dpop_nonce")
}

/// Whether a resource server's 401 asks for a nonce: `WWW-Authenticate: DPoP
/// error="use_dpop_nonce"` (RFC 9449 §9).
pub fn api_wants_nonce(status: u16, www_authenticate: Option<&str>) -> bool {
    status == 401
        && www_authenticate.is_some_and(|h| {
            let h = h.to_ascii_lowercase();
            h.contains("dpop") && h.contains("use_dpop_nonce")
        })
}

/// What an API call with a DPoP proof does after an answer (RFC 9449 §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceStep {
    /// The answer is not about a nonce: the call's own rules decide.
    Proceed,
    /// A 401 asking for a nonce it supplied, the first of this call, and the body can be sent
    /// again: send it once more, with a proof carrying the nonce.
    Resend,
    /// A nonce request that cannot be answered again (asked before in this call, or a body
    /// that cannot be replayed): the caller gets the 401 as it is. It is about the proof, not
    /// the token: the token is neither dropped nor reported as refused.
    CallersAnswer,
}

/// The step after an API answer with `status` and `WWW-Authenticate` `www_authenticate`, which
/// supplied a usable nonce (`supplied`, see [`nonce_value`]), in a call that has (`asked`) or
/// has not yet resent for a nonce, with a body that can (`replayable`) or cannot be sent again.
pub fn api_nonce_step(
    status: u16,
    www_authenticate: Option<&str>,
    supplied: bool,
    asked: bool,
    replayable: bool,
) -> NonceStep {
    if !(supplied && api_wants_nonce(status, www_authenticate)) {
        NonceStep::Proceed
    } else if asked || !replayable {
        NonceStep::CallersAnswer
    } else {
        NonceStep::Resend
    }
}

/// Whether a token endpoint's answer is an `invalid_client` refusal (RFC 6749 §5.2), which a
/// replayed or expired client assertion earns: worth one more request with a new assertion.
pub fn refused_client(resp: &HttpResponse) -> bool {
    matches!(resp.status, 400 | 401)
        && crate::json_from_bytes(&resp.body)
            .and_then(|v: Value| v.get("error").and_then(Value::as_str).map(String::from))
            .is_some_and(|e| e == "invalid_client")
}

#[cfg(test)]
mod tests;
