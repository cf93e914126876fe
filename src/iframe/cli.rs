//! `hujjat clients add|list|rotate-secret|remove`: the MIS client registry in the database.
//! Secrets are generated here, printed once, and stored only as salted hashes (the webhook secret
//! is kept as it is: hujjat needs it to sign webhooks).

use super::api::{check_origin, check_webhook_url};
use crate::store::clients::random_token;
use crate::store::Store;
use clap::Subcommand;
use sqlx::Row;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum ClientsCmd {
    /// Register an MIS client; prints its secret (and webhook secret) once.
    Add {
        /// client id, e.g. `city-hospital-1`
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// an origin allowed to embed the signing iframe (exact `https://host[:port]`); repeatable
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// where hujjat POSTs signing-session events
        #[arg(long)]
        webhook_url: Option<String>,
    },
    /// The registered clients (never their secrets).
    List,
    /// A new secret for a client (the old one stops working at once); `--webhook` rotates the
    /// webhook secret instead.
    RotateSecret {
        id: String,
        #[arg(long)]
        webhook: bool,
    },
    /// Remove a client and its tokens.
    Remove { id: String },
}

pub fn clients(cmd: ClientsCmd) -> ExitCode {
    let config = match crate::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hujjat clients: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hujjat clients: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cmd, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hujjat clients: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cmd: ClientsCmd, config: crate::config::Config) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&config.database_url).await?;
    let exists = |id: String| {
        let pool = store.pool.clone();
        async move {
            anyhow::Ok(
                sqlx::query("SELECT id FROM clients WHERE id = $1").bind(id).fetch_optional(&pool).await?.is_some(),
            )
        }
    };
    match cmd {
        ClientsCmd::Add { id, name, origins, webhook_url } => {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
                eprintln!("hujjat clients add: the id may use letters, digits, `-`, `_` and `.`");
                return Ok(ExitCode::from(2));
            }
            for o in &origins {
                if let Err(e) = check_origin(o, config.mode) {
                    eprintln!("hujjat clients add: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
            if let Some(w) = &webhook_url {
                if let Err(e) = check_webhook_url(w, config.mode) {
                    eprintln!("hujjat clients add: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
            if exists(id.clone()).await? {
                eprintln!("hujjat clients add: client `{id}` exists (rotate-secret, or remove it first)");
                return Ok(ExitCode::from(1));
            }
            let secret = random_token(32);
            store.upsert_client(&id, name.as_deref().unwrap_or(&id), &secret, &origins, webhook_url.as_deref()).await?;
            let hook_secret = webhook_url.as_ref().map(|_| super::webhook::new_secret());
            super::api::set_client_extras(&store, &id, hook_secret.as_deref()).await?;
            let row = sqlx::query("SELECT secret_salt, secret_hash FROM clients WHERE id = $1")
                .bind(&id)
                .fetch_one(&store.pool)
                .await?;
            let (salt, hash): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            println!("client_id:      {id}");
            println!("client_secret:  {secret}");
            if let Some(h) = hook_secret {
                println!("webhook_secret: {h}");
            }
            println!("secretHash:     {salt}:{hash}   (for HUJJAT_CLIENTS_FILE)");
            println!("Store the secrets now: they are not shown again.");
        }
        ClientsCmd::List => {
            let rows = sqlx::query("SELECT id, name, embed_origins, webhook_url, created_at FROM clients ORDER BY id")
                .fetch_all(&store.pool)
                .await?;
            for r in rows {
                let id: String = r.try_get("id")?;
                let name: String = r.try_get("name")?;
                let origins: String = r.try_get("embed_origins")?;
                let hook: Option<String> = r.try_get("webhook_url")?;
                let origins: Vec<String> = serde_json::from_str(&origins).unwrap_or_default();
                println!(
                    "{id}\t{name}\torigins: {}\twebhook: {}",
                    if origins.is_empty() { "-".into() } else { origins.join(" ") },
                    hook.unwrap_or_else(|| "-".into())
                );
            }
        }
        ClientsCmd::RotateSecret { id, webhook } => {
            if !exists(id.clone()).await? {
                eprintln!("hujjat clients rotate-secret: no client `{id}`");
                return Ok(ExitCode::from(1));
            }
            if webhook {
                let s = super::webhook::new_secret();
                super::api::set_client_extras(&store, &id, Some(&s)).await?;
                println!("webhook_secret: {s}");
            } else {
                let secret = random_token(32);
                let salt = random_token(16);
                sqlx::query("UPDATE clients SET secret_salt = $2, secret_hash = $3 WHERE id = $1")
                    .bind(&id)
                    .bind(&salt)
                    .bind(crate::store::clients::hash_secret(&salt, &secret))
                    .execute(&store.pool)
                    .await?;
                // tokens issued with the old secret end too
                sqlx::query("DELETE FROM access_tokens WHERE client_id = $1").bind(&id).execute(&store.pool).await?;
                println!("client_secret:  {secret}");
            }
            println!("Store it now: it is not shown again.");
        }
        ClientsCmd::Remove { id } => {
            if !store.remove_client(&id).await? {
                eprintln!("hujjat clients remove: no client `{id}`");
                return Ok(ExitCode::from(1));
            }
            println!("removed {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
