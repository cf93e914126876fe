//! The archive's web pages (askama, server-rendered, no JavaScript except the print button):
//! search form and results, document view (narrative, signature panel in plain words, version
//! history, lifecycle), download (ZIP package, FHIR JSON) and print. Uzbek (Latin), Russian and
//! English: `?lang=uz|ru|en` (remembered in a cookie), else `Accept-Language`, else Uzbek.
//!
//! Pages need a logged-in archivist or admin ([`super::access::session_person`]); without a
//! session they redirect to the identity module's login (`/login?next=…`); a person without an
//! archive role gets a `403` page (with a logout button, to log in as someone else).

use super::access::{login_url, session_person, Principal};
use super::audit::{self, Event};
use super::search::{self, Search};
use super::{entry, lifecycle, visible, ArchivedDocument};
use crate::error::AppError;
use crate::sign::{self, VerifyAt};
use crate::web::AppState;
use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/archive", get(search_page))
        .route("/archive/", get(search_page))
        .route("/archive/documents/{id}", get(document_page))
        .route("/archive/documents/{id}/print", get(print_page))
        .route("/archive/documents/{id}/export", get(export_download))
        .route("/archive/documents/{id}/versions/{n}", get(version_download))
        .route("/static/archive.css", get(css))
}

// ---- languages ----

/// The texts of one language.
pub struct Tr {
    pub lang: &'static str,
    pub title: &'static str,
    pub search: &'static str,
    pub patient_pinfl: &'static str,
    pub form: &'static str,
    pub any: &'static str,
    pub form_003: &'static str,
    pub form_096: &'static str,
    pub date_from: &'static str,
    pub date_to: &'static str,
    pub signer_pinfl: &'static str,
    pub state: &'static str,
    pub results: &'static str,
    pub found: &'static str,
    pub no_results: &'static str,
    pub date: &'static str,
    pub patient: &'static str,
    pub signers: &'static str,
    pub next_page: &'static str,
    pub first_page: &'static str,
    pub logout: &'static str,
    pub login: &'static str,
    pub logged_in_as: &'static str,
    pub document: &'static str,
    pub signature_panel: &'static str,
    pub signed_by: &'static str,
    pub signed_at: &'static str,
    pub role: &'static str,
    pub certificate: &'static str,
    pub serial: &'static str,
    pub issuer: &'static str,
    pub validity: &'static str,
    pub verification: &'static str,
    pub sig_valid: &'static str,
    pub sig_invalid: &'static str,
    pub sig_indeterminate: &'static str,
    pub not_signed: &'static str,
    pub versions: &'static str,
    pub version: &'static str,
    pub created: &'static str,
    pub with_signature: &'static str,
    pub download_package: &'static str,
    pub download_json: &'static str,
    pub print: &'static str,
    pub lifecycle: &'static str,
    pub replaces: &'static str,
    pub replaced_by: &'static str,
    pub reason: &'static str,
    pub organization: &'static str,
    pub mis: &'static str,
    pub back: &'static str,
    pub no_role: &'static str,
    pub not_found: &'static str,
    pub bad_search: &'static str,
    pub name: &'static str,
    pub pinfl: &'static str,
    pub narrative: &'static str,
    pub st_draft: &'static str,
    pub st_signed: &'static str,
    pub st_submitted: &'static str,
    pub st_rejected: &'static str,
    pub st_superseded: &'static str,
    pub st_entered_in_error: &'static str,
}

