//! Who may see what in the archive.
//!
//! | principal | authenticates with | sees | may |
//! |---|---|---|---|
//! | MIS client (scope `documents`, the default) | HTTP Basic / Bearer | its own documents | search, read, history, export, verify its own; amend and mark entered-in-error its own |
//! | archive system (client scope `archive`) | HTTP Basic / Bearer | every document | search, read, history, export, verify (read-only) |
//! | admin system (client scope `admin`) | HTTP Basic / Bearer | every document | as archive, plus `GET /AuditEvent` and entered-in-error |
//! | archivist (role by PINFL) | browser session (oneID / OIDC / dev) | every document, or those of the organizations of the grant | search, read, history, export, verify (read-only), the archive UI |
//! | admin (role by PINFL) | browser session | every document | as archivist, plus `GET /AuditEvent` and entered-in-error |
//!
//! Client credentials win over a session when a request carries both. Invalid credentials are
//! `401`; a valid principal without the needed role is `403`; a document the principal may not
//! see is `404` (its existence is not confirmed).
//!
//! # Browser sessions
//!
//! People log in through the shared identity module's plain browser login
//! ([`crate::iframe::login`]: `GET /login?next=…` → oneID / OIDC / the development oneID → a
//! first-party tower-sessions session); [`session_person`] reads that session. Logging in gives
//! no access by itself: roles come from `role_grants` by PINFL on every request, so a revoked role
//! takes effect at once.

use super::audit::Agent;
use crate::error::AppError;
use crate::store::clients::Client;
use crate::store::Store;
use crate::web::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sqlx::Row;

pub const ROLE_ARCHIVIST: &str = "archivist";
pub const ROLE_ADMIN: &str = "admin";
pub const ROLES: &[&str] = &[ROLE_ARCHIVIST, ROLE_ADMIN];
/// Client scopes.
pub const SCOPE_DOCUMENTS: &str = "documents";
pub const SCOPE_ARCHIVE: &str = "archive";
pub const SCOPE_ADMIN: &str = "admin";

/// Which documents a principal sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Those of this MIS client.
    Client(String),
    /// Those of these organizations (tax ids).
    Organizations(Vec<String>),
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MisClient,
    ArchiveClient,
    AdminClient,
    Archivist,
    Admin,
}

/// An authenticated principal of the archive endpoints.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: Kind,
    pub visibility: Visibility,
    pub agent: Agent,
    /// The client, for client principals.
    pub client: Option<Client>,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        matches!(self.kind, Kind::Admin | Kind::AdminClient)
    }
    pub fn is_person(&self) -> bool {
        matches!(self.kind, Kind::Admin | Kind::Archivist)
    }
    /// May read the audit trail: admins.
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden("this needs the admin role".into()))
        }
    }
    /// May this principal see a document of this client and organization?
    pub fn sees(&self, client_id: &str, organization: Option<&str>) -> bool {
        match &self.visibility {
            Visibility::All => true,
            Visibility::Client(c) => c == client_id,
            Visibility::Organizations(orgs) => organization.is_some_and(|o| orgs.iter().any(|x| x == o)),
        }
    }
    /// The principal for a client, by its scopes (admin > archive > documents).
    pub fn for_client(c: Client) -> Result<Principal, AppError> {
        let has = |s: &str| c.scopes.iter().any(|x| x == s);
        let (kind, visibility, role) = if has(SCOPE_ADMIN) {
            (Kind::AdminClient, Visibility::All, "admin")
        } else if has(SCOPE_ARCHIVE) {
            (Kind::ArchiveClient, Visibility::All, "archive")
        } else if has(SCOPE_DOCUMENTS) {
            (Kind::MisClient, Visibility::Client(c.id.clone()), "mis")
        } else {
            return Err(AppError::Forbidden("this client has no scope for documents or the archive".into()));
        };
        Ok(Principal { kind, visibility, agent: Agent::client(&c).with_role(role), client: Some(c) })
    }
    /// The principal for a logged-in person, by the roles granted to their PINFL.
    pub fn for_person(p: &SessionPerson, grants: &[Grant]) -> Result<Principal, AppError> {
        if grants.iter().any(|g| g.role == ROLE_ADMIN) {
            return Ok(Principal {
                kind: Kind::Admin,
                visibility: Visibility::All,
                agent: Agent::person(&p.pinfl, &p.name, ROLE_ADMIN),
                client: None,
            });
        }
        let arch: Vec<&Grant> = grants.iter().filter(|g| g.role == ROLE_ARCHIVIST).collect();
        if arch.is_empty() {
            return Err(AppError::Forbidden(
                "you are logged in but have no archive role; an administrator grants it with `hujjat users grant`"
                    .into(),
            ));
        }
        let visibility = if arch.iter().any(|g| g.organizations.is_empty()) {
            Visibility::All
        } else {
            let mut orgs: Vec<String> = arch.iter().flat_map(|g| g.organizations.iter().cloned()).collect();
            orgs.sort();
            orgs.dedup();
            Visibility::Organizations(orgs)
        };
        Ok(Principal {
            kind: Kind::Archivist,
            visibility,
            agent: Agent::person(&p.pinfl, &p.name, ROLE_ARCHIVIST),
            client: None,
        })
    }
}

