//! FHIR search over documents (`GET /Bundle?type=document&…`), answered from indexed columns of
//! `documents` (form, patient_pinfl, composition_at, state, client_id, organization), `signatures`
//! (signer_pinfl) and `submissions` (the DHP submission state) — never by scanning JSON.
//!
//! Parameters (each may repeat; repeats are AND, comma-separated values are OR, as in FHIR):
//!
//! | parameter | matches |
//! |---|---|
//! | `type` | `document` (anything else matches nothing) |
//! | `_id` | document ids |
//! | `composition.category` | `[system\|]form-003`, `form-096` (document-category-cs) |
//! | `composition.subject.identifier` | `[system\|]PINFL` of the patient |
//! | `composition.date` | `eq` (default), `ne`, `gt`, `ge`, `lt`, `le` + `YYYY`, `YYYY-MM`, `YYYY-MM-DD` or a date-time; the value's precision is a range; without a zone, Tashkent time (+05:00) |
//! | `signer` | `[system\|]PINFL` of any signer |
//! | `state` | `draft`, `signed`, `submitted`, `rejected`, `superseded`, `entered-in-error` |
//! | `organization` | the organization's tax id |
//! | `_count` | page size, 0 … 100 (default 20; 0 = the total only) |
//! | `_summary` | `true`: each entry a subsetted Bundle (identifier, type, version; for lists), `count`: the total only, `false` (default) |
//! | `_sort` | `-date` (default), `date`, `-_lastUpdated`, `_lastUpdated` (ties by id) |
//! | `_cursor` | the position of the next page, from a `next` link (keyset paging: no skips or repeats when documents are added meanwhile) |
//!
//! Unknown parameters and modifiers are `400` (a silently ignored filter would return wrong
//! records). The principal's visibility is always an extra condition of the query, of the page and
//! of the total alike.

use super::access::Visibility;
use crate::error::AppError;
use crate::store::Store;
use base64::Engine;
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use sqlx::Row;

pub const CATEGORY_SYSTEM: &str = "https://terminology.dhp.uz/fhir/integrations/CodeSystem/document-category-cs";
pub const STATES: &[&str] = &["draft", "signed", "submitted", "rejected", "superseded", "entered-in-error"];
pub const MAX_COUNT: i64 = 100;
pub const DEFAULT_COUNT: i64 = 20;

/// The archive state of a document: the lifecycle state when it has one, else the DHP submission
/// result, else the document's own state.
pub const ARCHIVE_STATE: &str = "(CASE WHEN d.state IN ('superseded', 'entered-in-error') THEN d.state \
     WHEN s.state = 'submitted' THEN 'submitted' WHEN s.state = 'rejected' THEN 'rejected' ELSE d.state END)";
const FROM: &str = "FROM documents d LEFT JOIN submissions s ON s.document_id = d.id";

/// Tashkent (UTC+05:00, no daylight saving): the zone of dates sent without one.
pub fn tashkent() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600).expect("static offset")
}

/// The `composition_at` search column of a version whose Composition.date is `date`: the instant
/// it starts ([`normalize_instant`]), `""` without a date. Written with each new version and by
/// the start-up backfill.
pub fn composition_at(date: Option<&str>) -> String {
    date.map(normalize_instant).unwrap_or_default()
}

/// `Composition.date` (any FHIR dateTime) → UTC `YYYY-MM-DDTHH:MM:SS.sssZ`; `""` when absent or unreadable.
pub fn normalize_instant(s: &str) -> String {
    match parse_range(s.trim()) {
        Some((lo, _)) => fmt(lo),
        None => String::new(),
    }
}

