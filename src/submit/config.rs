//! DHP submission settings (`HUJJAT_DHP_*`, documented in README.md).

use std::collections::BTreeMap;
use std::time::Duration;

pub const PLAYGROUND_BASE: &str = "https://playground.dhp.uz/fhir";
pub const PRODUCTION_BASE: &str = "https://fhir.dhp.uz";
pub const DEFAULT_TOKEN_URL: &str = "https://sso.dhp.uz/oauth/token";

/// How a signed document goes to the DHP (dhp-platform.md §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitMode {
    /// `POST [base]/Bundle` with the document itself (the default).
    Bundle,
    /// `POST [base]` with a transaction Bundle whose one entry is the document (conditional create).
    Transaction,
}

/// How many signatures a document needs before it is queued: a default and per-form overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredSignatures {
    pub default: i64,
    pub per_form: BTreeMap<String, i64>,
}

impl Default for RequiredSignatures {
    fn default() -> Self {
        RequiredSignatures { default: 1, per_form: BTreeMap::new() }
    }
}

impl RequiredSignatures {
    pub fn for_form(&self, form: &str) -> i64 {
        self.per_form.get(form).copied().unwrap_or(self.default)
    }

    /// `2` (every form) or `003=2,096=1` (per form; others 1) or `2,096=1`.
    pub fn parse(s: &str) -> anyhow::Result<RequiredSignatures> {
        let mut r = RequiredSignatures::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (form, n) = match part.split_once('=') {
                Some((f, n)) => (Some(f.trim()), n.trim()),
                None => (None, part),
            };
            let n: i64 =
                n.parse().map_err(|_| anyhow::anyhow!("`{part}`: the number of signatures must be a whole number"))?;
            if !(1..=20).contains(&n) {
                anyhow::bail!("`{part}`: a document needs between 1 and 20 signatures");
            }
            match form {
                Some("") => anyhow::bail!("`{part}`: the form is missing"),
                Some(f) => {
                    r.per_form.insert(f.to_string(), n);
                }
                None => r.default = n,
            }
        }
        Ok(r)
    }
}

/// A secret that never appears in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[derive(Debug, Clone)]
pub struct DhpConfig {
    /// Run the submission worker on this node. Documents are queued whether or not it runs.
    pub enabled: bool,
    /// FHIR base without a trailing slash.
    pub fhir_base: String,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Per HTTP request to the DHP or its token endpoint.
    pub timeout: Duration,
    pub submit_mode: SubmitMode,
    pub required_signatures: RequiredSignatures,
    /// Look the patient up by PINFL before sending and record the DHP Patient id.
    pub patient_matching: bool,
    /// Items one node works on at the same time.
    pub concurrency: usize,
    /// How often an idle worker looks for due items.
    pub poll_interval: Duration,
    /// How long a node holds an item; another node takes it over after that. Longer than an attempt.
    pub lease: Duration,
    /// Exponential backoff: first delay, and the cap (also the cap on `Retry-After`).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Set by `from_env` in production when nothing would reach the DHP; `Config::check` lists it.
    pub production_problem: Option<String>,
}

impl Default for DhpConfig {
    fn default() -> Self {
        DhpConfig {
            enabled: false,
            fhir_base: PLAYGROUND_BASE.into(),
            token_url: DEFAULT_TOKEN_URL.into(),
            client_id: String::new(),
            client_secret: Secret::default(),
            timeout: Duration::from_secs(30),
            submit_mode: SubmitMode::Bundle,
            required_signatures: RequiredSignatures::default(),
            patient_matching: true,
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(180),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(3600),
            production_problem: None,
        }
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

fn flag(k: &str) -> anyhow::Result<Option<bool>> {
    match env(k).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "on" | "yes") => Ok(Some(true)),
        Some("0" | "false" | "off" | "no") => Ok(Some(false)),
        Some(other) => anyhow::bail!("{k} must be on or off, not `{other}`"),
    }
}

fn millis(k: &str, default: Duration) -> anyhow::Result<Duration> {
    match env(k) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| anyhow::anyhow!("{k} must be milliseconds, not `{v}`")),
    }
}

fn secs(k: &str, default: Duration) -> anyhow::Result<Duration> {
    match env(k) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| anyhow::anyhow!("{k} must be a positive number of seconds, not `{v}`")),
    }
}

/// `playground`, `production` or a URL.
pub fn resolve_base(s: &str) -> anyhow::Result<String> {
    let url = match s.trim() {
        "playground" => PLAYGROUND_BASE.to_string(),
        "production" => PRODUCTION_BASE.to_string(),
        other => other.trim_end_matches('/').to_string(),
    };
    check_url("HUJJAT_DHP_FHIR_BASE", &url)?;
    Ok(url)
}

fn check_url(k: &str, url: &str) -> anyhow::Result<()> {
    match reqwest::Url::parse(url) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => Ok(()),
        _ => anyhow::bail!("{k} must be `playground`, `production` or an http(s) URL, not `{url}`"),
    }
}