/// The person logged in through a browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPerson {
    pub pinfl: String,
    pub name: String,
    /// The session's token for state-changing requests (the logout form).
    pub csrf: String,
}

/// The seam to the identity module: who is logged in on this request (no session → `None`).
pub async fn session_person(parts: &Parts, st: &AppState) -> Result<Option<SessionPerson>, AppError> {
    Ok(crate::iframe::login::current(parts, &st.docs.store).await?.map(|l| SessionPerson {
        pinfl: l.pinfl,
        name: l.name,
        csrf: l.csrf,
    }))
}

/// Where a browser without a session is sent: the identity module's login, back to `next`.
pub fn login_url(next: &str) -> String {
    crate::iframe::login::login_url(next)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            let crate::web::MisClient(c) = crate::web::MisClient::from_client_credentials(parts, st).await?;
            return Principal::for_client(c);
        }
        match session_person(parts, st).await? {
            Some(p) => {
                let grants = grants_of(&st.docs.store, &p.pinfl).await?;
                Principal::for_person(&p, &grants)
            }
            None => Err(AppError::Unauthorized(
                "send HTTP Basic client_id:secret or a Bearer token, or log in to the archive".into(),
            )),
        }
    }
}

// ---- role grants ----

#[derive(Debug, Clone, serde::Serialize)]
pub struct Grant {
    pub pinfl: String,
    pub role: String,
    pub organizations: Vec<String>,
    pub display_name: Option<String>,
    pub granted_by: String,
    pub granted_at: String,
}

fn row_to_grant(r: &sqlx::any::AnyRow) -> Result<Grant, sqlx::Error> {
    let orgs: String = r.try_get("organizations")?;
    Ok(Grant {
        pinfl: r.try_get("pinfl")?,
        role: r.try_get("role")?,
        organizations: orgs.split_whitespace().map(str::to_string).collect(),
        display_name: r.try_get("display_name")?,
        granted_by: r.try_get("granted_by")?,
        granted_at: r.try_get("granted_at")?,
    })
}

pub fn valid_pinfl(p: &str) -> bool {
    p.len() == 14 && p.bytes().all(|b| b.is_ascii_digit())
}

pub async fn grants_of(store: &Store, pinfl: &str) -> Result<Vec<Grant>, AppError> {
    let rows = sqlx::query(
        "SELECT pinfl, role, organizations, display_name, granted_by, granted_at FROM role_grants WHERE pinfl = $1 ORDER BY role",
    )
    .bind(pinfl)
    .fetch_all(&store.pool)
    .await?;
    Ok(rows.iter().map(row_to_grant).collect::<Result<_, _>>()?)
}