pub static UZ: Tr = Tr {
    lang: "uz",
    title: "Hujjatlar arxivi",
    search: "Qidirish",
    patient_pinfl: "Bemorning JShShIR",
    form: "Shakl",
    any: "Barchasi",
    form_003: "003 — Statsionar bemorning tibbiy kartasi",
    form_096: "096 — Tug'ruq tarixi",
    date_from: "Sanadan",
    date_to: "Sanagacha",
    signer_pinfl: "Imzolovchining JShShIR",
    state: "Holati",
    results: "Natijalar",
    found: "Topilgan hujjatlar",
    no_results: "Hech narsa topilmadi.",
    date: "Sana",
    patient: "Bemor",
    signers: "Imzolovchilar",
    next_page: "Keyingi sahifa",
    first_page: "Birinchi sahifa",
    logout: "Chiqish",
    login: "Kirish",
    logged_in_as: "Foydalanuvchi",
    document: "Hujjat",
    signature_panel: "Imzolar",
    signed_by: "Imzolagan",
    signed_at: "Imzolangan vaqti",
    role: "Lavozimi",
    certificate: "Sertifikat",
    serial: "seriya raqami",
    issuer: "Bergan markaz",
    validity: "Amal qilish muddati",
    verification: "Tekshiruv natijasi",
    sig_valid: "Imzo haqiqiy: hujjat imzolangandan beri o'zgarmagan va sertifikat ishonchli markaz tomonidan berilgan.",
    sig_invalid: "Imzo haqiqiy EMAS:",
    sig_indeterminate: "Imzo to'g'ri, lekin sertifikatning ishonch zanjirini tekshirib bo'lmadi.",
    not_signed: "Hujjat hali imzolanmagan.",
    versions: "Versiyalar tarixi",
    version: "Versiya",
    created: "Yaratilgan",
    with_signature: "imzo qo'shilgan",
    download_package: "Tekshirish paketini yuklab olish (ZIP)",
    download_json: "FHIR JSON yuklab olish",
    print: "Chop etish",
    lifecycle: "Hujjat hayoti",
    replaces: "Almashtiradi",
    replaced_by: "Uning o'rniga",
    reason: "Sababi",
    organization: "Tashkilot (STIR)",
    mis: "MIS",
    back: "Qidiruvga qaytish",
    no_role: "Sizda arxivga kirish huquqi yo'q. Administrator uni `hujjat users grant` buyrug'i bilan beradi.",
    not_found: "Bunday hujjat yo'q yoki uni ko'rishga ruxsatingiz yo'q.",
    bad_search: "Qidiruv so'rovi noto'g'ri",
    name: "F.I.Sh.",
    pinfl: "JShShIR",
    narrative: "Hujjat matni",
    st_draft: "Qoralama",
    st_signed: "Imzolangan",
    st_submitted: "DHPga yuborilgan",
    st_rejected: "DHP rad etgan",
    st_superseded: "Almashtirilgan",
    st_entered_in_error: "Xato kiritilgan",
};

pub static RU: Tr = Tr {
    lang: "ru",
    title: "Архив документов",
    search: "Найти",
    patient_pinfl: "ПИНФЛ пациента",
    form: "Форма",
    any: "Все",
    form_003: "003 — Медицинская карта стационарного больного",
    form_096: "096 — История родов",
    date_from: "Дата с",
    date_to: "Дата по",
    signer_pinfl: "ПИНФЛ подписанта",
    state: "Состояние",
    results: "Результаты",
    found: "Найдено документов",
    no_results: "Ничего не найдено.",
    date: "Дата",
    patient: "Пациент",
    signers: "Подписанты",
    next_page: "Следующая страница",
    first_page: "Первая страница",
    logout: "Выйти",
    login: "Войти",
    logged_in_as: "Пользователь",
    document: "Документ",
    signature_panel: "Подписи",
    signed_by: "Подписал",
    signed_at: "Время подписи",
    role: "Должность",
    certificate: "Сертификат",
    serial: "серийный номер",
    issuer: "Издатель",
    validity: "Срок действия",
    verification: "Результат проверки",
    sig_valid: "Подпись действительна: документ не изменялся после подписания, сертификат выдан доверенным центром.",
    sig_invalid: "Подпись НЕдействительна:",
    sig_indeterminate: "Подпись верна, но цепочку доверия сертификата проверить не удалось.",
    not_signed: "Документ ещё не подписан.",
    versions: "История версий",
    version: "Версия",
    created: "Создана",
    with_signature: "добавлена подпись",
    download_package: "Скачать пакет для проверки (ZIP)",
    download_json: "Скачать FHIR JSON",
    print: "Печать",
    lifecycle: "Жизненный цикл",
    replaces: "Заменяет",
    replaced_by: "Заменён документом",
    reason: "Причина",
    organization: "Организация (ИНН)",
    mis: "МИС",
    back: "Назад к поиску",
    no_role: "У вас нет доступа к архиву. Администратор выдаёт его командой `hujjat users grant`.",
    not_found: "Такого документа нет, или у вас нет права его видеть.",
    bad_search: "Неверный поисковый запрос",
    name: "Ф.И.О.",
    pinfl: "ПИНФЛ",
    narrative: "Текст документа",
    st_draft: "Черновик",
    st_signed: "Подписан",
    st_submitted: "Отправлен в DHP",
    st_rejected: "Отклонён DHP",
    st_superseded: "Заменён",
    st_entered_in_error: "Внесён ошибочно",
};