fn fmt(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A FHIR date / dateTime value → the range `[lo, hi)` it denotes at its precision.
pub fn parse_range(s: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let tz = tashkent();
    let at_midnight =
        |d: NaiveDate| tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).single().map(|t| t.with_timezone(&Utc));
    let b = s.as_bytes();
    let all_digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    match s.len() {
        4 if all_digits(0..4) => {
            let y: i32 = s.parse().ok()?;
            Some((at_midnight(NaiveDate::from_ymd_opt(y, 1, 1)?)?, at_midnight(NaiveDate::from_ymd_opt(y + 1, 1, 1)?)?))
        }
        7 if all_digits(0..4) && b[4] == b'-' && all_digits(5..7) => {
            let y: i32 = s[0..4].parse().ok()?;
            let m: u32 = s[5..7].parse().ok()?;
            let start = NaiveDate::from_ymd_opt(y, m, 1)?;
            let end =
                if m == 12 { NaiveDate::from_ymd_opt(y + 1, 1, 1)? } else { NaiveDate::from_ymd_opt(y, m + 1, 1)? };
            Some((at_midnight(start)?, at_midnight(end)?))
        }
        10 => {
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            Some((at_midnight(d)?, at_midnight(d.succ_opt()?)?))
        }
        _ if s.len() > 10 && b[10] == b'T' => {
            // precision: minutes or seconds (fractions narrow it to the millisecond)
            let (local, zone) = split_zone(s);
            let (naive, step) = if local.len() == 16 {
                (NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M").ok()?, Duration::minutes(1))
            } else if local.len() == 19 {
                (NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S").ok()?, Duration::seconds(1))
            } else {
                (NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S%.f").ok()?, Duration::milliseconds(1))
            };
            let off = match zone {
                None => tz,
                Some("Z") => FixedOffset::east_opt(0)?,
                Some(z) => {
                    let sign = if z.starts_with('-') { -1 } else { 1 };
                    let (h, m) = z[1..].split_once(':')?;
                    FixedOffset::east_opt(sign * (h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60))?
                }
            };
            let lo = off.from_local_datetime(&naive).single()?.with_timezone(&Utc);
            Some((lo, lo + step))
        }
        _ => None,
    }
}

fn split_zone(s: &str) -> (&str, Option<&str>) {
    if let Some(x) = s.strip_suffix('Z') {
        return (x, Some("Z"));
    }
    // a zone is `+hh:mm` / `-hh:mm` after the time (the date's dashes are before index 10)
    if let Some(i) = s[10..].rfind(['+', '-']) {
        let i = i + 10;
        return (&s[..i], Some(&s[i..]));
    }
    (s, None)
}

/// `_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    Full,
    True,
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    DateDesc,
    DateAsc,
    UpdatedDesc,
    UpdatedAsc,
}

impl Sort {
    pub fn code(self) -> &'static str {
        match self {
            Sort::DateDesc => "-date",
            Sort::DateAsc => "date",
            Sort::UpdatedDesc => "-_lastUpdated",
            Sort::UpdatedAsc => "_lastUpdated",
        }
    }
    fn parse(s: &str) -> Option<Sort> {
        [Sort::DateDesc, Sort::DateAsc, Sort::UpdatedDesc, Sort::UpdatedAsc].into_iter().find(|x| x.code() == s)
    }
    fn column(self) -> &'static str {
        match self {
            Sort::DateDesc | Sort::DateAsc => "d.composition_at",
            Sort::UpdatedDesc | Sort::UpdatedAsc => "d.updated_at",
        }
    }
    fn desc(self) -> bool {
        matches!(self, Sort::DateDesc | Sort::UpdatedDesc)
    }
}

/// A `composition.date` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateCond {
    pub prefix: String,
    pub lo: String,
    pub hi: String,
}

/// The position after the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub id: String,
}

/// A parsed search. Each inner `Vec` is one parameter occurrence (its values are OR).
#[derive(Debug, Clone)]
pub struct Search {
    pub ids: Vec<Vec<String>>,
    pub forms: Vec<Vec<String>>,
    pub patients: Vec<Vec<String>>,
    pub signers: Vec<Vec<String>>,
    pub states: Vec<Vec<String>>,
    pub organizations: Vec<Vec<String>>,
    pub dates: Vec<DateCond>,
    pub count: i64,
    pub sort: Sort,
    pub cursor: Option<Cursor>,
    pub summary: Summary,
    /// A parameter that can match nothing (e.g. `type=collection`).
    pub nothing: bool,
    /// The parameters as understood, for `self` and `next` links (without `_cursor`).
    pub canonical: Vec<(String, String)>,
}

