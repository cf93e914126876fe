//! Support for the DHP submission tests: the fake DHP (tests/dhp-fake: oidc-provider + a FHIR
//! endpoint with fault injection), a service with the worker on, signed-document seeding, and the
//! `hujjat` binary as a separate process (for SIGKILL and several nodes).
#![allow(dead_code)]

use crate::common::{fresh_database, project_root, DEMO};
use hujjat::config::Config;
use hujjat::sign::Signer;
use hujjat::submit::DhpConfig;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fake DHP, a node process that dies with the test (it exits when its stdin closes).
pub struct DhpFake {
    pub fhir: String,
    pub token: String,
    pub admin: String,
    pub client_id: String,
    pub client_secret: String,
    child: Child,
    http: reqwest::Client,
}

impl Drop for DhpFake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DhpFake {
    /// Start the fake; `env` e.g. `[("TOKEN_TTL", "5")]`.
    pub fn start(env: &[(&str, &str)]) -> DhpFake {
        let dir = project_root().join("tests/dhp-fake");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "tests/dhp-fake is not installed: run scripts/test, or `npm ci` in {}",
            dir.display()
        );
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("server.js"))
            .env("HUJJAT_SHARED", crate::common::shared())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("node (Node.js) is needed for the fake DHP");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("fake DHP start line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("fake DHP did not start: {e}: {line}"));
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        DhpFake {
            fhir: s("fhir"),
            token: s("token"),
            admin: s("admin"),
            client_id: s("clientId"),
            client_secret: s("clientSecret"),
            child,
            http: reqwest::Client::new(),
        }
    }

    /// The worker settings for this fake: short timeouts and backoff for tests.
    pub fn config(&self) -> DhpConfig {
        DhpConfig {
            enabled: true,
            fhir_base: self.fhir.clone(),
            token_url: self.token.clone(),
            client_id: self.client_id.clone(),
            client_secret: hujjat::submit::config::Secret(self.client_secret.clone()),
            timeout: Duration::from_secs(2),
            lease: Duration::from_secs(10),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            poll_interval: Duration::from_millis(50),
            concurrency: 4,
            ..DhpConfig::default()
        }
    }

    /// The same settings as `HUJJAT_DHP_*` variables, for the binary.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("HUJJAT_DHP_SUBMIT", "on"),
            ("HUJJAT_DHP_FHIR_BASE", self.fhir.as_str()),
            ("HUJJAT_DHP_TOKEN_URL", self.token.as_str()),
            ("HUJJAT_DHP_CLIENT_ID", self.client_id.as_str()),
            ("HUJJAT_DHP_CLIENT_SECRET", self.client_secret.as_str()),
            ("HUJJAT_DHP_TIMEOUT_SECS", "2"),
            ("HUJJAT_DHP_LEASE_SECS", "10"),
            ("HUJJAT_DHP_BACKOFF_BASE_MS", "50"),
            ("HUJJAT_DHP_BACKOFF_MAX_SECS", "2"),
            ("HUJJAT_DHP_POLL_MS", "100"),
            ("HUJJAT_DHP_CONCURRENCY", "4"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(format!("{}/{path}", self.admin)).json(&body).send().await.expect("fake admin");
        assert!(r.status().is_success(), "fake admin {path}: {}", r.status());
        r.json().await.expect("fake admin json")
    }

    /// `{"queue": [{"fault": "500", "on": "submit"}, …], "random": {"rate", "kinds", "params"}}`
    pub async fn faults(&self, spec: Value) -> Value {
        self.post("faults", spec).await
    }

    pub async fn settings(&self, s: Value) -> Value {
        self.post("settings", s).await
    }

    pub async fn patients(&self, list: &[(&str, &str)]) {
        let p: Vec<Value> = list.iter().map(|(pinfl, id)| json!({"pinfl": pinfl, "id": id})).collect();
        self.post("patients", json!({ "patients": p })).await;
    }

    pub async fn state(&self) -> Value {
        self.http.get(format!("{}/state", self.admin)).send().await.expect("fake state").json().await.expect("json")
    }

    /// Validate every Bundle created so far with ../shared/tools/fhir-validate; panics on failures.
    pub async fn validate_all(&self) -> u64 {
        let v = self.post("validate", json!({})).await;
        let failed = v["failed"].as_array().cloned().unwrap_or_default();
        assert!(failed.is_empty(), "fhir-validate refused Bundles the fake DHP accepted: {failed:#?}");
        v["validated"].as_u64().unwrap()
    }

    /// The exact bytes the fake stored for a DHP id.
    pub async fn stored(&self, id: &str) -> String {
        self.http.get(format!("{}/bundle?id={id}", self.admin)).send().await.unwrap().text().await.unwrap()
    }
}

