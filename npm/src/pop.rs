//! Proof of possession for the npm package: the keys of `authStyle: 'private_key_jwt'`
//! (`clientKey`) and of `dpop: true` (`dpopKey`), checked here with the core's rules, and
//! signed by the façade with WebCrypto (`crypto.subtle`) through `host.keys`:
//!
//! - `keys.sign(role, alg, input)` → a promise of the JWS signature (`Uint8Array`);
//! - `keys.publicJwk(role, alg)` → a promise of the key's JWK as WebCrypto exports it (DPoP
//!   only, for a key given as PEM, as a `CryptoKeyPair`, or generated; its public members are
//!   kept here);
//! - `keys.cryptoKey.client` / `keys.cryptoKey.dpop`: the alg of a `CryptoKey` (or key pair)
//!   the user gave instead of key material, which the façade kept out of the config.
//!
//! `role` is `"client"` or `"dpop"`.

use crate::error::config_key_error;
use crate::host::{get, message_of};
use futures::future::LocalBoxFuture;
use js_sys::{Function, Promise, Uint8Array};
use serde_json::Value;
use tokengate::flow::JwsSigner;
use tokengate::jose::{self, JwsAlg, KeyMaterial};
use tokengate::secret::Secret;
use tokengate::TokenSettings;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// One configured key: its algorithm, its material (none for a `CryptoKey` or a generated DPoP
/// key) and what identifies it in the cache key.
pub(crate) struct KeySpec {
    pub(crate) alg: JwsAlg,
    pub(crate) material: Option<KeyMaterial>,
    pub(crate) identity: Secret,
}

/// A key the façade signs with.
pub(crate) struct HostKey {
    role: &'static str,
    alg: JwsAlg,
    kid: Option<String>,
    keys: JsValue,
    /// The public JWK, when the key came as a JWK (no need to ask the façade).
    public_jwk: Option<Value>,
}

impl HostKey {
    pub(crate) fn new(
        role: &'static str,
        alg: JwsAlg,
        kid: Option<String>,
        keys: &JsValue,
        material: Option<&KeyMaterial>,
    ) -> Self {
        HostKey {
            role,
            alg,
            kid,
            keys: keys.clone(),
            public_jwk: match material {
                Some(KeyMaterial::Jwk(jwk)) => Some(jose::public_jwk(jwk)),
                _ => None,
            },
        }
    }

    async fn call(&self, method: &str, args: &[JsValue]) -> Result<JsValue, String> {
        let f: Function = get(&self.keys, method)
            .dyn_into()
            .map_err(|_| format!("keys.{method} is missing"))?;
        let args: js_sys::Array = args.iter().collect();
        let ret = f.apply(&self.keys, &args).map_err(|e| message_of(&e))?;
        JsFuture::from(Promise::resolve(&ret))
            .await
            .map_err(|e| message_of(&e))
    }
}

impl JwsSigner for HostKey {
    fn alg(&self) -> JwsAlg {
        self.alg
    }

    fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn public_jwk(&self) -> LocalBoxFuture<'_, Result<Value, String>> {
        Box::pin(async move {
            if let Some(jwk) = &self.public_jwk {
                return Ok(jwk.clone());
            }
            let args = [
                JsValue::from_str(self.role),
                JsValue::from_str(self.alg.as_str()),
            ];
            let jwk = self.call("publicJwk", &args).await?;
            match crate::js_json::json_of(&jwk) {
                Ok(Value::Object(m)) => Ok(jose::public_jwk(&m)),
                Ok(_) => Err("the exported key is not a JWK".into()),
                Err(e) => Err(format!("the exported key {}", e.message())),
            }
        })
    }

    fn sign(&self, input: Vec<u8>) -> LocalBoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let args = [
                JsValue::from_str(self.role),
                JsValue::from_str(self.alg.as_str()),
                Uint8Array::from(input.as_slice()).into(),
            ];
            let sig = self.call("sign", &args).await?;
            Ok(Uint8Array::new(&sig).to_vec())
        })
    }

    fn jti(&self) -> String {
        random_id()
    }
}

/// 16 bytes from the platform's CSPRNG (`crypto.getRandomValues`), base64url. Without one
/// nothing unguessable can be made, and WebCrypto, which signs, is missing too: the module
/// stops rather than sign a predictable `jti`.
pub(crate) fn random_id() -> String {
    let bytes = (|| {
        let crypto = get(&js_sys::global(), "crypto");
        let fill: Function = get(&crypto, "getRandomValues").dyn_into().ok()?;
        let buf = Uint8Array::new_with_length(16);
        fill.call1(&crypto, &buf).ok()?;
        Some(buf.to_vec())
    })();
    jose::b64url(&bytes.unwrap_or_else(|| std::process::abort()))
}

