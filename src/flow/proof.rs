//! Proof of possession in the flow: [`Proofs`] holds a provider's signing keys (its client key
//! for `private_key_jwt`, its DPoP key) as [`JwsSigner`]s the shells implement with WebCrypto,
//! and [`ProofTransport`] wraps the transport of the token endpoint so that every token request
//! it sends carries a new client assertion (RFC 7523 §2.2) and a new DPoP proof (RFC 9449
//! §5), and is sent once more when the server asks for a DPoP nonce (§8) or refuses the
//! assertion (a replayed `jti`, an `iat` outside its window): with a new assertion, never the
//! same one again. API calls make their proofs with [`Dpop::proof`].

use super::{Runtime, Transport, TransportError};
use crate::http::{HttpRequest, HttpResponse};
use crate::jose::{self, JwsAlg};
use crate::secret::Secret;
use futures::future::LocalBoxFuture;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;

/// A private key the host signs with (WebCrypto in both shells).
pub trait JwsSigner {
    /// Its algorithm.
    fn alg(&self) -> JwsAlg;
    /// The `kid` a client assertion names, if configured.
    fn kid(&self) -> Option<&str>;
    /// Its public JWK (for a DPoP proof's header).
    fn public_jwk(&self) -> LocalBoxFuture<'_, Result<Value, String>>;
    /// The JWS signature of `input` (ES256: R ‖ S, 64 bytes). Errors hold no key material.
    fn sign(&self, input: Vec<u8>) -> LocalBoxFuture<'_, Result<Vec<u8>, String>>;
    /// A new unique, unguessable `jti` (16 random bytes, base64url).
    fn jti(&self) -> String;
}

/// A DPoP key and the nonces its servers supplied (RFC 9449 §8 and §9: the authorization
/// server's and the resource server's are separate).
pub struct Dpop {
    key: Rc<dyn JwsSigner>,
    token_nonce: RefCell<Option<String>>,
    api_nonce: RefCell<Option<String>>,
}

/// Which server a DPoP proof is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpopServer {
    /// The token endpoint.
    Token,
    /// The API.
    Api,
}

impl Dpop {
    /// A DPoP state for `key`.
    pub fn new(key: Rc<dyn JwsSigner>) -> Self {
        Dpop {
            key,
            token_nonce: RefCell::default(),
            api_nonce: RefCell::default(),
        }
    }

    fn nonce_of(&self, server: DpopServer) -> &RefCell<Option<String>> {
        match server {
            DpopServer::Token => &self.token_nonce,
            DpopServer::Api => &self.api_nonce,
        }
    }

    /// Remembers a nonce `server` supplied.
    pub fn set_nonce(&self, server: DpopServer, nonce: Option<String>) {
        if let Some(n) = nonce {
            *self.nonce_of(server).borrow_mut() = Some(n);
        }
    }

    /// The nonce `server` last supplied.
    pub fn nonce(&self, server: DpopServer) -> Option<String> {
        self.nonce_of(server).borrow().clone()
    }

    /// A new proof for a `method` request to `url` at `now_ms`, bound to `access_token` when
    /// the request carries one, with `server`'s nonce.
    pub async fn proof(
        &self,
        server: DpopServer,
        method: &str,
        url: &str,
        now_ms: u64,
        access_token: Option<&Secret>,
    ) -> Result<String, String> {
        let jwk = self.key.public_jwk().await?;
        let header = jose::dpop_header(self.key.alg(), &jwk);
        let nonce = self.nonce(server);
        let claims = jose::dpop_claims(
            method,
            url,
            &self.key.jti(),
            now_ms / 1000,
            access_token,
            nonce.as_deref(),
        );
        let input = jose::signing_input(&header, &claims);
        let sig = self.key.sign(input.clone().into_bytes()).await?;
        Ok(jose::compact(&input, &sig))
    }
}

