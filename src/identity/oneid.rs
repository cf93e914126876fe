//! The oneID client: one endpoint (`…/sso/oauth/Authorization.do`), the call chosen by
//! `response_type=one_code` (browser) or `grant_type` (server to server, form bodies so the secret
//! stays out of URL logs): `one_authorization_code`, `one_access_token_identify`, `one_log_out`.
//! User info comes in two spellings (`sur_name/first_name/mid_name` and the newer
//! `surname/firstname/lastname`, where `lastname` holds the patronymic); both are read from a map,
//! so a response carrying both spellings does not fail. The user-info body is personal data and is
//! never logged.

use super::{is_pinfl, sha256_hex, signing_name, Identity, IdpError, LoginRequest};
use serde_json::{Map, Value};

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub struct OneIdClient {
    /// `https://sso.egov.uz/sso/oauth/Authorization.do` (or the dev oneID's).
    pub endpoint: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: String,
    pub redirect_uri: String,
    /// Allowed `auth_method` values; empty = any.
    pub allowed_auth_methods: Vec<String>,
    /// `oneid` or `dev`.
    pub provider: &'static str,
    pub http: reqwest::Client,
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl OneIdClient {
    pub fn authorize_url(&self, req: &LoginRequest) -> String {
        let mut u = format!(
            "{}?response_type=one_code&client_id={}&redirect_uri={}&scope={}&state={}",
            self.endpoint,
            enc(&self.client_id),
            enc(&self.redirect_uri),
            enc(&self.scope),
            enc(&req.state)
        );
        if self.provider == "dev" {
            // the development oneID shows its picker in the signing session's language
            u.push_str(&format!("&lang={}", enc(&req.locale)));
        }
        u
    }

    async fn post(&self, form: &[(&str, &str)]) -> Result<Value, IdpError> {
        let grant = form.iter().find(|(k, _)| *k == "grant_type").map(|(_, v)| *v).unwrap_or("");
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form.iter()).finish();
        let res = self
            .http
            .post(&self.endpoint)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(grant, error = %e.without_url(), "oneID is not reachable");
                IdpError::Unavailable("oneID is not reachable".into())
            })?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|_| IdpError::Unavailable("oneID's answer was cut off".into()))?;
        if status.is_server_error() {
            tracing::warn!(grant, status = status.as_u16(), "oneID answered with a server error");
            return Err(IdpError::Unavailable(format!("oneID answered HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            tracing::warn!(grant, status = status.as_u16(), "oneID refused");
            return Err(IdpError::Rejected(format!("oneID answered HTTP {}", status.as_u16())));
        }
        serde_json::from_slice(&bytes).map_err(|_| {
            tracing::warn!(grant, "oneID's answer is not JSON");
            IdpError::Rejected("oneID's answer is not JSON".into())
        })
    }

    /// `one_authorization_code` → `one_access_token_identify` → identity; then `one_log_out`
    /// (in the background), so the service never holds a live oneID session.
    pub async fn complete(&self, code: &str) -> Result<Identity, IdpError> {
        let secret = self.client_secret.0.as_str();
        let token = self
            .post(&[
                ("grant_type", "one_authorization_code"),
                ("client_id", &self.client_id),
                ("client_secret", secret),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
            ])
            .await?;
        let access = token
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| IdpError::Rejected("oneID's token answer has no access_token".into()))?
            .to_string();
        let info = self
            .post(&[
                ("grant_type", "one_access_token_identify"),
                ("client_id", &self.client_id),
                ("client_secret", secret),
                ("access_token", &access),
                ("scope", &self.scope),
            ])
            .await?;
        let identity = parse_user_info(&info, self.provider, &self.allowed_auth_methods);
        let me = self.clone();
        tokio::spawn(async move {
            let s = me.client_secret.0.clone();
            let r = me
                .post(&[
                    ("grant_type", "one_log_out"),
                    ("client_id", &me.client_id),
                    ("client_secret", &s),
                    ("access_token", &access),
                    ("scope", &me.scope),
                ])
                .await;
            if r.is_err() {
                tracing::debug!("oneID log-out did not succeed");
            }
        });
        identity
    }
}