pub static EN: Tr = Tr {
    lang: "en",
    title: "Document archive",
    search: "Search",
    patient_pinfl: "Patient PINFL",
    form: "Form",
    any: "Any",
    form_003: "003 — Inpatient medical record",
    form_096: "096 — Maternity record",
    date_from: "Date from",
    date_to: "Date to",
    signer_pinfl: "Signer PINFL",
    state: "State",
    results: "Results",
    found: "Documents found",
    no_results: "Nothing found.",
    date: "Date",
    patient: "Patient",
    signers: "Signers",
    next_page: "Next page",
    first_page: "First page",
    logout: "Log out",
    login: "Log in",
    logged_in_as: "Signed in as",
    document: "Document",
    signature_panel: "Signatures",
    signed_by: "Signed by",
    signed_at: "Signed at",
    role: "Role",
    certificate: "Certificate",
    serial: "serial",
    issuer: "Issuer",
    validity: "Valid",
    verification: "Verification",
    sig_valid: "The signature is valid: the document has not changed since it was signed, and the certificate was issued by a trusted authority.",
    sig_invalid: "The signature is NOT valid:",
    sig_indeterminate: "The signature is correct, but the certificate's chain of trust could not be checked.",
    not_signed: "The document is not signed yet.",
    versions: "Version history",
    version: "Version",
    created: "Created",
    with_signature: "signature added",
    download_package: "Download verification package (ZIP)",
    download_json: "Download FHIR JSON",
    print: "Print",
    lifecycle: "Lifecycle",
    replaces: "Replaces",
    replaced_by: "Replaced by",
    reason: "Reason",
    organization: "Organization (tax id)",
    mis: "MIS",
    back: "Back to search",
    no_role: "You have no access to the archive. An administrator grants it with `hujjat users grant`.",
    not_found: "There is no such document, or you may not see it.",
    bad_search: "The search is not valid",
    name: "Full name",
    pinfl: "PINFL",
    narrative: "Document text",
    st_draft: "Draft",
    st_signed: "Signed",
    st_submitted: "Submitted to the DHP",
    st_rejected: "Rejected by the DHP",
    st_superseded: "Superseded",
    st_entered_in_error: "Entered in error",
};

impl Tr {
    pub fn state_label(&self, s: &str) -> &'static str {
        match s {
            "draft" => self.st_draft,
            "signed" => self.st_signed,
            "submitted" => self.st_submitted,
            "rejected" => self.st_rejected,
            "superseded" => self.st_superseded,
            "entered-in-error" => self.st_entered_in_error,
            _ => "?",
        }
    }
    pub fn form_label(&self, f: &str) -> &'static str {
        match f {
            "003" => self.form_003,
            "096" => self.form_096,
            _ => "?",
        }
    }
}

pub fn tr(lang: &str) -> &'static Tr {
    match lang {
        "ru" => &RU,
        "en" => &EN,
        _ => &UZ,
    }
}

