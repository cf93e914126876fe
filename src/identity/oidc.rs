//! Standard OpenID Connect: authorization code with PKCE (S256), provider metadata by discovery,
//! ID token verified through the provider's JWKS (`alg` allowlist, `iss`, `aud`, `azp`, `exp`,
//! `iat`, `nonce`), RFC 9207 `iss` on the callback checked when present, claims completed from
//! the UserInfo endpoint. The PINFL comes from a configurable claim (default `sub`).

use super::oneid::Secret;
use super::{is_pinfl, sha256_hex, signing_name, Identity, IdpError, LoginRequest};
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::OnceCell;

#[derive(Clone, Debug)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
}

#[derive(Clone, Debug)]
pub struct OidcClient {
    issuer: String,
    client_id: String,
    client_secret: Option<Secret>,
    redirect_uri: String,
    pinfl_claim: String,
    http: reqwest::Client,
    meta: Arc<OnceCell<Metadata>>,
    jwks: Arc<tokio::sync::Mutex<JwksCache>>,
}

/// The provider's signing keys, kept between logins: fetched again after [`JWKS_TTL`], or when an
/// ID token does not verify with the kept keys (key rotation), then at most once per
/// [`JWKS_MIN_REFETCH`] so that bad tokens cannot make every login hit the provider.
#[derive(Debug, Default)]
struct JwksCache {
    keys: Option<(Instant, Arc<josekit::jwk::JwkSet>)>,
}

const JWKS_TTL: Duration = Duration::from_secs(600);
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(10);

/// Signature algorithms accepted on ID tokens (never `none`, never HMAC with a public secret).
const ALGS: &[&str] = &["RS256", "PS256", "ES256"];

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn unavailable(what: &str) -> IdpError {
    IdpError::Unavailable(format!("the OpenID Provider: {what}"))
}

impl OidcClient {
    pub fn new(issuer: &str, client_id: &str, secret: Option<&str>, redirect_uri: &str, pinfl_claim: &str) -> Self {
        OidcClient {
            issuer: issuer.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: secret.map(|s| Secret(s.to_string())),
            redirect_uri: redirect_uri.to_string(),
            pinfl_claim: pinfl_claim.to_string(),
            http: super::http_client(),
            meta: Arc::new(OnceCell::new()),
            jwks: Default::default(),
        }
    }

    /// The provider's JWKS, kept (see [`JwksCache`]); `refresh` asks for a fresh copy when the kept
    /// one did not verify a token. One fetch at a time: concurrent logins wait for it.
    async fn jwks(&self, m: &Metadata, refresh: bool) -> Result<Arc<josekit::jwk::JwkSet>, IdpError> {
        let mut cache = self.jwks.lock().await;
        if let Some((at, keys)) = &cache.keys {
            let age = at.elapsed();
            if age < JWKS_TTL && (!refresh || age < JWKS_MIN_REFETCH) {
                return Ok(keys.clone());
            }
        }
        let json = self.get_json(&m.jwks_uri, None).await?;
        let keys = Arc::new(
            josekit::jwk::JwkSet::from_bytes(serde_json::to_vec(&json).unwrap_or_default())
                .map_err(|_| unavailable("the JWKS is malformed"))?,
        );
        cache.keys = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }

    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, IdpError> {
        let mut rq = self.http.get(url).header("Accept", "application/json");
        if let Some(t) = bearer {
            rq = rq.bearer_auth(t);
        }
        let res = rq.send().await.map_err(|_| unavailable("not reachable"))?;
        if !res.status().is_success() {
            return Err(unavailable(&format!("HTTP {} from {}", res.status().as_u16(), url)));
        }
        res.json().await.map_err(|_| unavailable("an answer is not JSON"))
    }

