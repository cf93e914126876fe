//! Helpers of the archive tests (issue 6): clients with scopes, archive logins, signed documents.
#![allow(dead_code)]

use crate::common::{TestApp, DEMO};
use hujjat::sign::Signer;
use reqwest::StatusCode;
use serde_json::Value;

/// An API client's credentials.
#[derive(Clone, Debug)]
pub struct Cred(pub String, pub String);

impl Cred {
    pub fn demo() -> Cred {
        Cred(DEMO.0.into(), DEMO.1.into())
    }
}

/// A client with these scopes (`documents`, `archive`, `admin`).
pub async fn client(app: &TestApp, id: &str, scopes: &[&str]) -> Cred {
    let secret = format!("{id}-secret-0123456789");
    app.state.docs.store.upsert_client(id, &format!("{id} system"), &secret, &[], None).await.unwrap();
    assert!(hujjat::archive::access::set_client_scopes(&app.state.docs.store, id, scopes).await.unwrap());
    Cred(id.into(), secret)
}

/// Grant a role (as `hujjat users grant` does).
pub async fn grant(app: &TestApp, pinfl: &str, role: &str, orgs: &[&str]) {
    let orgs: Vec<String> = orgs.iter().map(|s| s.to_string()).collect();
    hujjat::archive::access::grant(
        &app.state.docs.store,
        pinfl,
        role,
        &orgs,
        Some("Test Person"),
        &hujjat::archive::audit::Agent::system("test"),
    )
    .await
    .unwrap();
}

/// The `name=value` of the browser session cookie a response sets, if any.
pub fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("__Host-hujjat-session="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The browser login up to the identity provider: `GET /login?next=…` → `(session cookie, the
/// provider's authorization URL)`.
pub async fn start_login(app: &TestApp, next: &str) -> (String, String) {
    let r = no_redirects().get(app.url(&hujjat::iframe::login::login_url(next))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&r).expect("the login state is bound to a session cookie");
    (cookie, r.headers()["location"].to_str().unwrap().to_string())
}

/// At the development oneID's picker (an authorization URL), log in as a person typed in
/// ("Other person": PINFL, surname, given name); returns the callback URL it redirects to.
pub async fn dev_oneid_pick(authorize_url: &str, pinfl: &str, name: &str) -> String {
    let http = no_redirects();
    let html = http.get(authorize_url).send().await.unwrap().text().await.unwrap();
    let request = html.split("name=\"request\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let (surname, given) = name.split_once(' ').unwrap_or((name, "X"));
    let r = http
        .post(authorize_url.split('?').next().unwrap())
        .form(&[
            ("request", request.as_str()),
            ("user", "custom"),
            ("pinfl", pinfl),
            ("surname", surname),
            ("given", given),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "{}", r.text().await.unwrap());
    r.headers()["location"].to_str().unwrap().to_string()
}

/// Log in through the browser login of the identity module (`/login` → the development oneID,
/// a person typed in → the callback → `next`); returns the `Cookie` header value. The name comes
/// back upper-cased, as oneID gives it.
pub async fn login_to(app: &TestApp, pinfl: &str, name: &str, next: &str) -> String {
    let (cookie, authorize) = start_login(app, next).await;
    let callback = dev_oneid_pick(&authorize, pinfl, name).await;
    let r = no_redirects().get(&callback).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], next);
    let new = session_cookie(&r).expect("a session cookie at login");
    assert_ne!(new, cookie, "the session id is cycled at login");
    new
}

/// [`login_to`] the archive.
pub async fn login(app: &TestApp, pinfl: &str, name: &str) -> String {
    login_to(app, pinfl, name, "/archive").await
}

/// The logout form's CSRF token on an archive page.
pub fn logout_csrf(html: &str) -> String {
    html.split("name=\"csrf\" value=\"").nth(1).expect("a logout form").split('"').next().unwrap().to_string()
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

/// The Form 003 example with a fresh document id.
pub fn example_003() -> Value {
    let mut v = crate::common::example("003", "example");
    v.as_object_mut().unwrap().remove("documentId");
    v
}

/// Create a document as `cred` over HTTP; returns its id.
pub async fn create(app: &TestApp, cred: &Cred, form: &str, input: &Value) -> String {
    let r = app
        .http
        .post(app.url(&format!("/forms/{form}/documents")))
        .basic_auth(&cred.0, Some(&cred.1))
        .json(input)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    r.headers()["location"].to_str().unwrap().trim_start_matches("/documents/").to_string()
}

/// Create and sign (by the attending doctor) a document; returns its id.
pub async fn create_signed(app: &TestApp, cred: &Cred, input: &Value) -> String {
    let id = create(app, cred, "003", input).await;
    app.state.docs.sign(&id, 1, &signer_for(input, &attending(input))).await.unwrap();
    id
}

/// A request as a principal: API credentials, an archive session cookie, bad credentials, or none.
#[derive(Clone, Debug)]
pub enum As {
    Nobody,
    BadCredentials,
    Client(Cred),
    Session(String),
}

pub fn req(app: &TestApp, method: reqwest::Method, path: &str, who: &As) -> reqwest::RequestBuilder {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let b = http.request(method, app.url(path));
    match who {
        As::Nobody => b,
        As::BadCredentials => b.basic_auth("demo-mis", Some("wrong")),
        As::Client(c) => b.basic_auth(&c.0, Some(&c.1)),
        As::Session(cookie) => b.header("cookie", cookie.as_str()),
    }
}