/// The page language: `?lang=`, the cookie, `Accept-Language`, Uzbek. `Some` in the second value
/// when the choice came from `?lang=` (to be remembered).
pub(crate) fn language(headers: &HeaderMap, query: Option<&str>) -> (&'static Tr, Option<&'static str>) {
    let pick = |l: &str| match l.get(..2).unwrap_or("") {
        "ru" => Some("ru"),
        "en" => Some("en"),
        "uz" => Some("uz"),
        _ => None,
    };
    if let Some(l) = query.and_then(pick) {
        return (tr(l), Some(l));
    }
    if let Some(l) = crate::web::read_cookie(headers, "hujjat_lang").and_then(pick) {
        return (tr(l), None);
    }
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    for part in accept.split(',') {
        if let Some(l) = pick(part.trim()) {
            return (tr(l), None);
        }
    }
    (&UZ, None)
}

/// Security headers of every archive page; the nonce admits the page's one inline script.
pub(crate) fn page(status: StatusCode, html: String, nonce: &str, remember_lang: Option<&str>) -> Response {
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'; script-src 'nonce-{nonce}'"
    )) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(l) = remember_lang {
        if let Ok(v) = HeaderValue::from_str(&format!("hujjat_lang={l}; Path=/; Max-Age=31536000; SameSite=Lax")) {
            h.append(header::SET_COOKIE, v);
        }
    }
    r
}

fn nonce() -> String {
    crate::store::clients::random_token(16)
}

// ---- who is looking ----

/// A logged-in archivist or admin on an archive page. Without a session: a redirect to the login
/// page; without an archive role: a `403` page.
pub struct ArchiveUser {
    pub principal: Principal,
    pub t: &'static Tr,
    pub remember_lang: Option<&'static str>,
    /// The session's CSRF token (the logout form).
    pub csrf: String,
}

/// The logged-in person in the page header: shown as the label; `csrf` goes into the logout form.
pub struct Who {
    pub label: String,
    pub csrf: String,
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

impl FromRequestParts<AppState> for ArchiveUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let lang_q = parts
            .uri
            .query()
            .and_then(|q| search::decode_query(q).into_iter().find(|(k, _)| k == "lang").map(|(_, v)| v));
        let (t, remember_lang) = language(&parts.headers, lang_q.as_deref());
        let person = match session_person(parts, st).await {
            Ok(p) => p,
            Err(e) => return Err(message(t, e.status(), &e.issues()[0].diagnostics)),
        };
        let Some(person) = person else {
            let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/archive");
            return Err(Redirect::to(&login_url(next)).into_response());
        };
        let grants = match super::access::grants_of(&st.docs.store, &person.pinfl).await {
            Ok(g) => g,
            Err(e) => return Err(message(t, e.status(), &e.issues()[0].diagnostics)),
        };
        match Principal::for_person(&person, &grants) {
            Ok(principal) => Ok(ArchiveUser { principal, t, remember_lang, csrf: person.csrf }),
            Err(_) => {
                let who = Who { label: person.name.clone(), csrf: person.csrf.clone() };
                Err(message_as(t, StatusCode::FORBIDDEN, t.no_role, Some(who)))
            }
        }
    }
}

// ---- templates ----

#[derive(Template)]
#[template(path = "archive_message.html")]
struct MessagePage<'a> {
    t: &'static Tr,
    user: Option<Who>,
    keep: &'static str,
    text: &'a str,
}

pub(crate) fn message(t: &'static Tr, status: StatusCode, text: &str) -> Response {
    message_as(t, status, text, None)
}

fn message_as(t: &'static Tr, status: StatusCode, text: &str, user: Option<Who>) -> Response {
    let n = nonce();
    let html = MessagePage { t, user, keep: "", text }.render().unwrap_or_else(|_| text.to_string());
    page(status, html, &n, None)
}

pub struct Row {
    pub id: String,
    pub date: String,
    pub form: &'static str,
    pub patient: String,
    pub state: String,
    pub state_label: &'static str,
    pub signers: String,
}