impl Default for Search {
    fn default() -> Self {
        Search {
            ids: vec![],
            forms: vec![],
            patients: vec![],
            signers: vec![],
            states: vec![],
            organizations: vec![],
            dates: vec![],
            count: DEFAULT_COUNT,
            sort: Sort::DateDesc,
            cursor: None,
            summary: Summary::Full,
            nothing: false,
            canonical: vec![],
        }
    }
}

fn bad(m: String) -> AppError {
    AppError::BadRequest(m)
}

/// `system|value`, `|value` or `value`; `None` when the system is not `system`.
fn token(v: &str, system: &str) -> Option<String> {
    match v.split_once('|') {
        Some((s, val)) if s.is_empty() || s == system => Some(val.to_string()),
        Some(_) => None,
        None => Some(v.to_string()),
    }
}

/// Decode `a=b&c=d` (percent-decoding, `+` as space).
pub fn decode_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec =
                |x: &str| percent_encoding::percent_decode_str(&x.replace('+', " ")).decode_utf8_lossy().into_owned();
            (dec(k), dec(v))
        })
        .collect()
}

pub fn encode_query(pairs: &[(String, String)]) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'|')
        .remove(b':');
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                percent_encoding::utf8_percent_encode(k, SET),
                percent_encoding::utf8_percent_encode(v, SET)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Search {
    /// Parse the query parameters of `GET /Bundle`.
    pub fn parse(pairs: &[(String, String)]) -> Result<Search, AppError> {
        let mut s = Search::default();
        for (k, v) in pairs {
            let v = v.trim();
            let list = || v.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect::<Vec<_>>();
            let mut keep = true;
            match k.as_str() {
                "type" => {
                    if list().iter().all(|t| t != "document") {
                        s.nothing = true;
                    }
                }
                "_id" => s.ids.push(list()),
                "composition.category" => {
                    let forms: Vec<String> = list()
                        .iter()
                        .filter_map(|t| token(t, CATEGORY_SYSTEM))
                        .filter_map(|c| c.strip_prefix("form-").map(str::to_string))
                        .collect();
                    s.forms.push(forms);
                }
                "composition.subject.identifier" | "composition.patient.identifier" => {
                    s.patients.push(list().iter().filter_map(|t| token(t, crate::sign::PINFL_SYSTEM)).collect())
                }
                "signer" | "signer.identifier" => {
                    s.signers.push(list().iter().filter_map(|t| token(t, crate::sign::PINFL_SYSTEM)).collect())
                }
                "organization" => s.organizations.push(list()),
                "state" => {
                    let l = list();
                    if let Some(x) = l.iter().find(|x| !STATES.contains(&x.as_str())) {
                        return Err(bad(format!("state `{x}` is not one of {}", STATES.join(", "))));
                    }
                    s.states.push(l);
                }
                "composition.date" => {
                    let (prefix, value) = match v.get(..2) {
                        Some(p @ ("eq" | "ne" | "gt" | "ge" | "lt" | "le")) => (p, &v[2..]),
                        Some("sa" | "eb" | "ap") => {
                            return Err(bad("composition.date supports the prefixes eq, ne, gt, ge, lt, le".into()))
                        }
                        _ => ("eq", v),
                    };
                    let (lo, hi) = parse_range(value).ok_or_else(|| {
                        bad(format!("composition.date `{v}` is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a date-time)"))
                    })?;
                    s.dates.push(DateCond { prefix: prefix.into(), lo: fmt(lo), hi: fmt(hi) });
                }
                "_count" => {
                    let n: i64 = v.parse().map_err(|_| bad(format!("_count `{v}` is not a number")))?;
                    if n < 0 {
                        return Err(bad("_count must be 0 or more".into()));
                    }
                    s.count = n.min(MAX_COUNT);
                }
                "_sort" => {
                    s.sort = Sort::parse(v).ok_or_else(|| {
                        bad(format!("_sort `{v}` is not supported; use date, -date, _lastUpdated or -_lastUpdated"))
                    })?
                }
                "_cursor" => {
                    keep = false;
                    s.cursor = Some(decode_cursor(v)?);
                }
                "_format" if v.contains("json") => {}
                "_summary" => {
                    s.summary = match v {
                        "true" => Summary::True,
                        "count" => Summary::Count,
                        "false" => Summary::Full,
                        _ => return Err(bad(format!("_summary `{v}` is not supported; use true, count or false"))),
                    }
                }
                "_total" if v == "accurate" || v == "none" || v == "estimate" => {}
                other => {
                    let name = other.split(':').next().unwrap_or(other);
                    return Err(bad(if other.contains(':') {
                        format!("the modifier in `{other}` is not supported")
                    } else {
                        format!(
                            "unknown search parameter `{name}`; supported: type, _id, composition.category, composition.subject.identifier, composition.date, signer, state, organization, _count, _sort"
                        )
                    }));
                }
            }
            if keep {
                s.canonical.push((k.clone(), v.to_string()));
            }
        }
        Ok(s)
    }

    /// Form fields of the archive UI → a search.
    pub fn from_ui(
        pinfl: &str,
        form: &str,
        from: &str,
        to: &str,
        signer: &str,
        state: &str,
    ) -> Result<Search, AppError> {
        let mut pairs = vec![("type".to_string(), "document".to_string())];
        let add = |pairs: &mut Vec<(String, String)>, k: &str, v: String| {
            if !v.trim().is_empty() {
                pairs.push((k.into(), v.trim().to_string()))
            }
        };
        add(&mut pairs, "composition.subject.identifier", pinfl.into());
        add(&mut pairs, "composition.category", if form.is_empty() { String::new() } else { format!("form-{form}") });
        add(&mut pairs, "composition.date", if from.is_empty() { String::new() } else { format!("ge{from}") });
        add(&mut pairs, "composition.date", if to.is_empty() { String::new() } else { format!("le{to}") });
        add(&mut pairs, "signer", signer.into());
        add(&mut pairs, "state", state.into());
        Search::parse(&pairs)
    }
}

