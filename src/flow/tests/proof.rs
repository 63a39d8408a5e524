//! [`ProofTransport`]: a new client assertion and DPoP proof on every token request, one more
//! request after a nonce request or a refused assertion, never more.

use super::*;
use crate::jose::{self, JwsAlg};
use futures::future::LocalBoxFuture;
use sha2::{Digest, Sha256};

/// Signs with SHA-256 of the input (the flow never looks inside a signature); counts `jti`s.
struct FakeSigner {
    alg: JwsAlg,
    jtis: Cell<u32>,
}

impl JwsSigner for FakeSigner {
    fn alg(&self) -> JwsAlg {
        self.alg
    }
    fn kid(&self) -> Option<&str> {
        Some("kid-1")
    }
    fn public_jwk(&self) -> LocalBoxFuture<'_, Result<Value, String>> {
        Box::pin(async { Ok(json!({"kty": "EC", "crv": "P-256", "x": "X", "y": "Y"})) })
    }
    fn sign(&self, input: Vec<u8>) -> LocalBoxFuture<'_, Result<Vec<u8>, String>> {
        Box::pin(async move { Ok(Sha256::digest(&input).to_vec()) })
    }
    fn jti(&self) -> String {
        self.jtis.set(self.jtis.get() + 1);
        format!("jti-{}", self.jtis.get())
    }
}

fn signer() -> Rc<dyn JwsSigner> {
    Rc::new(FakeSigner {
        alg: JwsAlg::Es256,
        jtis: Cell::new(0),
    })
}

fn claims(jws: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let b = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jws.split('.').nth(i).unwrap(),
        )
        .unwrap();
        serde_json::from_slice(&b).unwrap()
    };
    (part(0), part(1))
}

fn form(req: &HttpRequest) -> HashMap<String, String> {
    form_urlencoded::parse(&req.body).into_owned().collect()
}

fn request() -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        url: "https://idp.example/token?x=1".into(),
        headers: vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        body: b"grant_type=client_credentials&client_id=c1".to_vec(),
    }
}

#[test]
fn each_token_request_carries_a_new_assertion_and_a_refused_one_is_replaced_once() {
    let clock: Clock = Rc::new(Cell::new(T0));
    let rt = FakeRuntime::new(&clock);
    let inner = FakeTransport::default();
    inner
        .reply(401, &[], r#"{"error":"invalid_client","error_description":"client assertion tokens must only be used once"}"#)
        .token(TOKEN_A, 3600)
        .reply(401, &[], r#"{"error":"invalid_client"}"#)
        .reply(401, &[], r#"{"error":"invalid_client"}"#);
    let proofs = Proofs {
        client_key: Some((signer(), "https://idp.example/token".into())),
        dpop: None,
    };
    let t = ProofTransport::new(inner.clone(), FakeRuntime(rt.0.clone()), "c1", proofs);
    let resp = block_on(t.send(request(), 5_000)).unwrap();
    assert_eq!(resp.status, 200, "recovered with a new assertion");
    let sent = inner.sent();
    assert_eq!(sent.len(), 2);
    let (a, b) = (form(&sent[0].0), form(&sent[1].0));
    assert_eq!(a["client_assertion_type"], jose::ASSERTION_TYPE);
    assert_eq!(a["grant_type"], "client_credentials");
    assert_ne!(
        a["client_assertion"], b["client_assertion"],
        "never the same assertion twice"
    );
    let (header, c) = claims(&a["client_assertion"]);
    assert_eq!(
        header,
        json!({"alg": "ES256", "typ": "JWT", "kid": "kid-1"})
    );
    assert_eq!(c["iss"], "c1");
    assert_eq!(c["sub"], "c1");
    assert_eq!(c["aud"], "https://idp.example/token");
    assert_eq!(c["iat"], T0 / 1000);
    assert_eq!(c["exp"], T0 / 1000 + jose::ASSERTION_LIFETIME_S);
    assert_eq!(rt.events("client_assertion_refused").len(), 1);
    // A second refusal in a row is the answer (a wrong key is not retried forever).
    let resp = block_on(t.send(request(), 5_000)).unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(inner.calls(), 4);
}

#[test]
fn dpop_proofs_follow_the_token_endpoint_nonce_once() {
    let clock: Clock = Rc::new(Cell::new(T0));
    let rt = FakeRuntime::new(&clock);
    let inner = FakeTransport::default();
    inner
        .reply(
            400,
            &[("dpop-nonce", "n-1")],
            r#"{"error":"use_dpop_nonce"}"#,
        )
        .reply(200, &[("dpop-nonce", "n-2")], &token_body(TOKEN_A, 3600))
        .reply(
            400,
            &[("dpop-nonce", "n-3")],
            r#"{"error":"use_dpop_nonce"}"#,
        )
        .reply(
            400,
            &[("dpop-nonce", "n-4")],
            r#"{"error":"use_dpop_nonce"}"#,
        );
    let dpop = Rc::new(Dpop::new(signer()));
    let proofs = Proofs {
        client_key: None,
        dpop: Some(dpop.clone()),
    };
    let t = ProofTransport::new(inner.clone(), FakeRuntime(rt.0.clone()), "c1", proofs);
    assert_eq!(block_on(t.send(request(), 5_000)).unwrap().status, 200);
    let sent = inner.sent();
    let proof = |i: usize| claims(sent[i].0.header("DPoP").expect("a DPoP header"));
    let (h0, c0) = proof(0);
    assert_eq!(h0["typ"], "dpop+jwt");
    assert_eq!(
        h0["jwk"],
        json!({"kty": "EC", "crv": "P-256", "x": "X", "y": "Y"})
    );
    assert_eq!(c0["htm"], "POST");
    assert_eq!(c0["htu"], "https://idp.example/token", "no query");
    assert!(c0.get("nonce").is_none() && c0.get("ath").is_none());
    assert_eq!(proof(1).1["nonce"], "n-1");
    assert_ne!(c0["jti"], proof(1).1["jti"]);
    assert_eq!(
        dpop.nonce(DpopServer::Token).as_deref(),
        Some("n-2"),
        "the latest nonce is kept"
    );
    assert_eq!(
        dpop.nonce(DpopServer::Api),
        None,
        "the API's nonce is its own"
    );
    // Asked twice in a row: the second answer stands.
    assert_eq!(block_on(t.send(request(), 5_000)).unwrap().status, 400);
    assert_eq!(inner.calls(), 4);
    let api = block_on(dpop.proof(
        DpopServer::Api,
        "GET",
        "https://api.example/x?y",
        T0,
        Some(&Secret::new("tok")),
    ))
    .unwrap();
    assert_eq!(claims(&api).1["ath"], jose::ath(&Secret::new("tok")));
}