/// A provider's keys.
#[derive(Clone, Default)]
pub struct Proofs {
    /// The client key (`auth_style = "private_key_jwt"`) and the assertion's audience.
    pub client_key: Option<(Rc<dyn JwsSigner>, String)>,
    /// The DPoP key and its nonces (`dpop = true`).
    pub dpop: Option<Rc<Dpop>>,
}

impl Proofs {
    /// Whether there is anything to prove.
    pub fn is_empty(&self) -> bool {
        self.client_key.is_none() && self.dpop.is_none()
    }

    /// A new client assertion for `client_id` at `now_ms`.
    pub async fn assertion(&self, client_id: &str, now_ms: u64) -> Option<Result<String, String>> {
        let (key, audience) = self.client_key.as_ref()?;
        let header = jose::assertion_header(key.alg(), key.kid());
        let claims = jose::assertion_claims(client_id, audience, &key.jti(), now_ms / 1000);
        let input = jose::signing_input(&header, &claims);
        Some(
            key.sign(input.clone().into_bytes())
                .await
                .map(|sig| jose::compact(&input, &sig)),
        )
    }
}

/// The token endpoint's transport with proofs: see the module documentation.
pub struct ProofTransport<T, R> {
    inner: T,
    rt: R,
    client_id: String,
    proofs: Proofs,
}

impl<T, R> ProofTransport<T, R> {
    /// Wraps `inner`; `rt` gives the time of each proof.
    pub fn new(inner: T, rt: R, client_id: &str, proofs: Proofs) -> Self {
        ProofTransport {
            inner,
            rt,
            client_id: client_id.to_string(),
            proofs,
        }
    }

    /// The keys.
    pub fn proofs(&self) -> &Proofs {
        &self.proofs
    }
}

fn signing_failed(what: &str, e: String) -> TransportError {
    TransportError::Network(format!("the {what} could not be signed: {e}"))
}

impl<T: Transport, R: Runtime> Transport for ProofTransport<T, R> {
    async fn send(
        &self,
        req: HttpRequest,
        timeout_ms: u64,
    ) -> Result<HttpResponse, TransportError> {
        if self.proofs.is_empty() {
            return self.inner.send(req, timeout_ms).await;
        }
        let (mut nonce_asked, mut reasserted) = (false, false);
        loop {
            let mut attempt = req.clone();
            let now = self.rt.now_ms();
            if let Some(assertion) = self.proofs.assertion(&self.client_id, now).await {
                let assertion = assertion.map_err(|e| signing_failed("client assertion", e))?;
                let mut ser = form_urlencoded::Serializer::new(String::new());
                ser.append_pair("client_assertion_type", jose::ASSERTION_TYPE);
                ser.append_pair("client_assertion", &assertion);
                if !attempt.body.is_empty() {
                    attempt.body.push(b'&');
                }
                attempt.body.extend_from_slice(ser.finish().as_bytes());
            }
            if let Some(dpop) = &self.proofs.dpop {
                let proof = dpop
                    .proof(DpopServer::Token, &attempt.method, &attempt.url, now, None)
                    .await
                    .map_err(|e| signing_failed("DPoP proof", e))?;
                attempt.headers.push(("DPoP".into(), proof));
            }
            let resp = self.inner.send(attempt, timeout_ms).await?;
            if let Some(dpop) = &self.proofs.dpop {
                dpop.set_nonce(DpopServer::Token, jose::supplied_nonce(&resp));
                if !nonce_asked && jose::token_endpoint_wants_nonce(&resp) {
                    nonce_asked = true;
                    self.rt.log(
                        "dpop_nonce",
                        serde_json::json!({"server": "token_endpoint", "status": resp.status}),
                    );
                    continue;
                }
            }
            if self.proofs.client_key.is_some() && !reasserted && jose::refused_client(&resp) {
                reasserted = true;
                self.rt.log(
                    "client_assertion_refused",
                    serde_json::json!({"status": resp.status, "retry": "new assertion"}),
                );
                continue;
            }
            return Ok(resp);
        }
    }
}
