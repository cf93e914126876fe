//! Configuration of identity providers, signing sessions, webhooks and the demo MIS
//! (`Config::signing`; environment variables in README.md).

use crate::identity::oneid::Secret;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct SigningConfig {
    /// `HUJJAT_ONEID_URL`: the one oneID endpoint.
    pub oneid_url: String,
    pub oneid_client_id: Option<String>,
    pub oneid_client_secret: Option<Secret>,
    /// default: the client id (oneID issues the scope per client, often equal to it)
    pub oneid_scope: Option<String>,
    /// `HUJJAT_ONEID_AUTH_METHODS`: allowed `auth_method`s, comma-separated; empty = any.
    pub oneid_auth_methods: Vec<String>,
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    pub oidc_client_secret: Option<Secret>,
    /// the claim that holds the PINFL (default `sub`)
    pub oidc_pinfl_claim: String,
    /// default lifetime of a signing session (the launch URL lives at most 5 minutes of it)
    pub session_ttl_secs: i64,
    /// first webhook retry delay; each next one is 3 times longer (capped at 6 hours)
    pub webhook_retry_base_ms: u64,
    /// `HUJJAT_CLIENTS_FILE`: MIS clients to create at start (JSON)
    pub clients_file: Option<PathBuf>,
    /// development: where the demo MIS listens, and its origin (`http://localhost:<port>`)
    pub demo_listen: SocketAddr,
    pub demo_origin: String,
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

impl SigningConfig {
    pub fn from_env() -> anyhow::Result<SigningConfig> {
        let num = |k: &str, d: i64| -> anyhow::Result<i64> {
            match env(k) {
                None => Ok(d),
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| anyhow::anyhow!("{k} must be a positive number")),
            }
        };
        let demo_listen: SocketAddr = env("HUJJAT_DEMO_LISTEN")
            .unwrap_or_else(|| "127.0.0.1:8081".into())
            .parse()
            .map_err(|e| anyhow::anyhow!("HUJJAT_DEMO_LISTEN: {e}"))?;
        Ok(SigningConfig {
            oneid_url: env("HUJJAT_ONEID_URL")
                .unwrap_or_else(|| "https://sso.egov.uz/sso/oauth/Authorization.do".into()),
            oneid_client_id: env("HUJJAT_ONEID_CLIENT_ID"),
            oneid_client_secret: env("HUJJAT_ONEID_CLIENT_SECRET").map(Secret),
            oneid_scope: env("HUJJAT_ONEID_SCOPE"),
            oneid_auth_methods: env("HUJJAT_ONEID_AUTH_METHODS")
                .map(|s| s.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect())
                .unwrap_or_default(),
            oidc_issuer: env("HUJJAT_OIDC_ISSUER"),
            oidc_client_id: env("HUJJAT_OIDC_CLIENT_ID"),
            oidc_client_secret: env("HUJJAT_OIDC_CLIENT_SECRET").map(Secret),
            oidc_pinfl_claim: env("HUJJAT_OIDC_PINFL_CLAIM").unwrap_or_else(|| "sub".into()),
            session_ttl_secs: num("HUJJAT_SIGNING_SESSION_TTL_SECS", 1800)?,
            webhook_retry_base_ms: num("HUJJAT_WEBHOOK_RETRY_BASE_MS", 10_000)? as u64,
            clients_file: env("HUJJAT_CLIENTS_FILE").map(PathBuf::from),
            demo_origin: format!("http://localhost:{}", demo_listen.port()),
            demo_listen,
        })
    }

    pub fn for_tests() -> SigningConfig {
        SigningConfig {
            oneid_url: "https://sso.egov.uz/sso/oauth/Authorization.do".into(),
            oneid_client_id: None,
            oneid_client_secret: None,
            oneid_scope: None,
            oneid_auth_methods: vec![],
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_pinfl_claim: "sub".into(),
            session_ttl_secs: 1800,
            webhook_retry_base_ms: 200,
            clients_file: None,
            demo_listen: "127.0.0.1:0".parse().expect("static address"),
            demo_origin: "http://localhost:8081".into(),
        }
    }
}
