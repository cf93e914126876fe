//! Who is signing: the identity providers that authenticate a practitioner for a signing session.
//!
//! - `oneid`: Uzbekistan's national single sign-on, in its own OAuth2 dialect ([`oneid`]);
//! - `oidc`: any standard OpenID Provider, authorization code + PKCE via discovery ([`oidc`]);
//! - `dev`: a development oneID served by hujjat itself ([`dev`]), spoken to by the real oneID
//!   client code over HTTP, so the whole oneID path runs end to end on a laptop.
//!
//! Every mode yields the same [`Identity`].

pub mod dev;
pub mod oidc;
pub mod oneid;

use crate::config::{Config, Mode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An authenticated practitioner, as the provider reported it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// PINFL (JShShIR), 14 digits.
    pub pinfl: String,
    /// The name to sign with: at most 64 characters (the certificate's commonName).
    pub name: String,
    /// Authentication method as the provider named it (`PKCSMETHOD`, `LOGINPASSMETHOD`, `pwd`, …).
    pub auth_method: Option<String>,
    /// `oneid`, `oidc` or `dev`.
    pub provider: String,
    /// SHA-256 (hex) of the provider's session id, for the audit record (never the id itself).
    pub session_hash: Option<String>,
}

/// Why a login did not yield an identity; `code()` is the session error code of the shared design.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IdpError {
    #[error("the login was cancelled or returned no code")]
    LoginCancelled,
    #[error("the login answer does not belong to this browser or is stale")]
    StateMismatch,
    #[error("the identity provider is not reachable: {0}")]
    Unavailable(String),
    #[error("the identity provider refused: {0}")]
    Rejected(String),
    #[error("the identity is incomplete: {0}")]
    IdentityIncomplete(String),
    #[error("authentication method {0} is not allowed")]
    AuthMethodNotAllowed(String),
}

impl IdpError {
    pub fn code(&self) -> &'static str {
        match self {
            IdpError::LoginCancelled => "login_cancelled",
            IdpError::StateMismatch => "state_mismatch",
            IdpError::Unavailable(_) => "idp_unavailable",
            IdpError::Rejected(_) => "idp_rejected",
            IdpError::IdentityIncomplete(_) => "identity_incomplete",
            IdpError::AuthMethodNotAllowed(_) => "auth_method_not_allowed",
        }
    }
}

/// The per-attempt secrets of one login (state, OIDC nonce, PKCE verifier).
#[derive(Clone, Debug)]
pub struct LoginRequest {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// `uz`, `ru` or `en` (only the dev oneID reads it).
    pub locale: String,
}

impl LoginRequest {
    pub fn new(locale: &str) -> LoginRequest {
        LoginRequest {
            state: crate::store::clients::random_token(32),
            nonce: crate::store::clients::random_token(32),
            pkce_verifier: crate::store::clients::random_token(48),
            locale: locale.to_string(),
        }
    }
}

/// The query of the callback: `code`, `state`, and (OIDC, RFC 9207) `iss`, or an `error`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

/// The configured identity provider.
#[derive(Clone, Debug)]
pub enum Provider {
    OneId(oneid::OneIdClient),
    Oidc(oidc::OidcClient),
}

/// The callback path registered with the provider (`redirect_uri` = public URL + this).
pub const CALLBACK_PATH: &str = "/oneid/callback";

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