/// The service with the submission worker on (or off: `dhp.enabled = false`), on a random port.
pub struct SubmitApp {
    pub base: String,
    pub http: reqwest::Client,
    pub state: hujjat::web::AppState,
    pub worker: Option<hujjat::submit::Worker>,
    pub database_url: String,
    pub dir: tempfile::TempDir,
}

impl SubmitApp {
    pub async fn spawn(dhp: DhpConfig) -> SubmitApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = fresh_database(dir.path()).await;
        let mut config = Config::for_tests(&url, dir.path().to_path_buf());
        config.dhp = dhp;
        let (router, state) = hujjat::app::build(config).await.expect("build app");
        let worker = hujjat::submit::start(state.docs.store.clone(), state.config.dhp.clone()).expect("worker");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.ok();
        });
        SubmitApp {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            state,
            worker,
            database_url: url,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Create a document of `form` from `input` as the demo client; its id.
    pub async fn create(&self, form: &str, input: &Value) -> String {
        let client = self.state.docs.store.authenticate_client(DEMO.0, DEMO.1).await.unwrap().unwrap();
        let mut input = input.clone();
        input.as_object_mut().unwrap().remove("documentId");
        self.state.docs.create(&client, form, input).await.expect("create").id
    }

    /// Sign version `version` by the practitioner with `pinfl`; the signed text.
    pub async fn sign(&self, id: &str, version: i64, input: &Value, pinfl: &str) -> String {
        self.state.docs.sign(id, version, &signer_for(input, pinfl)).await.expect("sign").bundle
    }

    pub async fn submission(&self, id: &str, auth: (&str, &str)) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/documents/{id}/submission")))
            .basic_auth(auth.0, Some(auth.1))
            .send()
            .await
            .unwrap()
    }

    /// Wait until the document's submission is `submitted` or `rejected`; its view.
    pub async fn settled(&self, id: &str, within: Duration) -> Value {
        let end = Instant::now() + within;
        loop {
            let v = self.state.docs.store.submission_view(id).await.unwrap();
            if let Some(v) = &v {
                if v["state"] == "submitted" || v["state"] == "rejected" {
                    return v.clone();
                }
            }
            assert!(Instant::now() < end, "document {id} did not settle in {within:?}: {v:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn signer_for(input: &Value, pinfl: &str) -> Signer {
    let p = input["practitioners"].as_array().unwrap().iter().find(|p| p["pinfl"] == pinfl).unwrap();
    let n = &p["name"];
    // as the identity module makes it from oneID's name parts: white space folded, at most 64 characters
    let name =
        hujjat::identity::signing_name(n["family"].as_str(), n["given"].as_str(), n["patronymic"].as_str(), None)
            .expect("a practitioner has a name");
    Signer { pinfl: pinfl.to_string(), name, role_display: p["positionText"].as_str().unwrap_or("").to_string() }
}

pub fn attending(input: &Value) -> String {
    input["responsiblePersons"]["attendingDoctor"].as_str().unwrap().to_string()
}

/// Another practitioner of the document than the attending doctor.
pub fn second(input: &Value) -> Option<String> {
    let a = attending(input);
    input["practitioners"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pinfl"].as_str())
        .find(|p| *p != a)
        .map(str::to_string)
}

/// One seeded, signed document.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub id: String,
    /// `system|value` of the Bundle identifier, as the fake keys it
    pub identifier: String,
    pub pinfl: Option<String>,
    pub sha256: String,
}

/// Small valid inputs of both forms (fast to sign, and to validate by the thousand).
const SMALL_INPUTS: [(&str, &str); 7] = [
    ("003", "form-003/minimal.json"),
    ("096", "form-096/minimal.json"),
    ("003", "form-003/minimal-status-localis-only.json"),
    ("096", "form-096/required-only.json"),
    ("003", "form-003/minimal-unidentified-died.json"),
    ("003", "form-003/minimal-unused-practitioner.json"),
    ("003", "form-003/no-optional-sections.json"),
];

/// Create and sign `n` documents (both forms, small inputs in turn) directly into the database at
/// `url` through the library, the way the service does; the worker is not started.
pub async fn seed_signed(url: &str, dir: &Path, n: usize) -> Vec<Seeded> {
    let config = Config::for_tests(url, dir.to_path_buf());
    let (_router, state) = hujjat::app::build(config).await.expect("build");
    let client = state.docs.store.authenticate_client(DEMO.0, DEMO.1).await.unwrap().unwrap();
    let inputs: Vec<(&str, Value)> = SMALL_INPUTS
        .iter()
        .map(|(f, p)| (*f, crate::common::read_json(project_root().join("tests/data").join(p))))
        .collect();
    // a few at a time: composing and signing use the CPU, the database serialises the writes
    let mut tasks = tokio::task::JoinSet::new();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (form, input) = &inputs[i % inputs.len()];
        let (form, mut input, docs, client) = (form.to_string(), input.clone(), state.docs.clone(), client.clone());
        input.as_object_mut().unwrap().remove("documentId");
        if tasks.len() >= 4 {
            out.push(tasks.join_next().await.unwrap().unwrap());
        }
        tasks.spawn(async move {
            let created = docs.create(&client, &form, input.clone()).await.expect("create");
            let signed = docs.sign(&created.id, 1, &signer_for(&input, &attending(&input))).await.expect("sign");
            let doc: Value = serde_json::from_str(&signed.bundle).unwrap();
            Seeded {
                id: created.id,
                identifier: format!(
                    "{}|{}",
                    doc["identifier"]["system"].as_str().unwrap(),
                    doc["identifier"]["value"].as_str().unwrap()
                ),
                pinfl: input["patient"]["pinfl"].as_str().map(str::to_string),
                sha256: sha256_hex(signed.bundle.as_bytes()),
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        out.push(r.unwrap());
    }
    state.docs.store.pool.close().await;
    out
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// The `hujjat` binary as a node of the cluster, logging to a file.
pub struct Node {
    pub child: Child,
    pub log: PathBuf,
}

impl Node {
    pub fn start(url: &str, dir: &Path, fake_env: &[(String, String)], name: &str) -> Node {
        let log = dir.join(format!("{name}.log"));
        let f = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hujjat"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("HUJJAT_DATA_DIR", dir)
            .env("HUJJAT_LISTEN", "127.0.0.1:0")
            .env("HUJJAT_DEMO_CLIENT", "false")
            .env("HUJJAT_LOG", "warn")
            .envs(fake_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("start hujjat");
        Node { child, log }
    }

    /// SIGKILL: no shutdown, leases left behind.
    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    pub fn log_tail(&self) -> String {
        crate::common::tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 40)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A pool on the test database for checking the outbox from outside the nodes.
pub async fn pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(2).connect(url).await.expect("connect")
}

/// submission state → count
pub async fn states(pool: &sqlx::AnyPool) -> std::collections::BTreeMap<String, i64> {
    use sqlx::Row;
    let rows =
        sqlx::query("SELECT state, COUNT(*) AS n FROM submissions GROUP BY state").fetch_all(pool).await.unwrap();
    rows.iter().map(|r| (r.get::<String, _>("state"), r.get::<i64, _>("n"))).collect()
}

pub fn json_of(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

pub fn data_dir(dir: &Path) -> PathBuf {
    dir.to_path_buf()
}