pub fn encode_cursor(sort: Sort, key: &str, id: &str) -> String {
    let v = serde_json::json!([sort.code(), key, id]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_cursor(s: &str) -> Result<Cursor, AppError> {
    let err = || bad("_cursor is not a cursor from a `next` link".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|_| err())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| err())?;
    let a = v.as_array().filter(|a| a.len() == 3).ok_or_else(err)?;
    let sort = a[0].as_str().and_then(Sort::parse).ok_or_else(err)?;
    let c = Cursor { key: a[1].as_str().ok_or_else(err)?.into(), id: a[2].as_str().ok_or_else(err)?.into() };
    // remember the cursor's sort so that a mismatch can be refused
    Ok(Cursor { key: format!("{}\u{0}{}", sort.code(), c.key), id: c.id })
}

/// One document found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub id: String,
    pub form: String,
    pub client_id: String,
    pub version: i64,
    pub state: String,
    pub patient_pinfl: Option<String>,
    pub composition_at: String,
    pub updated_at: String,
    pub organization: Option<String>,
    pub bundle_identifier: String,
    #[serde(skip)]
    pub bundle: Option<String>,
}

pub struct Page {
    pub total: i64,
    pub hits: Vec<Hit>,
    /// `_cursor` of the next page, when there is one.
    pub next: Option<String>,
}

enum Bind {
    Text(String),
    Int(i64),
}

struct Sql {
    conds: Vec<String>,
    binds: Vec<Bind>,
}

impl Sql {
    fn p(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }
    fn text(&mut self, s: &str) -> String {
        self.p(Bind::Text(s.to_string()))
    }
    fn any_of(&mut self, expr: &str, values: &[String]) {
        if values.is_empty() {
            self.conds.push("1 = 0".into());
            return;
        }
        let ps: Vec<String> = values.iter().map(|v| self.text(v)).collect();
        self.conds.push(format!("{expr} IN ({})", ps.join(", ")));
    }
}