/// The alg of a `CryptoKey` the façade kept for `role`, if any.
fn crypto_key_alg(keys: &JsValue, role: &str) -> Option<String> {
    get(&get(keys, "cryptoKey"), role).as_string()
}

/// Reads `clientKey` (with `authStyle: 'private_key_jwt'`) and `dpopKey` (with `dpop: true`)
/// from the config's JSON form: a key given where it is not used, a missing one, or one that
/// does not fit its algorithm is a `config` error naming the key, never quoting it.
pub(crate) fn read_keys(
    config: &Value,
    settings: &TokenSettings,
    keys: &JsValue,
) -> Result<(Option<KeySpec>, Option<KeySpec>), JsValue> {
    let pkjwt = settings.auth_style == tokengate::config::AuthStyle::PrivateKeyJwt;
    let client =
        match (
            pkjwt,
            config.get("clientKey"),
            crypto_key_alg(keys, "client"),
        ) {
            (false, None | Some(Value::Null), None) => None,
            (false, _, _) => {
                return Err(config_key_error(
                    "clientKey",
                    "is used only with authStyle private_key_jwt",
                ))
            }
            (true, None | Some(Value::Null), Some(alg)) => {
                if alg != settings.client_key_alg.as_str() {
                    return Err(config_key_error(
                        "clientKey",
                        &format!(
                            "is a {alg} CryptoKey, but clientKeyAlg is {}",
                            settings.client_key_alg.as_str()
                        ),
                    ));
                }
                Some(KeySpec {
                    alg: settings.client_key_alg,
                    material: None,
                    identity: Secret::new(random_id()),
                })
            }
            (true, None | Some(Value::Null), None) => return Err(config_key_error(
                "clientKey",
                "is required with authStyle private_key_jwt (a JWK, a PKCS#8 PEM or a CryptoKey)",
            )),
            (true, Some(v), _) => Some(material(v, settings.client_key_alg, "clientKey")?),
        };
    let dpop = match (
        settings.dpop,
        config.get("dpopKey"),
        crypto_key_alg(keys, "dpop"),
    ) {
        (false, None | Some(Value::Null), None) => None,
        (false, _, _) => return Err(config_key_error("dpopKey", "is used only with dpop: true")),
        (true, None | Some(Value::Null), alg) => {
            let alg = match alg {
                None => JwsAlg::Es256,
                Some(a) => JwsAlg::parse(&a).ok_or_else(|| {
                    config_key_error("dpopKey", "must be an ES256, RS256 or PS256 key pair")
                })?,
            };
            Some(KeySpec {
                alg,
                material: None,
                identity: Secret::new(random_id()),
            })
        }
        (true, Some(v), _) => {
            let alg = match v {
                Value::String(s) => KeyMaterial::dpop_alg(s),
                Value::Object(m) if m.get("kty").and_then(Value::as_str) == Some("RSA") => {
                    JwsAlg::Ps256
                }
                _ => JwsAlg::Es256,
            };
            Some(material(v, alg, "dpopKey")?)
        }
    };
    Ok((client, dpop))
}

fn material(v: &Value, alg: JwsAlg, key: &str) -> Result<KeySpec, JsValue> {
    let (m, identity) = match v {
        Value::String(s) => (KeyMaterial::parse(s, alg), s.clone()),
        Value::Object(_) => (KeyMaterial::from_jwk(v, alg), v.to_string()),
        _ => {
            return Err(config_key_error(
                key,
                "must be a private JWK (an object), a PKCS#8 PEM string or a CryptoKey",
            ))
        }
    };
    let material = m.map_err(|why| config_key_error(key, &why))?;
    Ok(KeySpec {
        alg,
        material: Some(material),
        identity: Secret::new(identity),
    })
}

/// A key's material in the form `crypto.subtle.importKey` takes: `{format: "jwk", key}` or
/// `{format: "pkcs8", key: Uint8Array}`.
pub(crate) fn material_js(m: &KeyMaterial) -> JsValue {
    let o = js_sys::Object::new();
    match m {
        KeyMaterial::Jwk(jwk) => {
            crate::host::set(&o, "format", &JsValue::from_str("jwk"));
            let v = js_sys::JSON::parse(&Value::Object(jose::importable_jwk(jwk)).to_string())
                .unwrap_or(JsValue::NULL);
            crate::host::set(&o, "key", &v);
        }
        KeyMaterial::Pkcs8(der) => {
            crate::host::set(&o, "format", &JsValue::from_str("pkcs8"));
            crate::host::set(&o, "key", &Uint8Array::from(der.as_slice()).into());
        }
    }
    o.into()
}