    async fn metadata(&self) -> Result<&Metadata, IdpError> {
        self.meta
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let d = self.get_json(&url, None).await?;
                let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
                let issuer = s("issuer").ok_or_else(|| unavailable("discovery has no issuer"))?;
                if issuer.trim_end_matches('/') != self.issuer {
                    return Err(IdpError::Rejected(format!(
                        "discovery names issuer {issuer}, configured {}",
                        self.issuer
                    )));
                }
                Ok(Metadata {
                    issuer,
                    authorization_endpoint: s("authorization_endpoint")
                        .ok_or_else(|| unavailable("discovery has no authorization_endpoint"))?,
                    token_endpoint: s("token_endpoint")
                        .ok_or_else(|| unavailable("discovery has no token_endpoint"))?,
                    jwks_uri: s("jwks_uri").ok_or_else(|| unavailable("discovery has no jwks_uri"))?,
                    userinfo_endpoint: s("userinfo_endpoint"),
                })
            })
            .await
    }

    pub async fn authorize_url(&self, req: &LoginRequest) -> Result<String, IdpError> {
        let m = self.metadata().await?;
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(req.pkce_verifier.as_bytes()));
        let sep = if m.authorization_endpoint.contains('?') { '&' } else { '?' };
        Ok(format!(
            "{}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256&ui_locales={}",
            m.authorization_endpoint,
            enc(&self.client_id),
            enc(&self.redirect_uri),
            enc("openid profile"),
            enc(&req.state),
            enc(&req.nonce),
            enc(&challenge),
            enc(&req.locale),
        ))
    }

    pub async fn complete(&self, code: &str, iss: Option<&str>, req: &LoginRequest) -> Result<Identity, IdpError> {
        let m = self.metadata().await?.clone();
        if let Some(iss) = iss {
            if iss != m.issuer {
                return Err(IdpError::StateMismatch);
            }
        }
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", req.pkce_verifier.as_str()),
            ("client_id", self.client_id.as_str()),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form.iter()).finish();
        let mut rq = self
            .http
            .post(&m.token_endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body);
        if let Some(s) = &self.client_secret {
            // client_secret_basic: RFC 6749 §2.3.1 form-encodes both parts first
            rq = rq.basic_auth(enc(&self.client_id), Some(enc(&s.0)));
        }
        let res = rq.send().await.map_err(|_| unavailable("the token endpoint is not reachable"))?;
        let status = res.status();
        if status.is_server_error() {
            return Err(unavailable(&format!("token endpoint HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(IdpError::Rejected(format!("the token endpoint answered HTTP {}", status.as_u16())));
        }
        let tok: Value = res.json().await.map_err(|_| IdpError::Rejected("the token answer is not JSON".into()))?;
        let id_token = tok
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| IdpError::Rejected("the token answer has no id_token".into()))?;
        let mut claims = self.verify_id_token(&m, id_token, &req.nonce).await?;
        // Claims beyond `sub` usually come from UserInfo (code flow); its `sub` must match.
        if let (Some(ui), Some(at)) = (&m.userinfo_endpoint, tok.get("access_token").and_then(Value::as_str)) {
            if let Ok(Value::Object(info)) = self.get_json(ui, Some(at)).await {
                if info.get("sub") == claims.get("sub") {
                    for (k, v) in info {
                        claims.entry(k).or_insert(v);
                    }
                }
            }
        }
        identity_from_claims(&claims, &self.pinfl_claim)
    }

    async fn verify_id_token(&self, m: &Metadata, token: &str, nonce: &str) -> Result<Map<String, Value>, IdpError> {
        let bad = |why: &str| IdpError::Rejected(format!("the ID token {why}"));
        let header = josekit::jwt::decode_header(token).map_err(|_| bad("is malformed"))?;
        let alg = header.claim("alg").and_then(Value::as_str).unwrap_or("").to_string();
        if !ALGS.contains(&alg.as_str()) {
            return Err(bad(&format!("uses algorithm `{alg}`, not one of {ALGS:?}")));
        }
        let kid = header.claim("kid").and_then(Value::as_str).map(str::to_string);
        let verify_with = |jwks: &josekit::jwk::JwkSet| {
            let candidates: Vec<&josekit::jwk::Jwk> = match &kid {
                Some(k) => jwks.get(k),
                None => jwks.keys(),
            };
            candidates.into_iter().find_map(|jwk| {
                let r = match alg.as_str() {
                    "RS256" => josekit::jws::RS256
                        .verifier_from_jwk(jwk)
                        .and_then(|v| josekit::jwt::decode_with_verifier(token, &v)),
                    "PS256" => josekit::jws::PS256
                        .verifier_from_jwk(jwk)
                        .and_then(|v| josekit::jwt::decode_with_verifier(token, &v)),
                    _ => josekit::jws::ES256
                        .verifier_from_jwk(jwk)
                        .and_then(|v| josekit::jwt::decode_with_verifier(token, &v)),
                };
                r.ok().map(|(p, _)| p)
            })
        };
        let kept = self.jwks(m, false).await?;
        let mut payload = verify_with(&kept);
        if payload.is_none() {
            // the provider may have rotated its keys since they were kept
            let fresh = self.jwks(m, true).await?;
            if !Arc::ptr_eq(&fresh, &kept) {
                payload = verify_with(&fresh);
            }
        }
        let p = payload.ok_or_else(|| bad("signature does not verify with the provider's keys"))?;
        if p.issuer() != Some(m.issuer.as_str()) {
            return Err(bad("has another issuer"));
        }
        let aud = p.audience().unwrap_or_default();
        if !aud.contains(&self.client_id.as_str()) {
            return Err(bad("is for another audience"));
        }
        if aud.len() > 1 && p.claim("azp").and_then(Value::as_str) != Some(self.client_id.as_str()) {
            return Err(bad("has several audiences and no matching azp"));
        }
        let now = SystemTime::now();
        let skew = Duration::from_secs(120);
        match p.expires_at() {
            Some(exp) if exp + skew > now => {}
            _ => return Err(bad("has expired")),
        }
        if p.issued_at().is_some_and(|iat| iat > now + skew) {
            return Err(bad("is issued in the future"));
        }
        let n = p.claim("nonce").and_then(Value::as_str).unwrap_or("");
        if !super::ct_eq(n, nonce) {
            return Err(bad("does not carry this login's nonce"));
        }
        Ok(p.claims_set().clone())
    }
}

