//! One configuration, from environment variables (documented in README.md).

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Development,
    Production,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub listen: SocketAddr,
    pub public_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// Signing CA (production): chain PEM (leaf-issuing CA first), PKCS#8 key PEM, older anchors.
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    pub ca_extra_anchors: Vec<PathBuf>,
    /// Identity provider: `dev`, `oneid` or `oidc` (the iframe issue); production must not be `dev`.
    pub identity_provider: String,
    /// Seconds a bearer token from `POST /oauth/token` lives.
    pub token_ttl_secs: i64,
    /// Create the demo MIS client `demo-mis` / `demo-secret` (development only).
    pub demo_client: bool,
    /// `Provenance.target` = `Bundle/<id>` instead of `#/` (R6 rule 3, for verifiers that need it).
    pub signature_target_bundle_id: bool,
    /// Claim `uz-core-provenance` on signing Provenances (servers after UZ Core 0.9.2).
    pub provenance_claim_profile: bool,
    /// Submission to the DHP (`HUJJAT_DHP_*`, issue 5).
    pub dhp: crate::submit::DhpConfig,
    /// Identity providers, signing sessions, webhooks, demo MIS (`HUJJAT_ONEID_*`, `HUJJAT_OIDC_*`, …; issue 4).
    pub signing: crate::iframe::config::SigningConfig,
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    pub fn from_env() -> anyhow::Result<Config> {
        let mode = match env("HUJJAT_MODE").as_deref() {
            None | Some("development") | Some("dev") => Mode::Development,
            Some("production") | Some("prod") => Mode::Production,
            Some(other) => {
                anyhow::bail!("HUJJAT_MODE must be `development` or `production`, not `{other}`")
            }
        };
        let listen: SocketAddr = env("HUJJAT_LISTEN")
            .unwrap_or_else(|| "127.0.0.1:8080".into())
            .parse()
            .map_err(|e| anyhow::anyhow!("HUJJAT_LISTEN: {e}"))?;
        let data_dir = PathBuf::from(env("HUJJAT_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let database_url = env("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("hujjat.db").display()));
        let public_url = env("HUJJAT_PUBLIC_URL").unwrap_or_else(|| format!("http://{listen}"));
        let identity_provider = env("HUJJAT_IDENTITY_PROVIDER").unwrap_or_else(|| {
            if mode == Mode::Development {
                "dev".into()
            } else {
                String::new()
            }
        });
        let cfg = Config {
            mode,
            listen,
            public_url: public_url.trim_end_matches('/').to_string(),
            data_dir,
            database_url,
            ca_cert: env("HUJJAT_CA_CERT").map(PathBuf::from),
            ca_key: env("HUJJAT_CA_KEY").map(PathBuf::from),
            ca_extra_anchors: env("HUJJAT_CA_EXTRA_ANCHORS")
                .map(|s| s.split(',').map(|p| PathBuf::from(p.trim())).collect())
                .unwrap_or_default(),
            identity_provider,
            token_ttl_secs: env("HUJJAT_TOKEN_TTL_SECS").and_then(|s| s.parse().ok()).unwrap_or(3600),
            demo_client: mode == Mode::Development
                && env("HUJJAT_DEMO_CLIENT").map(|v| v != "false" && v != "0").unwrap_or(true),
            signature_target_bundle_id: env("HUJJAT_SIGNATURE_TARGET").is_some_and(|v| v == "bundle-id"),
            provenance_claim_profile: env("HUJJAT_PROVENANCE_CLAIM_PROFILE").is_some_and(|v| v == "true" || v == "1"),
            dhp: crate::submit::DhpConfig::from_env(mode == Mode::Production)?,
            signing: crate::iframe::config::SigningConfig::from_env()?,
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Production refuses every development default and names each one.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.mode != Mode::Production {
            return Ok(());
        }
        let mut problems = Vec::new();
        if std::env::var("HUJJAT_DEMO_CLIENT").is_ok_and(|v| v != "false" && v != "0") {
            problems.push("the demo MIS client (HUJJAT_DEMO_CLIENT) is a development default");
        }
        if self.identity_provider.is_empty() || self.identity_provider == "dev" {
            problems.push("the development oneID (HUJJAT_IDENTITY_PROVIDER=dev, the default) is not allowed: set it to `oneid` or `oidc`");
        }
        if self.ca_cert.is_none() || self.ca_key.is_none() {
            problems.push("the development signing CA is not allowed: set HUJJAT_CA_CERT and HUJJAT_CA_KEY");
        }
        problems.extend(self.dhp.production_problem.as_deref());
        if !problems.is_empty() {
            anyhow::bail!("HUJJAT_MODE=production refuses to start:\n  - {}", problems.join("\n  - "));
        }
        Ok(())
    }

    /// A development configuration on the given database (tests).
    pub fn for_tests(database_url: &str, data_dir: PathBuf) -> Config {
        Config {
            mode: Mode::Development,
            listen: "127.0.0.1:0".parse().expect("static address"),
            public_url: "http://127.0.0.1:0".into(),
            data_dir,
            database_url: database_url.to_string(),
            ca_cert: None,
            ca_key: None,
            ca_extra_anchors: vec![],
            identity_provider: "dev".into(),
            token_ttl_secs: 3600,
            demo_client: true,
            signature_target_bundle_id: false,
            provenance_claim_profile: false,
            dhp: crate::submit::DhpConfig::default(),
            signing: crate::iframe::config::SigningConfig::for_tests(),
        }
    }
}