pub async fn list_grants(store: &Store) -> Result<Vec<Grant>, AppError> {
    let rows = sqlx::query(
        "SELECT pinfl, role, organizations, display_name, granted_by, granted_at FROM role_grants ORDER BY pinfl, role",
    )
    .fetch_all(&store.pool)
    .await?;
    Ok(rows.iter().map(row_to_grant).collect::<Result<_, _>>()?)
}

/// Grant (or replace) a role; audited in the same transaction.
pub async fn grant(
    store: &Store,
    pinfl: &str,
    role: &str,
    organizations: &[String],
    display_name: Option<&str>,
    granted_by: &Agent,
) -> Result<(), AppError> {
    if !valid_pinfl(pinfl) {
        return Err(AppError::BadRequest("a PINFL is 14 digits".into()));
    }
    if !ROLES.contains(&role) {
        return Err(AppError::BadRequest(format!("unknown role `{role}`; roles: {}", ROLES.join(", "))));
    }
    if let Some(bad) = organizations.iter().find(|o| o.is_empty() || o.chars().any(char::is_whitespace)) {
        return Err(AppError::BadRequest(format!("`{bad}` is not an organization tax id")));
    }
    let orgs = organizations.join(" ");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let _turn = store.write_turn().await;
    let mut tx = store.pool.begin().await?;
    sqlx::query(
        "INSERT INTO role_grants (pinfl, role, organizations, display_name, granted_by, granted_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (pinfl, role) DO UPDATE SET organizations = $3, display_name = $4, granted_by = $5, granted_at = $6",
    )
    .bind(pinfl)
    .bind(role)
    .bind(&orgs)
    .bind(display_name)
    .bind(&granted_by.id)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    let e = super::audit::AuditEntry::new(super::audit::Event::RoleGrant, granted_by.clone())
        .detail(serde_json::json!({"pinfl": pinfl, "role": role, "organizations": organizations}));
    super::audit::append(&mut tx, &e).await?;
    tx.commit().await?;
    Ok(())
}

/// Revoke one role, or every role of the PINFL (`role` = `None`). Returns how many were revoked.
pub async fn revoke(store: &Store, pinfl: &str, role: Option<&str>, by: &Agent) -> Result<u64, AppError> {
    let _turn = store.write_turn().await;
    let mut tx = store.pool.begin().await?;
    let r = match role {
        Some(role) => {
            sqlx::query("DELETE FROM role_grants WHERE pinfl = $1 AND role = $2")
                .bind(pinfl)
                .bind(role)
                .execute(&mut *tx)
                .await?
        }
        None => sqlx::query("DELETE FROM role_grants WHERE pinfl = $1").bind(pinfl).execute(&mut *tx).await?,
    };
    let n = r.rows_affected();
    if n > 0 {
        let e = super::audit::AuditEntry::new(super::audit::Event::RoleRevoke, by.clone())
            .detail(serde_json::json!({"pinfl": pinfl, "role": role.unwrap_or("*")}));
        super::audit::append(&mut tx, &e).await?;
        // roles are read on every request, so this takes effect at once; the person's browser
        // logins end too
        crate::iframe::login::end_sessions_of(&mut tx, pinfl).await?;
    }
    tx.commit().await?;
    Ok(n)
}

/// Set a client's scopes (`documents`, `archive`, `admin`), space-separated in `clients.scopes`.
pub async fn set_client_scopes(store: &Store, client_id: &str, scopes: &[&str]) -> Result<bool, AppError> {
    if let Some(bad) = scopes.iter().find(|s| ![SCOPE_DOCUMENTS, SCOPE_ARCHIVE, SCOPE_ADMIN].contains(s)) {
        return Err(AppError::BadRequest(format!("unknown scope `{bad}`")));
    }
    let r = sqlx::query("UPDATE clients SET scopes = $1 WHERE id = $2")
        .bind(scopes.join(" "))
        .bind(client_id)
        .execute(&store.pool)
        .await?;
    Ok(r.rows_affected() > 0)
}