/// Claims → identity: the PINFL claim must be 14 digits; name from `name` or given/family.
pub fn identity_from_claims(c: &Map<String, Value>, pinfl_claim: &str) -> Result<Identity, IdpError> {
    let pinfl = c.get(pinfl_claim).and_then(Value::as_str).unwrap_or("").trim().to_string();
    if !is_pinfl(&pinfl) {
        return Err(IdpError::IdentityIncomplete(format!("claim `{pinfl_claim}` is not a 14-digit PINFL")));
    }
    let s = |k: &str| c.get(k).and_then(Value::as_str);
    let name = signing_name(s("family_name"), s("given_name"), s("middle_name"), s("name"))
        .ok_or_else(|| IdpError::IdentityIncomplete("the provider gave no name".into()))?;
    let amr = c.get("amr").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str);
    Ok(Identity {
        pinfl,
        name,
        auth_method: amr.or(s("acr")).map(str::to_string),
        provider: "oidc".into(),
        session_hash: s("sid").map(sha256_hex),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{extract::State, routing::get, routing::post, Json, Router};
    use josekit::jws::alg::ecdsa::EcdsaJwsSigner;
    use josekit::jws::{JwsHeader, ES256};
    use josekit::jwt::JwtPayload;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A minimal OpenID Provider: discovery, a JWKS that counts its fetches, a token endpoint
    /// that signs ID tokens with the current key (which may be missing from the JWKS).
    #[derive(Clone)]
    struct Op {
        base: String,
        jwks: Arc<Mutex<Value>>,
        signer: Arc<Mutex<(String, EcdsaJwsSigner)>>,
        nonce: Arc<Mutex<String>>,
        fetches: Arc<AtomicUsize>,
    }

    fn key(kid: &str) -> (Value, EcdsaJwsSigner) {
        let pair = ES256.generate_key_pair().unwrap();
        let mut jwk = pair.to_jwk_public_key();
        jwk.set_key_id(kid);
        (serde_json::to_value(jwk.as_ref()).unwrap(), ES256.signer_from_jwk(&pair.to_jwk_private_key()).unwrap())
    }

    async fn serve() -> Op {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (jwk, signer) = key("a");
        let op = Op {
            base: base.clone(),
            jwks: Arc::new(Mutex::new(serde_json::json!({ "keys": [jwk] }))),
            signer: Arc::new(Mutex::new(("a".into(), signer))),
            nonce: Default::default(),
            fetches: Default::default(),
        };
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(op): State<Op>| async move {
                    Json(serde_json::json!({ "issuer": op.base, "authorization_endpoint": format!("{}/auth", op.base),
                        "token_endpoint": format!("{}/token", op.base), "jwks_uri": format!("{}/jwks", op.base) }))
                }),
            )
            .route(
                "/jwks",
                get(|State(op): State<Op>| async move {
                    op.fetches.fetch_add(1, Ordering::SeqCst);
                    Json(op.jwks.lock().unwrap().clone())
                }),
            )
            .route(
                "/token",
                post(|State(op): State<Op>| async move {
                    let (kid, signer) = &*op.signer.lock().unwrap();
                    let mut h = JwsHeader::new();
                    h.set_token_type("JWT");
                    h.set_key_id(kid);
                    let mut p = JwtPayload::new();
                    p.set_issuer(&op.base);
                    p.set_audience(vec!["hujjat"]);
                    p.set_subject("31507851230012");
                    p.set_issued_at(&SystemTime::now());
                    p.set_expires_at(&(SystemTime::now() + Duration::from_secs(300)));
                    p.set_claim("nonce", Some(Value::String(op.nonce.lock().unwrap().clone()))).unwrap();
                    p.set_claim("name", Some(Value::String("Karimov Aziz".into()))).unwrap();
                    let t = josekit::jwt::encode_with_signer(&p, &h, signer).unwrap();
                    Json(serde_json::json!({ "id_token": t, "token_type": "Bearer" }))
                }),
            )
            .with_state(op.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        op
    }

    async fn login(c: &OidcClient, op: &Op) -> Result<Identity, IdpError> {
        let req = LoginRequest::new("en");
        *op.nonce.lock().unwrap() = req.nonce.clone();
        c.complete("code", None, &req).await
    }

    /// Logins reuse the kept JWKS; a rotated key is fetched once; a token no key verifies is
    /// refused without fetching the JWKS again within the refetch interval.
    #[tokio::test]
    async fn jwks_is_kept_and_refetched_on_rotation() {
        let op = serve().await;
        let c = OidcClient::new(&op.base, "hujjat", None, "http://127.0.0.1/cb", "sub");
        for _ in 0..3 {
            assert_eq!(login(&c, &op).await.unwrap().pinfl, "31507851230012");
        }
        assert_eq!(op.fetches.load(Ordering::SeqCst), 1, "three logins, one JWKS fetch");

        // rotation: the provider signs with a new key and publishes it
        let (jwk, signer) = key("b");
        *op.jwks.lock().unwrap() = serde_json::json!({ "keys": [jwk] });
        *op.signer.lock().unwrap() = ("b".into(), signer);
        c.jwks.lock().await.keys.as_mut().unwrap().0 -= JWKS_MIN_REFETCH; // the kept copy is old enough
        login(&c, &op).await.unwrap();
        login(&c, &op).await.unwrap();
        assert_eq!(op.fetches.load(Ordering::SeqCst), 2, "one fetch for the new key");

        // a token signed with a key the provider does not publish: refused, and no fetch storm
        let (_, rogue) = key("c");
        *op.signer.lock().unwrap() = ("c".into(), rogue);
        for _ in 0..3 {
            assert!(matches!(login(&c, &op).await, Err(IdpError::Rejected(_))));
        }
        assert_eq!(op.fetches.load(Ordering::SeqCst), 2, "no refetch within JWKS_MIN_REFETCH");
    }
}