impl Provider {
    /// The provider of a configuration; errors name what is missing.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Provider> {
        let redirect_uri = format!("{}{CALLBACK_PATH}", cfg.public_url);
        match cfg.identity_provider.as_str() {
            "dev" => {
                if cfg.mode == Mode::Production {
                    anyhow::bail!("the development oneID (HUJJAT_IDENTITY_PROVIDER=dev) is not allowed in production");
                }
                Ok(Provider::OneId(oneid::OneIdClient {
                    endpoint: format!("{}{}", cfg.public_url, dev::PATH),
                    client_id: dev::CLIENT_ID.into(),
                    client_secret: oneid::Secret(dev::CLIENT_SECRET.into()),
                    scope: dev::CLIENT_ID.into(),
                    redirect_uri,
                    allowed_auth_methods: cfg.signing.oneid_auth_methods.clone(),
                    provider: "dev",
                    http: http_client(),
                }))
            }
            "oneid" => {
                let (Some(id), Some(secret)) = (&cfg.signing.oneid_client_id, &cfg.signing.oneid_client_secret) else {
                    anyhow::bail!(
                        "HUJJAT_IDENTITY_PROVIDER=oneid needs HUJJAT_ONEID_CLIENT_ID and HUJJAT_ONEID_CLIENT_SECRET"
                    );
                };
                Ok(Provider::OneId(oneid::OneIdClient {
                    endpoint: cfg.signing.oneid_url.clone(),
                    client_id: id.clone(),
                    client_secret: secret.clone(),
                    scope: cfg.signing.oneid_scope.clone().unwrap_or_else(|| id.clone()),
                    redirect_uri,
                    allowed_auth_methods: cfg.signing.oneid_auth_methods.clone(),
                    provider: "oneid",
                    http: http_client(),
                }))
            }
            "oidc" => {
                let (Some(issuer), Some(id)) = (&cfg.signing.oidc_issuer, &cfg.signing.oidc_client_id) else {
                    anyhow::bail!("HUJJAT_IDENTITY_PROVIDER=oidc needs HUJJAT_OIDC_ISSUER and HUJJAT_OIDC_CLIENT_ID");
                };
                Ok(Provider::Oidc(oidc::OidcClient::new(
                    issuer,
                    id,
                    cfg.signing.oidc_client_secret.as_ref().map(|s| s.0.as_str()),
                    &redirect_uri,
                    &cfg.signing.oidc_pinfl_claim,
                )))
            }
            "" => anyhow::bail!("HUJJAT_IDENTITY_PROVIDER is not set: `oneid` or `oidc`"),
            other => anyhow::bail!("HUJJAT_IDENTITY_PROVIDER must be `oneid`, `oidc` or `dev`, not `{other}`"),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Provider::OneId(c) => c.provider,
            Provider::Oidc(_) => "oidc",
        }
    }

    /// Where to send the browser (the popup) to log in.
    pub async fn authorize_url(&self, req: &LoginRequest) -> Result<String, IdpError> {
        match self {
            Provider::OneId(c) => Ok(c.authorize_url(req)),
            Provider::Oidc(c) => c.authorize_url(req).await,
        }
    }

    /// The callback: code → token → identity. `state` was checked by the caller.
    pub async fn complete(&self, cb: &Callback, req: &LoginRequest) -> Result<Identity, IdpError> {
        if cb.error.is_some() {
            return Err(IdpError::LoginCancelled);
        }
        let code = cb.code.as_deref().filter(|c| !c.is_empty()).ok_or(IdpError::LoginCancelled)?;
        match self {
            Provider::OneId(c) => c.complete(code).await,
            Provider::Oidc(c) => c.complete(code, cb.iss.as_deref(), req).await,
        }
    }
}

/// SHA-256 hex of a string (hashes of provider session ids, tokens, handles).
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Constant-time equality of two secrets (tokens, CSRF values, handles).
pub fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

pub fn is_pinfl(s: &str) -> bool {
    s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The signing name from name parts: "SURNAME GIVEN PATRONYMIC", else the full name; at most 64
/// characters (X.520 commonName): the patronymic is dropped first, then the rest is cut.
pub fn signing_name(
    family: Option<&str>,
    given: Option<&str>,
    patronymic: Option<&str>,
    full: Option<&str>,
) -> Option<String> {
    let clean =
        |s: Option<&str>| s.map(|x| x.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|x| !x.is_empty());
    let (f, g, p) = (clean(family), clean(given), clean(patronymic));
    let parts: Vec<String> = [f.clone(), g.clone(), p].into_iter().flatten().collect();
    let name = if f.is_some() || g.is_some() { parts.join(" ") } else { clean(full)? };
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    if name.chars().count() <= 64 {
        return Some(name);
    }
    let short = [f, g].into_iter().flatten().collect::<Vec<_>>().join(" ");
    let base = if !short.is_empty() && short.chars().count() <= 64 { short } else { name };
    Some(base.chars().take(64).collect::<String>().trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_certificate() {
        assert_eq!(
            signing_name(Some("RASULOV"), Some("BEKZOD"), Some("BAXODIROVICH"), None).unwrap(),
            "RASULOV BEKZOD BAXODIROVICH"
        );
        assert_eq!(signing_name(None, None, None, Some("  A  B ")).unwrap(), "A B");
        let long = "X".repeat(40);
        let n = signing_name(Some(&long), Some("BEKZOD"), Some(&long), None).unwrap();
        assert_eq!(n, format!("{long} BEKZOD"));
        let n = signing_name(Some(&"Y".repeat(70)), Some("B"), None, None).unwrap();
        assert_eq!(n.chars().count(), 64);
        assert!(signing_name(None, None, None, None).is_none());
    }
}
