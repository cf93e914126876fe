use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hujjat", version, about = "Signed FHIR documents for the DHP")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the service (the default).
    Serve,
    /// Print the document Bundle for a form JSON file (no server, no database).
    Compose { file: PathBuf },
    /// Verify the signatures of a document Bundle; exit 0 only when it has at least one signature
    /// and every signature verifies (crypto, header rules, chain to an anchor, times).
    Verify {
        file: PathBuf,
        /// trust anchor PEM file(s); default: the configured signing CA's anchors
        #[arg(long)]
        trust: Vec<PathBuf>,
        /// check everything but the trust anchor (the report says `indeterminate`), e.g. for the
        /// R6 worked example, whose certificate no anchor of ours issued
        #[arg(long, conflicts_with = "trust")]
        no_trust: bool,
        /// verification time: `now` (default), `sigT`, or an RFC 3339 instant
        #[arg(long)]
        at: Option<String>,
    },
    /// Archive roles by PINFL (archivist, admin) and API client scopes.
    Users {
        #[command(subcommand)]
        cmd: hujjat::archive::cli::UsersCmd,
    },
    /// The audit trail: `hujjat audit verify` walks its hash chain.
    Audit {
        #[command(subcommand)]
        cmd: hujjat::archive::cli::AuditCmd,
    },
    /// MIS clients: `add`, `list`, `rotate-secret`, `remove` (secrets are printed once).
    Clients {
        #[command(subcommand)]
        cmd: hujjat::iframe::cli::ClientsCmd,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Some(Cmd::Compose { file }) => compose_file(&file),
        Some(Cmd::Verify { file, trust, no_trust, at }) => verify_file(&file, trust, no_trust, at),
        Some(Cmd::Users { cmd }) => hujjat::archive::cli::users(cmd),
        Some(Cmd::Audit { cmd }) => hujjat::archive::cli::audit(cmd),
        Some(Cmd::Clients { cmd }) => hujjat::iframe::cli::clients(cmd),
        None | Some(Cmd::Serve) => serve(),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUJJAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

fn serve() -> ExitCode {
    init_tracing();
    let config = match hujjat::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hujjat: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hujjat: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(hujjat::app::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hujjat: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn compose_file(file: &PathBuf) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hujjat compose: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let input: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("hujjat compose: {} is not JSON: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let composer = match hujjat::compose::Composer::builtin() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hujjat compose: {e}");
            return ExitCode::from(3);
        }
    };
    let now = chrono::Local::now().fixed_offset();
    let ctx = hujjat::compose::ComposeContext::new(uuid::Uuid::new_v4(), now);
    match composer.compose_any(&input, &ctx) {
        Ok(b) => {
            println!("{}", serde_json::to_string_pretty(&b).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", serde_json::to_string_pretty(&e.outcome()).unwrap_or_default());
            eprintln!("hujjat compose: {e}");
            ExitCode::from(1)
        }
    }
}

fn verify_file(file: &std::path::Path, mut trust: Vec<PathBuf>, no_trust: bool, at: Option<String>) -> ExitCode {
    let mut temp = None;
    if trust.is_empty() && !no_trust {
        // the configured anchors: production PEMs, or the development CA under the data dir
        let ca = match hujjat::config::Config::from_env() {
            Ok(cfg) => match (&cfg.ca_cert, &cfg.ca_key) {
                (Some(c), Some(k)) => hujjat::sign::SigningCa::load_pem(c, k, &cfg.ca_extra_anchors).map(Some),
                _ if cfg.data_dir.join("signing-ca").exists() => {
                    hujjat::sign::SigningCa::load_or_create_dev(&cfg.data_dir).map(Some)
                }
                _ => Ok(None),
            },
            Err(e) => {
                eprintln!("hujjat verify: {e}");
                return ExitCode::from(2);
            }
        };
        match ca {
            Ok(Some(ca)) => {
                let path = std::env::temp_dir().join(format!("hujjat-anchors-{}.pem", std::process::id()));
                if let Err(e) = std::fs::write(&path, ca.anchors_pem()) {
                    eprintln!("hujjat verify: {e}");
                    return ExitCode::from(2);
                }
                trust.push(path.clone());
                temp = Some(path);
            }
            Ok(None) => {
                eprintln!("hujjat verify: no trust anchors configured here: pass --trust CA.pem (or --no-trust)");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("hujjat verify: the configured signing CA cannot be loaded: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let code = hujjat::sign::cli_verify(file, &trust, at);
    if let Some(t) = temp {
        let _ = std::fs::remove_file(t);
    }
    ExitCode::from(code.clamp(0, 255) as u8)
}
