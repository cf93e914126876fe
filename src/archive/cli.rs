//! `hujjat users grant|revoke|list|client-scopes` and `hujjat audit verify` (the database from
//! `DATABASE_URL` / `HUJJAT_DATA_DIR`, as the service).

use super::access;
use super::audit::{self, Agent};
use crate::store::Store;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Grant a role to a person by PINFL: `archivist` (read-only; all documents, or only those of
    /// the organizations given with --org) or `admin` (everything, the audit trail, entered-in-error).
    Grant {
        pinfl: String,
        role: String,
        /// limit an archivist to documents of this organization (tax id); repeatable
        #[arg(long = "org")]
        organizations: Vec<String>,
        /// the person's name, for listings
        #[arg(long)]
        name: Option<String>,
    },
    /// Revoke a role (or every role with --all); ends the person's archive sessions.
    Revoke {
        pinfl: String,
        role: Option<String>,
        #[arg(long, conflicts_with = "role")]
        all: bool,
    },
    /// List the granted roles.
    List {
        /// JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Set an API client's scopes: `documents` (an MIS: its own documents), `archive` (an archive
    /// system: every document, read-only), `admin`.
    ClientScopes { client_id: String, scopes: Vec<String> },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Walk the hash chain of the audit trail; exit 0 when intact, 1 naming the first broken record.
    Verify {
        /// JSON report
        #[arg(long)]
        json: bool,
    },
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().map_err(|e| eprintln!("hujjat: {e}")).ok()
}

/// The configured database; `prepare` (triggers, backfill) only for commands that write.
async fn store(prepare: bool) -> anyhow::Result<Store> {
    let cfg = crate::config::Config::from_env()?;
    let store = Store::connect(&cfg.database_url).await?;
    if prepare {
        super::prepare(&store).await?;
    }
    Ok(store)
}

fn operator() -> Agent {
    let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    Agent::system(&format!("cli:{user}")).with_role("operator")
}

pub fn users(cmd: UsersCmd) -> ExitCode {
    let Some(rt) = runtime() else { return ExitCode::from(1) };
    rt.block_on(async move {
        let store = match store(true).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hujjat users: {e:#}");
                return ExitCode::from(2);
            }
        };
        let r: Result<String, crate::error::AppError> = match cmd {
            UsersCmd::Grant { pinfl, role, organizations, name } => {
                access::grant(&store, &pinfl, &role, &organizations, name.as_deref(), &operator()).await.map(|_| {
                    let scope = if organizations.is_empty() {
                        "every document".to_string()
                    } else {
                        format!("documents of {}", organizations.join(", "))
                    };
                    format!("granted {role} to {pinfl} ({scope})")
                })
            }
            UsersCmd::Revoke { pinfl, role, all } => {
                if role.is_none() && !all {
                    eprintln!("hujjat users revoke: name the role, or --all");
                    return ExitCode::from(2);
                }
                access::revoke(&store, &pinfl, role.as_deref(), &operator())
                    .await
                    .map(|n| format!("revoked {n} role(s) of {pinfl}"))
            }
            UsersCmd::List { json } => access::list_grants(&store).await.map(|gs| {
                if json {
                    serde_json::to_string_pretty(&gs).unwrap_or_default()
                } else if gs.is_empty() {
                    "no roles granted".into()
                } else {
                    gs.iter()
                        .map(|g| {
                            format!(
                                "{}  {:<9}  {:<24}  {}  (granted {} by {})",
                                g.pinfl,
                                g.role,
                                g.display_name.clone().unwrap_or_default(),
                                if g.organizations.is_empty() { "all".into() } else { g.organizations.join(",") },
                                g.granted_at,
                                g.granted_by
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            }),
            UsersCmd::ClientScopes { client_id, scopes } => {
                let s: Vec<&str> = scopes.iter().map(String::as_str).collect();
                match access::set_client_scopes(&store, &client_id, &s).await {
                    Ok(true) => Ok(format!("client {client_id}: scopes {}", s.join(" "))),
                    Ok(false) => Err(crate::error::AppError::NotFound(format!("no client {client_id}"))),
                    Err(e) => Err(e),
                }
            }
        };
        match r {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "hujjat users: {}",
                    e.issues().first().map(|i| i.diagnostics.clone()).unwrap_or_else(|| e.to_string())
                );
                ExitCode::from(1)
            }
        }
    })
}

pub fn audit(cmd: AuditCmd) -> ExitCode {
    let Some(rt) = runtime() else { return ExitCode::from(1) };
    let AuditCmd::Verify { json } = cmd;
    rt.block_on(async move {
        let store = match store(false).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hujjat audit: {e:#}");
                return ExitCode::from(2);
            }
        };
        match audit::verify_chain(&store).await {
            Ok(r) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                } else if let Some(b) = &r.first_broken {
                    println!("audit trail BROKEN: {b}");
                } else {
                    println!(
                        "audit trail intact: {} record(s), hash chain verified up to seq {}",
                        r.records, r.head_seq
                    );
                }
                if r.ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("hujjat audit verify: {e}");
                ExitCode::from(2)
            }
        }
    })
}
