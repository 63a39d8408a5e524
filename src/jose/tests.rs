use super::*;
use serde_json::json;

// RFC 7638 §3.1: the example RSA key and its thumbprint.
const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

fn ec_jwk() -> Value {
    json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
           "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"})
}

#[test]
fn thumbprint_of_rfc_7638_example_and_public_members_only() {
    let jwk =
        json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
    assert_eq!(
        jwk_thumbprint(&jwk),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    let public = public_jwk(ec_jwk().as_object().unwrap());
    assert_eq!(
        public.get("d"),
        None,
        "a private member never reaches a proof"
    );
    assert_eq!(public["crv"], "P-256");
}

#[test]
fn keys_are_checked_against_their_algorithm_without_quoting_them() {
    let ec = ec_jwk().to_string();
    assert!(KeyMaterial::parse(&ec, JwsAlg::Es256).is_ok());
    for (text, alg, want) in [
        (
            ec.as_str(),
            JwsAlg::Rs256,
            "is a EC key, which RS256 cannot use",
        ),
        (
            "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"a\",\"y\":\"b\",\"d\":\"c\"}",
            JwsAlg::Es256,
            "another curve",
        ),
        (
            "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"a\",\"y\":\"b\"}",
            JwsAlg::Es256,
            "is a public key",
        ),
        ("{not json", JwsAlg::Es256, "invalid JSON"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
            JwsAlg::Rs256,
            "PKCS#8",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----",
            JwsAlg::Rs256,
            "invalid base64",
        ),
        ("secret-ish text", JwsAlg::Es256, "must be a private JWK"),
    ] {
        let e = KeyMaterial::parse(text, alg).unwrap_err();
        assert!(e.contains(want), "{e} should say {want}");
        assert!(
            !e.contains("jpsQnn") && !e.contains("secret-ish"),
            "{e} quotes the key"
        );
    }
    // A PKCS#8 P-256 key (its AlgorithmIdentifier only matters here) and an RSA one.
    let ec_der = [
        &[0x30, 0x41, 2, 1, 0, 0x30, 0x13][..],
        &[6, 7, 0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1],
        &[6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7],
        &[4, 0x27, 0x30, 0x25],
    ]
    .concat();
    let pem = |der: &[u8]| {
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der)
        )
    };
    assert!(matches!(
        KeyMaterial::parse(&pem(&ec_der), JwsAlg::Es256),
        Ok(KeyMaterial::Pkcs8(_))
    ));
    assert!(KeyMaterial::parse(&pem(&ec_der), JwsAlg::Ps256)
        .unwrap_err()
        .contains("is a EC key"));
    let rsa_der = [
        &[0x30, 0x82, 1, 0, 2, 1, 0, 0x30, 0x0d][..],
        &[6, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 1],
        &[5, 0],
    ]
    .concat();
    assert!(KeyMaterial::parse(&pem(&rsa_der), JwsAlg::Ps256).is_ok());
    assert!(KeyMaterial::parse(&pem(&rsa_der), JwsAlg::Es256)
        .unwrap_err()
        .contains("is a RSA key"));
    assert_eq!(KeyMaterial::dpop_alg(&ec), JwsAlg::Es256);
    assert_eq!(KeyMaterial::dpop_alg(&pem(&rsa_der)), JwsAlg::Ps256);
}

#[test]
fn assertion_and_proof_claims() {
    let c = assertion_claims("client-1", "https://idp.example/token", "j1", 1_000);
    assert_eq!(
        c,
        json!({"iss": "client-1", "sub": "client-1", "aud": "https://idp.example/token",
               "jti": "j1", "iat": 1000, "exp": 1060})
    );
    assert_eq!(
        assertion_header(JwsAlg::Ps256, Some("k1")),
        json!({"alg": "PS256", "typ": "JWT", "kid": "k1"})
    );
    let token = Secret::new("tok");
    let p = dpop_claims(
        "GET",
        "https://api.example/a/b?x=1#f",
        "j2",
        5,
        Some(&token),
        Some("n-1"),
    );
    assert_eq!(p["htu"], "https://api.example/a/b");
    assert_eq!(p["htm"], "GET");
    assert_eq!(p["nonce"], "n-1");
    // base64url(SHA-256("tok")) computed independently.
    assert_eq!(p["ath"], b64url(&Sha256::digest(b"tok")));
    assert!(
        dpop_claims("POST", "https://as.example/token", "j", 5, None, None)
            .get("ath")
            .is_none()
    );
    let input = signing_input(&json!({"alg": "ES256"}), &json!({"a": 1}));
    assert_eq!(input, "eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ");
    assert_eq!(
        compact(&input, &[0xfb, 0xff]),
        "eyJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ.-_8"
    );
}

#[test]
fn nonce_requests_are_recognised() {
    let r = |status, headers: &[(&str, &str)], body| HttpResponse::fixture(status, headers, body);
    let asks = r(
        400,
        &[("dpop-nonce", "abc")],
        r#"{"error":"use_dpop_nonce"}"#,
    );
    assert!(token_endpoint_wants_nonce(&asks));
    assert_eq!(supplied_nonce(&asks).as_deref(), Some("abc"));
    assert!(!token_endpoint_wants_nonce(&r(
        400,
        &[],
        r#"{"error":"invalid_grant"}"#
    )));
    assert!(!token_endpoint_wants_nonce(&r(
        401,
        &[],
        r#"{"error":"use_dpop_nonce"}"#
    )));
    assert_eq!(nonce_value(Some("has space")), None);
    assert!(api_wants_nonce(
        401,
        Some(r#"DPoP error="use_dpop_nonce", error_description="x""#)
    ));
    assert!(!api_wants_nonce(401, Some(r#"DPoP error="invalid_token""#)));
    assert!(!api_wants_nonce(
        403,
        Some(r#"DPoP error="use_dpop_nonce""#)
    ));
    assert!(refused_client(&r(
        401,
        &[],
        r#"{"error":"invalid_client"}"#
    )));
    assert!(!refused_client(&r(
        500,
        &[],
        r#"{"error":"invalid_client"}"#
    )));
}

#[test]
fn the_step_after_an_api_answer_with_a_dpop_proof() {
    use NonceStep::*;
    /// (status, WWW-Authenticate, nonce supplied, resent before, replayable, step)
    type Row<'a> = (u16, Option<&'a str>, bool, bool, bool, NonceStep);
    let asks = Some(r#"DPoP error="use_dpop_nonce""#);
    let table: &[Row] = &[
        (401, asks, true, false, true, Resend),
        (401, asks, true, true, true, CallersAnswer),
        (401, asks, true, false, false, CallersAnswer),
        (401, asks, false, false, true, Proceed),
        (
            401,
            Some(r#"DPoP error="invalid_token""#),
            true,
            false,
            true,
            Proceed,
        ),
        (403, asks, true, false, true, Proceed),
        (200, None, true, false, true, Proceed),
    ];
    for &(status, www, supplied, asked, replayable, want) in table {
        assert_eq!(
            api_nonce_step(status, www, supplied, asked, replayable),
            want,
            "{status} {www:?} supplied={supplied} asked={asked} replayable={replayable}"
        );
    }
}