impl DhpConfig {
    /// From `HUJJAT_DHP_*`. In `production`, no credentials and no explicit `HUJJAT_DHP_SUBMIT=off`
    /// is a problem that `Config::check` reports with the others.
    pub fn from_env(production: bool) -> anyhow::Result<DhpConfig> {
        let d = DhpConfig::default();
        let client_id = env("HUJJAT_DHP_CLIENT_ID").unwrap_or_default();
        let client_secret = match (env("HUJJAT_DHP_CLIENT_SECRET"), env("HUJJAT_DHP_CLIENT_SECRET_FILE")) {
            (Some(s), _) => s,
            (None, Some(f)) => std::fs::read_to_string(&f)
                .map_err(|e| anyhow::anyhow!("HUJJAT_DHP_CLIENT_SECRET_FILE {f}: {e}"))?
                .trim()
                .to_string(),
            (None, None) => String::new(),
        };
        // on by default once credentials are configured; off (documents stay queued) otherwise
        let enabled = flag("HUJJAT_DHP_SUBMIT")?.unwrap_or(!client_id.is_empty());
        let mut cfg =
            DhpConfig {
                enabled,
                fhir_base: resolve_base(&env("HUJJAT_DHP_FHIR_BASE").unwrap_or_else(|| "playground".into()))?,
                token_url: env("HUJJAT_DHP_TOKEN_URL").unwrap_or(d.token_url.clone()),
                client_id,
                client_secret: Secret(client_secret),
                timeout: secs("HUJJAT_DHP_TIMEOUT_SECS", d.timeout)?,
                submit_mode: match env("HUJJAT_DHP_SUBMIT_MODE").as_deref() {
                    None | Some("bundle") => SubmitMode::Bundle,
                    Some("transaction") => SubmitMode::Transaction,
                    Some(o) => anyhow::bail!("HUJJAT_DHP_SUBMIT_MODE must be `bundle` or `transaction`, not `{o}`"),
                },
                required_signatures: match env("HUJJAT_DHP_REQUIRED_SIGNATURES") {
                    Some(s) => RequiredSignatures::parse(&s)
                        .map_err(|e| anyhow::anyhow!("HUJJAT_DHP_REQUIRED_SIGNATURES: {e}"))?,
                    None => RequiredSignatures::default(),
                },
                patient_matching: flag("HUJJAT_DHP_PATIENT_MATCHING")?.unwrap_or(true),
                concurrency: match env("HUJJAT_DHP_CONCURRENCY") {
                    Some(v) => v.parse().ok().filter(|n| (1..=256).contains(n)).ok_or_else(|| {
                        anyhow::anyhow!("HUJJAT_DHP_CONCURRENCY must be between 1 and 256, not `{v}`")
                    })?,
                    None => d.concurrency,
                },
                poll_interval: millis("HUJJAT_DHP_POLL_MS", d.poll_interval)?,
                lease: secs("HUJJAT_DHP_LEASE_SECS", d.lease)?,
                backoff_base: millis("HUJJAT_DHP_BACKOFF_BASE_MS", d.backoff_base)?,
                backoff_max: secs("HUJJAT_DHP_BACKOFF_MAX_SECS", d.backoff_max)?,
                production_problem: None,
            };
        cfg.check()?;
        // production sends signed documents unless told explicitly not to
        if production && !cfg.enabled && env("HUJJAT_DHP_SUBMIT").is_none() {
            cfg.production_problem = Some(
                "DHP submission needs HUJJAT_DHP_CLIENT_ID and HUJJAT_DHP_CLIENT_SECRET (or HUJJAT_DHP_SUBMIT=off to queue signed documents without sending them)".into(),
            );
        }
        Ok(cfg)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        check_url("HUJJAT_DHP_FHIR_BASE", &self.fhir_base)?;
        check_url("HUJJAT_DHP_TOKEN_URL", &self.token_url)?;
        if self.enabled && (self.client_id.is_empty() || self.client_secret.0.is_empty()) {
            anyhow::bail!(
                "DHP submission is on but HUJJAT_DHP_CLIENT_ID / HUJJAT_DHP_CLIENT_SECRET are not set (or set HUJJAT_DHP_SUBMIT=off)"
            );
        }
        // An attempt (token, patient search, a 401 refresh and the POST) must end inside the lease.
        if self.lease < self.timeout * 5 {
            anyhow::bail!(
                "HUJJAT_DHP_LEASE_SECS ({:?}) must be at least 5 × HUJJAT_DHP_TIMEOUT_SECS ({:?})",
                self.lease,
                self.timeout
            );
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            anyhow::bail!("HUJJAT_DHP_BACKOFF_BASE_MS must be > 0 and not above HUJJAT_DHP_BACKOFF_MAX_SECS");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_signatures() {
        let r = RequiredSignatures::parse("003=2, 096=1").unwrap();
        assert_eq!((r.for_form("003"), r.for_form("096"), r.for_form("066")), (2, 1, 1));
        let r = RequiredSignatures::parse("3,096=1").unwrap();
        assert_eq!((r.for_form("003"), r.for_form("096")), (3, 1));
        assert!(RequiredSignatures::parse("003=0").is_err());
        assert!(RequiredSignatures::parse("x").is_err());
        assert!(RequiredSignatures::parse("=2").is_err());
    }

    #[test]
    fn bases_and_secrets() {
        assert_eq!(resolve_base("playground").unwrap(), PLAYGROUND_BASE);
        assert_eq!(resolve_base("http://127.0.0.1:9/fhir/").unwrap(), "http://127.0.0.1:9/fhir");
        assert!(resolve_base("ftp://x").is_err());
        assert!(resolve_base("not a url").is_err());
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "\"***\"");
        assert!(DhpConfig::default().check().is_ok());
        assert!(DhpConfig { enabled: true, ..DhpConfig::default() }.check().is_err(), "on without credentials");
        let short_lease = DhpConfig { lease: Duration::from_secs(60), ..DhpConfig::default() };
        assert!(short_lease.check().is_err(), "the lease must outlast an attempt");
    }
}