#[derive(Template)]
#[template(path = "archive_search.html")]
struct SearchPage {
    t: &'static Tr,
    user: Option<Who>,
    /// the query to keep when switching language (`…&`)
    keep: String,
    nonce: String,
    pinfl: String,
    form: String,
    from: String,
    to: String,
    signer: String,
    state: String,
    states: Vec<(&'static str, &'static str)>,
    searched: bool,
    error: Option<String>,
    total: i64,
    rows: Vec<Row>,
    next: Option<String>,
    first: Option<String>,
}

fn user_label(u: &ArchiveUser) -> Option<Who> {
    let p = &u.principal;
    let label = format!("{} ({})", p.agent.name.clone().unwrap_or_default(), p.agent.role.clone().unwrap_or_default());
    Some(Who { label, csrf: u.csrf.clone() })
}

/// A date (UTC instant) shown in Tashkent time.
fn local(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| t.with_timezone(&search::tashkent()).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| at.to_string())
}

async fn search_page(
    State(st): State<AppState>,
    user: ArchiveUser,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let get = |k: &str| q.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let (pinfl, form, from, to, signer, state) =
        (get("pinfl"), get("form"), get("from"), get("to"), get("signer"), get("state"));
    let searched = [&pinfl, &form, &from, &to, &signer, &state].iter().any(|s| !s.is_empty()) || q.contains_key("go");
    let t = user.t;
    let keep: Vec<(String, String)> =
        q.iter().filter(|(k, _)| *k != "lang").map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut p = SearchPage {
        t,
        user: user_label(&user),
        keep: if keep.is_empty() { String::new() } else { format!("{}&", search::encode_query(&keep)) },
        nonce: nonce(),
        pinfl: pinfl.clone(),
        form: form.clone(),
        from: from.clone(),
        to: to.clone(),
        signer: signer.clone(),
        state: state.clone(),
        states: search::STATES.iter().map(|s| (*s, t.state_label(s))).collect(),
        searched,
        error: None,
        total: 0,
        rows: vec![],
        next: None,
        first: None,
    };
    if searched {
        let ui_query = format!("pinfl={pinfl}&form={form}&from={from}&to={to}&signer={signer}&state={state}");
        match Search::from_ui(&pinfl, &form, &from, &to, &signer, &state).and_then(|mut s| {
            if let Some(c) = q.get("cursor") {
                let mut pairs = s.canonical.clone();
                pairs.push(("_cursor".into(), c.clone()));
                s = Search::parse(&pairs)?;
            }
            Ok(s)
        }) {
            Err(e) => {
                p.error = Some(format!("{}: {}", t.bad_search, e.issues()[0].diagnostics));
                audit::record_failure(
                    &st.docs.store,
                    entry(&user.principal, Event::Search).query(&ui_query).failed_with(&e),
                )
                .await;
            }
            Ok(s) => {
                let page_ = search::run(&st.docs.store, &s, &user.principal.visibility, false).await?;
                let names = signer_names(&st, &page_.hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>()).await?;
                p.total = page_.total;
                p.rows = page_
                    .hits
                    .iter()
                    .map(|h| Row {
                        id: h.id.clone(),
                        date: local(&h.composition_at),
                        form: t.form_label(&h.form),
                        patient: h.patient_pinfl.clone().unwrap_or_default(),
                        state: h.state.clone(),
                        state_label: t.state_label(&h.state),
                        signers: names.get(&h.id).cloned().unwrap_or_default(),
                    })
                    .collect();
                let base = format!(
                    "/archive?{}",
                    search::encode_query(&[
                        ("pinfl".into(), pinfl.clone()),
                        ("form".into(), form.clone()),
                        ("from".into(), from.clone()),
                        ("to".into(), to.clone()),
                        ("signer".into(), signer.clone()),
                        ("state".into(), state.clone()),
                        ("go".into(), "1".into()),
                    ])
                );
                p.next = page_.next.as_ref().map(|c| {
                    format!(
                        "{base}&cursor={}",
                        search::encode_query(&[("c".into(), c.clone())]).trim_start_matches("c=")
                    )
                });
                if q.contains_key("cursor") {
                    p.first = Some(base);
                }
                let e = entry(&user.principal, Event::Search).query(&ui_query).detail(serde_json::json!({
                    "total": page_.total, "returned": page_.hits.len(), "documents": page_.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>()
                }));
                audit::record(&st.docs.store, e).await?;
            }
        }
    }
    let html = p.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok(page(StatusCode::OK, html, &p.nonce, user.remember_lang))
}

