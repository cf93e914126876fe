//! Issue 6: the archive's web pages (server-rendered) in Uzbek, Russian and English: search form
//! and results, document view with its narrative, signature panel in plain words (also when a
//! stored signature no longer verifies), version history, download and print; login and logout.

mod archive_support;
mod common;

use archive_support::*;
use common::*;
use reqwest::{Method, StatusCode};

async fn page(app: &TestApp, path: &str, cookie: &str) -> (StatusCode, String, reqwest::header::HeaderMap) {
    let r = req(app, Method::GET, path, &As::Session(cookie.to_string())).send().await.unwrap();
    let (s, h) = (r.status(), r.headers().clone());
    (s, r.text().await.unwrap(), h)
}

#[tokio::test]
async fn archive_pages_in_three_languages() {
    let app = TestApp::spawn().await;
    let input = example_003();
    let id = create(&app, &Cred::demo(), "003", &input).await;
    let doctor = signer_for(&input, &attending(&input));
    app.state.docs.sign(&id, 1, &doctor).await.unwrap();
    let head = signer_for(&input, input["responsiblePersons"]["headOfDepartment"].as_str().unwrap());
    app.state.docs.sign(&id, 2, &head).await.unwrap();
    let patient = input["patient"]["pinfl"].as_str().unwrap();

    // no session: to the login page, which comes back to where one was going
    let r = req(&app, Method::GET, &format!("/archive/documents/{id}"), &As::Nobody).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/login?next=%2Farchive%2Fdocuments%2F{id}").replace('-', "%2D"));
    grant(&app, "30000000000001", "archivist", &[]).await;
    let cookie = login(&app, "30000000000001", "Arxivchi Birinchi").await;
    assert!(cookie.starts_with("__Host-hujjat-session="));

    // the search page, in each language; the choice is remembered in a cookie
    for (lang, title, found) in [
        ("uz", "Hujjatlar arxivi", "Topilgan hujjatlar"),
        ("ru", "Архив документов", "Найдено документов"),
        ("en", "Document archive", "Documents found"),
    ] {
        let (s, html, h) = page(&app, &format!("/archive?lang={lang}&pinfl={patient}&go=1"), &cookie).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains(&format!("<html lang=\"{lang}\">")) && html.contains(title), "{lang}");
        assert!(html.contains(found) && html.contains("<strong>1</strong>"), "{lang}");
        assert!(html.contains(&format!("/archive/documents/{id}")));
        assert!(html.contains(&doctor.name) && html.contains(&head.name), "signers in the list");
        assert!(h["set-cookie"].to_str().unwrap().starts_with(&format!("hujjat_lang={lang}")));
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    }
    let (_, html, _) = page(&app, "/archive", &format!("{cookie}; hujjat_lang=ru")).await;
    assert!(html.contains("Архив документов"), "the remembered language");
    let r = req(&app, Method::GET, "/archive", &As::Session(cookie.clone()))
        .header("accept-language", "en-GB,en;q=0.9")
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("Document archive"), "Accept-Language");
    let (_, html, _) = page(&app, "/archive", &cookie).await;
    assert!(html.contains("Hujjatlar arxivi"), "Uzbek by default");

    // the document: facts, signature panel in plain words, versions, narrative, actions
    for (lang, valid, versions) in [
        ("uz", "Imzo haqiqiy: hujjat imzolangandan beri o&#39;zgarmagan", "Versiyalar tarixi"),
        ("ru", "Подпись действительна: документ не изменялся после подписания", "История версий"),
        ("en", "The signature is valid: the document has not changed since it was signed", "Version history"),
    ] {
        let (s, html, _) = page(&app, &format!("/archive/documents/{id}?lang={lang}"), &cookie).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(html.matches(valid).count(), 2, "{lang}: two valid signatures\n{html}");
        assert!(html.contains(versions), "{lang}");
        for who in [&doctor, &head] {
            assert!(html.contains(&who.name) && html.contains(&who.pinfl), "{lang}: {}", who.name);
        }
        assert!(html.contains(&format!("/archive/documents/{id}/export")) && html.contains("/print"));
        assert!(html.contains("Xolmatov"), "the narrative is shown");
        assert_eq!(html.matches("<tr><td><a href=\"/archive/documents/").count(), 3, "three versions");
    }
    // downloads: a version as stored, the package
    let (s, body, h) = page(&app, &format!("/archive/documents/{id}/versions/1.json"), &cookie).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert_eq!(body, app.state.docs.store.version(&id, 1).await.unwrap().unwrap().bundle);
    let r = req(&app, Method::GET, &format!("/archive/documents/{id}/export"), &As::Session(cookie.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    // print: a printable page whose one script is admitted by the nonce
    let (s, html, h) = page(&app, &format!("/archive/documents/{id}/print"), &cookie).await;
    assert_eq!(s, StatusCode::OK);
    let csp = h["content-security-policy"].to_str().unwrap();
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
    assert!(html.contains(&format!("<script nonce=\"{nonce}\">")) && html.contains("window.print()"));

    // a stored signed version changed behind the service's back: the panel says so
    sqlx::query("UPDATE document_versions SET bundle = REPLACE(bundle, 'Xolmatov', 'Xolmatova') WHERE document_id = $1 AND version = 3")
        .bind(&id)
        .execute(&app.state.docs.store.pool)
        .await
        .unwrap();
    for (lang, invalid) in
        [("uz", "Imzo haqiqiy EMAS"), ("ru", "Подпись НЕдействительна"), ("en", "The signature is NOT valid")]
    {
        let (_, html, _) = page(&app, &format!("/archive/documents/{id}?lang={lang}"), &cookie).await;
        assert_eq!(html.matches(invalid).count(), 2, "{lang}");
        assert!(html.contains("payload") || html.contains("signature:"), "{lang}: the failed check is named");
    }

    // input is escaped, never markup
    let (s, html, _) = page(&app, "/archive?pinfl=%3Cscript%3Ealert(1)%3C%2Fscript%3E&go=1", &cookie).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!html.contains("<script>alert(1)") && html.contains("&#60;script&#62;"));
    let (s, html, _) = page(&app, "/archive?from=20x&go=1&lang=en", &cookie).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("The search is not valid"));
    let (s, _, _) = page(&app, "/archive/documents/not-a-document", &cookie).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // a person without a role sees a clear 403 page (in the page's language, with a logout button)
    let other = login(&app, "30000000000009", "Begona Odam").await;
    for (lang, text) in [
        ("en", "You have no access to the archive"),
        ("ru", "У вас нет доступа к архиву"),
        ("uz", "Sizda arxivga kirish huquqi yo&#39;q"),
    ] {
        let (s, html, _) = page(&app, &format!("/archive?lang={lang}"), &other).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{lang}");
        assert!(html.contains(text), "{lang}: {html}");
        assert!(html.contains("BEGONA ODAM") && html.contains("action=\"/logout\""), "{lang}");
    }

    // logout: a POST with the session's CSRF token ends the session
    let (_, html, _) = page(&app, "/archive", &cookie).await;
    let csrf = logout_csrf(&html);
    let r = req(&app, Method::POST, "/logout", &As::Session(cookie.clone()))
        .form(&[("csrf", "wrong"), ("next", "/archive")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "logout without the right CSRF token");
    let (s, _, _) = page(&app, "/archive", &cookie).await;
    assert_eq!(s, StatusCode::OK, "the refused logout left the session alone");
    let r = req(&app, Method::POST, "/logout", &As::Session(cookie.clone()))
        .form(&[("csrf", csrf.as_str()), ("next", "/archive")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert!(r.text().await.unwrap().contains("/login?next=%2Farchive"), "a link to log in again");
    let r = req(&app, Method::GET, "/archive", &As::Session(cookie)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the session is gone");
}