fn first_str<'a>(m: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter().filter_map(|k| m.get(*k)).filter_map(Value::as_str).map(str::trim).find(|s| !s.is_empty())
}

/// A oneID user-info answer → identity. Required: `ret_cd` "0" (string or number), `pin` of 14
/// digits, at least one name form; both field spellings accepted.
pub fn parse_user_info(v: &Value, provider: &str, allowed_auth_methods: &[String]) -> Result<Identity, IdpError> {
    let m = v.as_object().ok_or_else(|| IdpError::IdentityIncomplete("user info is not a JSON object".into()))?;
    let ret_ok = match m.get("ret_cd") {
        Some(Value::String(s)) => s.trim() == "0",
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        _ => false,
    };
    if !ret_ok {
        return Err(IdpError::IdentityIncomplete("oneID reported a failure (ret_cd is not 0)".into()));
    }
    let pin = match m.get("pin") {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if !is_pinfl(&pin) {
        return Err(IdpError::IdentityIncomplete("oneID gave no 14-digit PINFL (pin)".into()));
    }
    let name = signing_name(
        first_str(m, &["sur_name", "surname"]),
        first_str(m, &["first_name", "firstname"]),
        first_str(m, &["mid_name", "lastname"]),
        first_str(m, &["full_name"]),
    )
    .ok_or_else(|| IdpError::IdentityIncomplete("oneID gave no name".into()))?;
    let auth_method = first_str(m, &["auth_method"]).map(str::to_string);
    if !allowed_auth_methods.is_empty() {
        let am = auth_method.clone().unwrap_or_default();
        if !allowed_auth_methods.iter().any(|a| a.eq_ignore_ascii_case(&am)) {
            return Err(IdpError::AuthMethodNotAllowed(if am.is_empty() { "(none)".into() } else { am }));
        }
    }
    Ok(Identity {
        pinfl: pin,
        name,
        auth_method,
        provider: provider.to_string(),
        session_hash: first_str(m, &["sess_id"]).map(sha256_hex),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_and_both_at_once() {
        let old = json!({"pin": "31211831270024", "sur_name": "RASULOV", "first_name": "BEKZOD", "mid_name": "BAXODIROVICH", "ret_cd": "0", "valid": "true", "legal_info": null});
        assert_eq!(parse_user_info(&old, "oneid", &[]).unwrap().name, "RASULOV BEKZOD BAXODIROVICH");
        let new = json!({"pin": "31211831270024", "surname": "RASULOV", "firstname": "BEKZOD", "lastname": "BAXODIROVICH", "ret_cd": 0, "valid": true});
        assert_eq!(parse_user_info(&new, "oneid", &[]).unwrap().name, "RASULOV BEKZOD BAXODIROVICH");
        let both = json!({"pin": "31211831270024", "surname": "A", "sur_name": "RASULOV", "first_name": "BEKZOD", "firstname": "B", "ret_cd": "0"});
        assert_eq!(parse_user_info(&both, "oneid", &[]).unwrap().name, "RASULOV BEKZOD");
    }

    #[test]
    fn failures() {
        let e = |v: Value| parse_user_info(&v, "oneid", &[]).unwrap_err().code();
        assert_eq!(e(json!({"pin": "31211831270024", "full_name": "X", "ret_cd": "1"})), "identity_incomplete");
        assert_eq!(e(json!({"pin": "3121183127002", "full_name": "X", "ret_cd": "0"})), "identity_incomplete");
        assert_eq!(e(json!({"pin": "31211831270024", "ret_cd": "0"})), "identity_incomplete");
        assert_eq!(e(json!([])), "identity_incomplete");
        let v = json!({"pin": "31211831270024", "full_name": "X", "ret_cd": "0", "auth_method": "LOGINPASSMETHOD"});
        assert_eq!(parse_user_info(&v, "oneid", &["PKCSMETHOD".into()]).unwrap_err().code(), "auth_method_not_allowed");
    }
}