/// Signer names per document, for the result list.
async fn signer_names(st: &AppState, ids: &[String]) -> Result<HashMap<String, String>, AppError> {
    let mut out: HashMap<String, String> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let ps: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT document_id, signer_name FROM signatures WHERE document_id IN ({}) ORDER BY document_id, version",
        ps.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(id.as_str());
    }
    for r in q.fetch_all(&st.docs.store.pool).await? {
        use sqlx::Row as _;
        let id: String = r.try_get("document_id")?;
        let name: String = r.try_get("signer_name")?;
        let e = out.entry(id).or_default();
        if !e.is_empty() {
            e.push_str(", ");
        }
        e.push_str(&name);
    }
    Ok(out)
}

pub struct Sec {
    pub title: String,
    pub div: String,
    pub depth: usize,
}

fn sections(bundle: &Value) -> (String, String, Vec<Sec>) {
    fn collect(sections: &[Value], depth: usize, out: &mut Vec<Sec>) {
        for s in sections {
            out.push(Sec {
                title: s.get("title").and_then(Value::as_str).unwrap_or("").to_string(),
                div: s.pointer("/text/div").and_then(Value::as_str).unwrap_or("").to_string(),
                depth,
            });
            if let Some(sub) = s.get("section").and_then(Value::as_array) {
                collect(sub, depth + 1, out);
            }
        }
    }
    let comp = bundle.pointer("/entry/0/resource").cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();
    if let Some(s) = comp.get("section").and_then(Value::as_array) {
        collect(s, 0, &mut out);
    }
    (
        comp.get("title").and_then(Value::as_str).unwrap_or("").to_string(),
        comp.pointer("/text/div").and_then(Value::as_str).unwrap_or("").to_string(),
        out,
    )
}

pub struct SigView {
    pub name: String,
    pub pinfl: String,
    pub role: String,
    pub signed_at: String,
    pub serial: String,
    pub issuer: String,
    pub validity: String,
    /// valid, invalid, indeterminate
    pub status: &'static str,
    pub problems: Vec<String>,
}

pub struct VersionView {
    pub n: i64,
    pub created: String,
    pub signed_by: Option<String>,
}

#[derive(Template)]
#[template(path = "archive_document.html")]
struct DocumentPage {
    t: &'static Tr,
    user: Option<Who>,
    keep: &'static str,
    nonce: String,
    doc: ArchivedDocument,
    form_label: &'static str,
    state_label: &'static str,
    date: String,
    title: String,
    composition_div: String,
    sections: Vec<Sec>,
    signatures: Vec<SigView>,
    document_problems: Vec<String>,
    versions: Vec<VersionView>,
    replaces: Option<String>,
    replaced_by: Vec<String>,
    events: Vec<lifecycle::LifecycleEvent>,
}

