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
use std::time::{Duration, SystemTime};
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
}

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
        }
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
        let jwks_json = self.get_json(&m.jwks_uri, None).await?;
        let jwks = josekit::jwk::JwkSet::from_bytes(serde_json::to_vec(&jwks_json).unwrap_or_default())
            .map_err(|_| unavailable("the JWKS is malformed"))?;
        let candidates: Vec<&josekit::jwk::Jwk> = match &kid {
            Some(k) => jwks.get(k),
            None => jwks.keys(),
        };
        let mut payload = None;
        for jwk in candidates {
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
            if let Ok((p, _)) = r {
                payload = Some(p);
                break;
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
