//! Proof of possession in the Worker: the keys a provider signs with — its client key
//! (`private_key_jwt`) and its DPoP key — as [`JwsSigner`]s over WebCrypto (`crypto.subtle`),
//! bound directly (one `wasm-bindgen` import per method, no `web_sys` crypto types). The core
//! builds every signing input ([`tokengate::jose`]); this file only imports keys and signs.
//!
//! A configured key (a Worker secret: a private JWK or a PKCS#8 PEM, checked at start-up by
//! [`KeyMaterial::parse`]) is imported once per isolate, on first use, non-extractable. A DPoP
//! proof carries the public key: from a JWK it is the JWK's public members; from a PEM the key is
//! imported once extractable, its JWK exported and cut to the public members, and the key
//! imported again non-extractable for signing. A DPoP key with no secret is generated per
//! isolate (ECDSA P-256, the private key non-extractable) and lives in memory only.

use crate::js;
use crate::runtime::random_bytes;
use futures::future::LocalBoxFuture;
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use serde_json::{Map, Value};
use std::cell::RefCell;
use tokengate::flow::JwsSigner;
use tokengate::jose::{self, JwsAlg, KeyMaterial};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen]
extern "C" {
    /// `crypto.subtle`.
    type SubtleCrypto;

    #[wasm_bindgen(method, catch, js_name = importKey)]
    fn import_key(
        this: &SubtleCrypto,
        format: &str,
        key: &JsValue,
        algorithm: &Object,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = exportKey)]
    fn export_key(this: &SubtleCrypto, format: &str, key: &JsValue) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = generateKey)]
    fn generate_key(
        this: &SubtleCrypto,
        algorithm: &Object,
        extractable: bool,
        usages: &Array,
    ) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch, js_name = sign)]
    fn sign_bytes(
        this: &SubtleCrypto,
        algorithm: &Object,
        key: &JsValue,
        data: &Uint8Array,
    ) -> Result<Promise, JsValue>;
}

fn subtle() -> Result<SubtleCrypto, String> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|_| "crypto is unavailable".to_string())?;
    let subtle = Reflect::get(&crypto, &JsValue::from_str("subtle"))
        .ok()
        .filter(|s| s.is_object())
        .ok_or("crypto.subtle is unavailable")?;
    Ok(subtle.unchecked_into())
}

/// A WebCrypto promise's value; an error as what the platform says (its messages name the
/// problem, never the key's bytes), prefixed with what was being done.
async fn settled(what: &str, p: Result<Promise, JsValue>) -> Result<JsValue, String> {
    js::settle_promise(p)
        .await
        .map_err(|e| format!("{what} failed: {e}"))
}