fn build(search: &Search, vis: &Visibility) -> Result<Sql, AppError> {
    let mut q = Sql { conds: vec![], binds: vec![] };
    match vis {
        Visibility::All => {}
        Visibility::Client(c) => {
            let p = q.text(c);
            q.conds.push(format!("d.client_id = {p}"));
        }
        Visibility::Organizations(orgs) => q.any_of("d.organization", orgs),
    }
    if search.nothing {
        q.conds.push("1 = 0".into());
    }
    for v in &search.ids {
        q.any_of("d.id", v);
    }
    for v in &search.forms {
        q.any_of("d.form", v);
    }
    for v in &search.patients {
        q.any_of("d.patient_pinfl", v);
    }
    for v in &search.organizations {
        q.any_of("d.organization", v);
    }
    for v in &search.states {
        q.any_of(ARCHIVE_STATE, v);
    }
    for v in &search.signers {
        if v.is_empty() {
            q.conds.push("1 = 0".into());
            continue;
        }
        let ps: Vec<String> = v.iter().map(|x| q.text(x)).collect();
        q.conds.push(format!(
            "EXISTS (SELECT 1 FROM signatures g WHERE g.document_id = d.id AND g.signer_pinfl IN ({}))",
            ps.join(", ")
        ));
    }
    for c in &search.dates {
        let lo = q.text(&c.lo);
        let hi = q.text(&c.hi);
        let cond = match c.prefix.as_str() {
            "eq" => format!("(d.composition_at >= {lo} AND d.composition_at < {hi})"),
            "ne" => format!("(d.composition_at < {lo} OR d.composition_at >= {hi})"),
            "gt" => format!("d.composition_at >= {hi}"),
            "ge" => format!("d.composition_at >= {lo}"),
            "lt" => format!("d.composition_at < {lo}"),
            _ => format!("d.composition_at < {hi}"),
        };
        q.conds.push(format!("(d.composition_at <> '' AND {cond})"));
    }
    Ok(q)
}

fn where_clause(q: &Sql) -> String {
    if q.conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", q.conds.join(" AND "))
    }
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s.as_str()),
            Bind::Int(i) => query.bind(*i),
        };
    }
    query
}