async fn document_page(
    State(st): State<AppState>,
    user: ArchiveUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let t = user.t;
    let who = &user.principal;
    let store = &st.docs.store;
    let doc = match visible(store, who, &id, Event::Read).await {
        Ok(d) => d,
        Err(AppError::NotFound(_)) => return Ok(message(t, StatusCode::NOT_FOUND, t.not_found)),
        Err(e) => return Err(e),
    };
    let v = store.version(&id, doc.version).await?.ok_or_else(|| AppError::NotFound(format!("no document {id}")))?;
    let bundle: Value = serde_json::from_str(&v.bundle).map_err(|e| AppError::Internal(e.into()))?;
    let report = sign::verify_bundle_json(v.bundle.as_bytes(), &st.docs.ca.anchors(), VerifyAt::SigT);
    let sig_rows = store.signatures(&id).await?;
    let norm = |s: &str| s.to_ascii_lowercase().trim_start_matches('0').to_string();
    let signatures: Vec<SigView> = sig_rows
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let rep = report
                .signatures
                .iter()
                .find(|r| r.signer.as_ref().is_some_and(|c| norm(&c.serial_number) == norm(&s.certificate_serial)))
                .or_else(|| report.signatures.get(i));
            let cert = rep.and_then(|r| r.signer.as_ref());
            SigView {
                name: s.signer_name.clone(),
                pinfl: s.signer_pinfl.clone(),
                role: s.signer_role.clone(),
                signed_at: local(&s.signed_at),
                serial: s.certificate_serial.clone(),
                issuer: cert.map(|c| c.issuer.clone()).unwrap_or_default(),
                validity: cert
                    .map(|c| {
                        format!(
                            "{} — {}",
                            c.not_before.clone().unwrap_or_default(),
                            c.not_after.clone().unwrap_or_default()
                        )
                    })
                    .unwrap_or_default(),
                status: match rep.map(|r| r.status) {
                    Some(sign::Status::Valid) => "valid",
                    Some(sign::Status::Indeterminate) => "indeterminate",
                    _ => "invalid",
                },
                problems: rep
                    .map(|r| {
                        r.checks
                            .failed()
                            .iter()
                            .map(|(n, c)| format!("{n}: {}", c.reason.clone().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_else(|| vec!["no such signature in the stored document".into()]),
            }
        })
        .collect();
    let vrows =
        sqlx::query("SELECT version, created_at FROM document_versions WHERE document_id = $1 ORDER BY version")
            .bind(&id)
            .fetch_all(&store.pool)
            .await?;
    let mut versions = Vec::new();
    for r in &vrows {
        use sqlx::Row as _;
        let n: i64 = r.try_get("version")?;
        let created: String = r.try_get("created_at")?;
        versions.push(VersionView {
            n,
            created: local(&created),
            signed_by: sig_rows.iter().find(|s| s.version == n).map(|s| s.signer_name.clone()),
        });
    }
    let (title, composition_div, secs) = sections(&bundle);
    let page_ = DocumentPage {
        t,
        user: user_label(&user),
        keep: "",
        nonce: nonce(),
        form_label: t.form_label(&doc.form),
        state_label: t.state_label(&doc.state),
        date: local(&doc.composition_at),
        title,
        composition_div,
        sections: secs,
        signatures,
        document_problems: report.problems.clone(),
        versions,
        replaces: lifecycle::replaces(store, &id).await?,
        replaced_by: lifecycle::replaced_by(store, &id).await?,
        events: lifecycle::events(store, &id).await?,
        doc: doc.clone(),
    };
    let status = match report.status {
        sign::Status::Valid => "valid",
        sign::Status::Invalid => "invalid",
        sign::Status::Indeterminate => "indeterminate",
    };
    // the page shows the document and the verification of its signatures: both are recorded
    audit::record(store, entry(who, Event::Read).client(&doc.client_id).document(&id, Some(doc.version))).await?;
    if !sig_rows.is_empty() {
        audit::record(
            store,
            entry(who, Event::Verify)
                .client(&doc.client_id)
                .document(&id, Some(doc.version))
                .detail(serde_json::json!({"verification": status})),
        )
        .await?;
    }
    let html = page_.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok(page(StatusCode::OK, html, &page_.nonce, user.remember_lang))
}

#[derive(Template)]
#[template(path = "archive_print.html")]
struct PrintPage {
    lang: String,
    title: String,
    form_label: &'static str,
    id: String,
    version: i64,
    state_label: &'static str,
    identifier: String,
    timestamp: String,
    composition_div: String,
    sections: Vec<Sec>,
    nonce: Option<String>,
    print: &'static str,
}

fn print_html(
    bundle: &Value,
    doc: &ArchivedDocument,
    t: &'static Tr,
    nonce: Option<String>,
) -> Result<String, AppError> {
    let (title, composition_div, secs) = sections(bundle);
    let comp_lang = bundle.pointer("/entry/0/resource/language").and_then(Value::as_str).unwrap_or(t.lang);
    PrintPage {
        lang: comp_lang.to_string(),
        title,
        form_label: t.form_label(&doc.form),
        id: doc.id.clone(),
        version: doc.version,
        state_label: t.state_label(&doc.state),
        identifier: bundle.pointer("/identifier/value").and_then(Value::as_str).unwrap_or("").to_string(),
        timestamp: bundle.get("timestamp").and_then(Value::as_str).unwrap_or("").to_string(),
        composition_div,
        sections: secs,
        nonce,
        print: t.print,
    }
    .render()
    .map_err(|e| AppError::Internal(e.into()))
}

/// The document as a self-contained HTML page (for the export package).
pub fn standalone_document(bundle: &Value, doc: &ArchivedDocument) -> Result<String, AppError> {
    let lang = bundle.pointer("/entry/0/resource/language").and_then(Value::as_str).unwrap_or("uz");
    print_html(bundle, doc, tr(lang), None)
}

async fn print_page(
    State(st): State<AppState>,
    user: ArchiveUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let t = user.t;
    let store = &st.docs.store;
    let doc = match visible(store, &user.principal, &id, Event::Read).await {
        Ok(d) => d,
        Err(AppError::NotFound(_)) => return Ok(message(t, StatusCode::NOT_FOUND, t.not_found)),
        Err(e) => return Err(e),
    };
    let v = store.version(&id, doc.version).await?.ok_or_else(|| AppError::NotFound(format!("no document {id}")))?;
    let bundle: Value = serde_json::from_str(&v.bundle).map_err(|e| AppError::Internal(e.into()))?;
    audit::record(
        store,
        entry(&user.principal, Event::Read)
            .client(&doc.client_id)
            .document(&id, Some(doc.version))
            .detail(serde_json::json!({"view": "print"})),
    )
    .await?;
    let n = nonce();
    let html = print_html(&bundle, &doc, t, Some(n.clone()))?;
    Ok(page(StatusCode::OK, html, &n, user.remember_lang))
}

async fn export_download(
    State(st): State<AppState>,
    user: ArchiveUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    match super::export::package(&st, &user.principal, &id).await {
        Ok(p) => Ok(super::api::zip_response(p)),
        Err(AppError::NotFound(_)) => Ok(message(user.t, StatusCode::NOT_FOUND, user.t.not_found)),
        Err(e) => Err(e),
    }
}

async fn version_download(
    State(st): State<AppState>,
    user: ArchiveUser,
    Path((id, n)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let t = user.t;
    let store = &st.docs.store;
    let doc = match visible(store, &user.principal, &id, Event::Read).await {
        Ok(d) => d,
        Err(AppError::NotFound(_)) => return Ok(message(t, StatusCode::NOT_FOUND, t.not_found)),
        Err(e) => return Err(e),
    };
    let n: i64 = n.trim_end_matches(".json").parse().unwrap_or(-1);
    let Some(v) = store.version(&id, n).await? else {
        return Ok(message(t, StatusCode::NOT_FOUND, t.not_found));
    };
    audit::record(store, entry(&user.principal, Event::Read).client(&doc.client_id).document(&id, Some(n))).await?;
    let mut r = (StatusCode::OK, v.bundle).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::error::FHIR_JSON));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"hujjat-{id}-v{n}.json\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

async fn css() -> Response {
    let mut r = include_str!("../../static/archive.css").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r
}