/// An object of string members, the form WebCrypto's algorithm parameters take.
fn params(members: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in members {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

/// The algorithm a key of `alg` is imported (or generated) with.
fn import_params(alg: JwsAlg) -> Object {
    match alg {
        JwsAlg::Es256 => params(&[("name", s("ECDSA")), ("namedCurve", s("P-256"))]),
        JwsAlg::Rs256 => params(&[("name", s("RSASSA-PKCS1-v1_5")), ("hash", s("SHA-256"))]),
        JwsAlg::Ps256 => params(&[("name", s("RSA-PSS")), ("hash", s("SHA-256"))]),
    }
}

/// The algorithm `alg` signs with: ECDSA's signature is already the JWS form (R ‖ S); PSS with
/// a salt as long as the hash (RFC 7518 §3.5).
fn sign_params(alg: JwsAlg) -> Object {
    match alg {
        JwsAlg::Es256 => params(&[("name", s("ECDSA")), ("hash", s("SHA-256"))]),
        JwsAlg::Rs256 => params(&[("name", s("RSASSA-PKCS1-v1_5"))]),
        JwsAlg::Ps256 => params(&[("name", s("RSA-PSS")), ("saltLength", 32.into())]),
    }
}

fn usages(list: &[&str]) -> Array {
    list.iter().map(|u| JsValue::from_str(u)).collect()
}

/// Imports `material` for `alg`, extractable or not.
async fn import(
    subtle: &SubtleCrypto,
    material: &KeyMaterial,
    alg: JwsAlg,
    extractable: bool,
) -> Result<JsValue, String> {
    let (format, data) = match material {
        KeyMaterial::Jwk(jwk) => {
            let members = Value::Object(jose::importable_jwk(jwk)).to_string();
            let data = js_sys::JSON::parse(&members).map_err(|_| "the JWK is unreadable")?;
            ("jwk", data)
        }
        KeyMaterial::Pkcs8(der) => ("pkcs8", Uint8Array::from(der.as_slice()).into()),
    };
    let params = import_params(alg);
    settled(
        "importing the key",
        subtle.import_key(format, &data, &params, extractable, &usages(&["sign"])),
    )
    .await
}

/// The public members of a key's exported JWK.
async fn exported_public_jwk(subtle: &SubtleCrypto, key: &JsValue) -> Result<Value, String> {
    let jwk = settled("exporting the public key", subtle.export_key("jwk", key)).await?;
    js_sys::JSON::stringify(&jwk)
        .ok()
        .and_then(|t| t.as_string())
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(&t).ok())
        .map(|m| jose::public_jwk(&m))
        .ok_or_else(|| "the exported key is unreadable".to_string())
}

/// Where a signer's key comes from.
enum Origin {
    /// A configured key (a Worker secret).
    Configured(KeyMaterial),
    /// Generated in this isolate on first use (a DPoP key without `dpop_key_name`).
    Generated,
}

/// The key, once imported or generated: the private `CryptoKey` (non-extractable) and, for a
/// DPoP key, the public JWK.
#[derive(Clone)]
struct Ready {
    private: JsValue,
    public_jwk: Option<Value>,
}

/// A provider key that signs with WebCrypto (see the module documentation).
pub struct WebCryptoSigner {
    alg: JwsAlg,
    kid: Option<String>,
    origin: Origin,
    /// Whether proofs need its public JWK (a DPoP key).
    dpop: bool,
    ready: RefCell<Option<Ready>>,
}

impl WebCryptoSigner {
    /// A client key (`private_key_jwt`): `material` (checked for `alg`), its `kid`.
    pub fn client_key(material: KeyMaterial, alg: JwsAlg, kid: Option<String>) -> Self {
        Self::new(alg, kid, Origin::Configured(material), false)
    }

    /// A configured DPoP key (checked for `alg`).
    pub fn dpop_key(material: KeyMaterial, alg: JwsAlg) -> Self {
        Self::new(alg, None, Origin::Configured(material), true)
    }

    /// A DPoP key this isolate generates on first use (ES256).
    pub fn generated_dpop_key() -> Self {
        Self::new(JwsAlg::Es256, None, Origin::Generated, true)
    }

    fn new(alg: JwsAlg, kid: Option<String>, origin: Origin, dpop: bool) -> Self {
        WebCryptoSigner {
            alg,
            kid,
            origin,
            dpop,
            ready: RefCell::new(None),
        }
    }

    /// The key, imported or generated on first use and kept for the isolate's life. Two
    /// requests that both find it missing both make it; the last one kept is used from then on
    /// (no promise is shared between requests).
    async fn ready(&self) -> Result<Ready, String> {
        if let Some(r) = self.ready.borrow().as_ref() {
            return Ok(r.clone());
        }
        let subtle = subtle()?;
        let ready = match &self.origin {
            Origin::Configured(material) => {
                let public_jwk = match (self.dpop, material) {
                    (false, _) => None,
                    (true, KeyMaterial::Jwk(jwk)) => Some(jose::public_jwk(jwk)),
                    (true, KeyMaterial::Pkcs8(_)) => {
                        // Extractable only for as long as it takes to read its public members.
                        let key = import(&subtle, material, self.alg, true).await?;
                        Some(exported_public_jwk(&subtle, &key).await?)
                    }
                };
                let private = import(&subtle, material, self.alg, false).await?;
                Ready {
                    private,
                    public_jwk,
                }
            }
            Origin::Generated => {
                let pair = settled(
                    "generating the DPoP key",
                    subtle.generate_key(
                        &import_params(JwsAlg::Es256),
                        false,
                        &usages(&["sign", "verify"]),
                    ),
                )
                .await?;
                let member = |k: &str| {
                    Reflect::get(&pair, &JsValue::from_str(k))
                        .ok()
                        .filter(|v| v.is_object())
                        .ok_or_else(|| "the generated key pair is incomplete".to_string())
                };
                let (private, public) = (member("privateKey")?, member("publicKey")?);
                Ready {
                    private,
                    public_jwk: Some(exported_public_jwk(&subtle, &public).await?),
                }
            }
        };
        *self.ready.borrow_mut() = Some(ready.clone());
        Ok(ready)
    }
}

impl JwsSigner for WebCryptoSigner {
    fn alg(&self) -> JwsAlg {
        self.alg
    }

    fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn public_jwk(&self) -> LocalBoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            self.ready()
                .await?
                .public_jwk
                .ok_or_else(|| "a client key has no public JWK here".to_string())
        })
    }

    fn sign(&self, input: Vec<u8>) -> LocalBoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let key = self.ready().await?.private;
            let data = Uint8Array::from(input.as_slice());
            let sig = settled(
                "signing",
                subtle()?.sign_bytes(&sign_params(self.alg), &key, &data),
            )
            .await?;
            sig.dyn_into::<js_sys::ArrayBuffer>()
                .map(|b| Uint8Array::new(&b).to_vec())
                .map_err(|_| "the signature is not bytes".to_string())
        })
    }

    fn jti(&self) -> String {
        jose::b64url(&random_id::<16>())
    }
}

/// `N` bytes from the platform's CSPRNG. Without one nothing unguessable can be made: the
/// isolate stops (the platform restarts it) rather than sign a predictable `jti`.
pub fn random_id<const N: usize>() -> [u8; N] {
    random_bytes::<N>().unwrap_or_else(|| std::process::abort())
}