/// Run a search: the total and one page (with the Bundles when `with_bundles`).
pub async fn run(store: &Store, search: &Search, vis: &Visibility, with_bundles: bool) -> Result<Page, AppError> {
    let mut q = build(search, vis)?;
    let count_sql = format!("SELECT COUNT(*) AS n {FROM}{}", where_clause(&q));
    let total: i64 = bind_all(sqlx::query(&count_sql), &q.binds).fetch_one(&store.pool).await?.try_get("n")?;
    if search.count == 0 || search.nothing || search.summary == Summary::Count {
        return Ok(Page { total, hits: vec![], next: None });
    }
    let sort = search.sort;
    let col = sort.column();
    let (cmp, dir) = if sort.desc() { ("<", "DESC") } else { (">", "ASC") };
    if let Some(c) = &search.cursor {
        let (csort, key) = c.key.split_once('\u{0}').unwrap_or(("", &c.key));
        if csort != sort.code() {
            return Err(bad("_cursor belongs to another _sort; start from the first page".into()));
        }
        let k = q.text(key);
        let k2 = q.text(key);
        let i = q.text(&c.id);
        q.conds.push(format!("({col} {cmp} {k} OR ({col} = {k2} AND d.id {cmp} {i}))"));
    }
    let limit = q.p(Bind::Int(search.count + 1));
    let with_bundles = with_bundles && search.summary == Summary::Full;
    let bundle_col = if with_bundles { ", v.bundle" } else { "" };
    let bundle_join = " JOIN document_versions v ON v.document_id = d.id AND v.version = d.version";
    let sql = format!(
        "SELECT d.id, d.form, d.client_id, d.version, d.patient_pinfl, d.composition_at, d.updated_at, d.organization, \
         v.bundle_identifier, {ARCHIVE_STATE} AS archive_state{bundle_col} {FROM}{bundle_join}{} ORDER BY {col} {dir}, d.id {dir} LIMIT {limit}",
        where_clause(&q)
    );
    let rows = bind_all(sqlx::query(&sql), &q.binds).fetch_all(&store.pool).await?;
    let mut hits = Vec::with_capacity(rows.len());
    for r in &rows {
        hits.push(Hit {
            id: r.try_get("id")?,
            form: r.try_get("form")?,
            client_id: r.try_get("client_id")?,
            version: r.try_get("version")?,
            state: r.try_get("archive_state")?,
            patient_pinfl: r.try_get("patient_pinfl")?,
            composition_at: r.try_get::<Option<String>, _>("composition_at")?.unwrap_or_default(),
            updated_at: r.try_get("updated_at")?,
            organization: r.try_get("organization")?,
            bundle_identifier: r.try_get("bundle_identifier")?,
            bundle: if with_bundles { Some(r.try_get("bundle")?) } else { None },
        });
    }
    let next = if hits.len() as i64 > search.count {
        hits.truncate(search.count as usize);
        hits.last().map(|h| {
            let key = if matches!(sort, Sort::DateDesc | Sort::DateAsc) { &h.composition_at } else { &h.updated_at };
            encode_cursor(sort, key, &h.id)
        })
    } else {
        None
    };
    Ok(Page { total, hits, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_precision_and_zone() {
        let (lo, hi) = parse_range("2024-03-01").unwrap();
        assert_eq!(fmt(lo), "2024-02-29T19:00:00.000Z");
        assert_eq!(fmt(hi), "2024-03-01T19:00:00.000Z");
        let (lo, hi) = parse_range("2024").unwrap();
        assert_eq!(fmt(lo), "2023-12-31T19:00:00.000Z");
        assert_eq!(fmt(hi), "2024-12-31T19:00:00.000Z");
        let (lo, hi) = parse_range("2024-12").unwrap();
        assert_eq!((fmt(lo).as_str(), fmt(hi).as_str()), ("2024-11-30T19:00:00.000Z", "2024-12-31T19:00:00.000Z"));
        assert_eq!(normalize_instant("2026-03-02T22:55:00+05:00"), "2026-03-02T17:55:00.000Z");
        assert_eq!(normalize_instant("2026-03-02T22:55:00Z"), "2026-03-02T22:55:00.000Z");
        assert_eq!(normalize_instant("2026-03-02T22:55:00.123-01:30"), "2026-03-03T00:25:00.123Z");
        assert_eq!(normalize_instant("2026-03-02T22:55"), "2026-03-02T17:55:00.000Z");
        assert_eq!(normalize_instant("garbage"), "");
        assert_eq!(normalize_instant("2026-02-30"), "");
    }

    #[test]
    fn unknown_parameters_and_bad_values_are_refused() {
        let p = |q: &str| Search::parse(&decode_query(q));
        assert!(p("type=document&foo=1").is_err());
        assert!(p("composition.date=xx2024").is_err());
        assert!(p("composition.date:missing=true").is_err());
        assert!(p("state=lost").is_err());
        assert!(p("_count=x").is_err());
        assert!(p("_sort=name").is_err());
        assert!(p("_cursor=!!").is_err());
        assert_eq!(p("_count=1000").unwrap().count, MAX_COUNT);
        assert!(p("type=collection").unwrap().nothing);
        let s = p("composition.category=https://terminology.dhp.uz/fhir/integrations/CodeSystem/document-category-cs|form-003,form-096").unwrap();
        assert_eq!(s.forms, vec![vec!["003".to_string(), "096".to_string()]]);
        let s = p("composition.subject.identifier=http://other|12345678901234").unwrap();
        assert_eq!(s.patients, vec![Vec::<String>::new()]);
    }
}
