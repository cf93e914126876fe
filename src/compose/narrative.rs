//! Generated XHTML narratives: a heading, free-text paragraphs, and a label/value table of the
//! section's input (labels and code meanings from the schema, in the document's language).

use super::labels::{Field, GenericPath, Kind, LabelMap, Lang};
use super::node::View;
use askama::Template;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub struct Row {
    pub label: String,
    pub value: Option<String>,
}

#[derive(Template)]
#[template(path = "narrative.html")]
struct Narrative<'a> {
    heading: &'a str,
    paragraphs: Vec<&'a str>,
    rows: Vec<Row>,
}

/// What a narrative needs to know besides the labels.
pub struct NarrativeEnv<'a> {
    pub labels: &'a LabelMap,
    pub lang: Lang,
    /// practitioner PINFL → "Name (position)"
    pub practitioners: &'a HashMap<String, String>,
}

pub fn render(heading: &str, text: Option<&str>, input: Option<(&Value, &str)>, env: &NarrativeEnv<'_>) -> String {
    render_without(heading, text, input, &[], env)
}

/// [`render`] of `input` with the members named in `skip` left out of its table (when `input` is
/// an object; those members are shown elsewhere).
pub fn render_without(
    heading: &str,
    text: Option<&str>,
    input: Option<(&Value, &str)>,
    skip: &[String],
    env: &NarrativeEnv<'_>,
) -> String {
    let paragraphs: Vec<&str> =
        text.map(|t| t.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect()).unwrap_or_default();
    let mut rows = Vec::new();
    if let Some((v, path)) = input {
        let mut g = GenericPath::of(path);
        match v {
            Value::Object(o) if !skip.is_empty() => {
                let kept = o.keys().filter(|k| !skip.contains(k)).count();
                let quantity =
                    kept <= 2 && ["value", "unit"].iter().all(|k| o.contains_key(*k) && !skip.iter().any(|s| s == k));
                let person = env.labels.field(g.as_str()).is_some_and(|f| f.schema_ref.as_deref() == Some(PERSON_NAME));
                if quantity || person {
                    // the rare shapes whose rendering looks at the object as a whole: on a copy
                    let trimmed = Value::Object(
                        o.iter().filter(|(k, _)| !skip.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
                    );
                    flatten(&trimmed, &mut g, "", env, &mut rows, 0);
                } else {
                    members(o.iter().filter(|(k, _)| !skip.contains(k)), &mut g, "", env, &mut rows, 0);
                }
            }
            _ => flatten(v, &mut g, "", env, &mut rows, 0),
        }
    }
    let n = Narrative { heading, paragraphs, rows };
    n.render().unwrap_or_else(|_| {
        // Rendering into a String cannot fail for these types; keep a valid div regardless.
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>-</p></div>".to_string()
    })
}

const PERSON_NAME: &str = "#/$defs/personName";

/// The label of the field at generic path `g`, with `prefix`.
fn label_row(prefix: &str, g: &GenericPath, env: &NarrativeEnv<'_>) -> String {
    let g = g.as_str();
    let label = match env.labels.field(g) {
        Some(f) => f.labels.get(env.lang),
        None => g.rsplit('.').next().unwrap_or(g).trim_end_matches("[]"),
    };
    join(prefix, label)
}

fn scalar(v: &Value, field: Option<&Field>, env: &NarrativeEnv<'_>) -> String {
    match v {
        Value::Bool(b) => env.lang.yes_no(*b).to_string(),
        Value::String(s) => {
            if let Some(f) = field {
                if f.schema_ref.as_deref() == Some("#/$defs/practitionerRef") {
                    if let Some(n) = env.practitioners.get(s) {
                        return format!("{n} ({s})");
                    }
                }
                if !f.values.is_empty() {
                    if let Some(t) = f.value_text(s, env.lang) {
                        return format!("{t} ({s})");
                    }
                }
            }
            s.replace('\n', " ")
        }
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_quantity(o: &Map<String, Value>) -> bool {
    o.len() <= 2 && o.contains_key("value") && o.contains_key("unit")
}

fn flatten(v: &Value, g: &mut GenericPath, prefix: &str, env: &NarrativeEnv<'_>, rows: &mut Vec<Row>, depth: usize) {
    if depth > 12 {
        return;
    }
    match v {
        Value::Object(o) => {
            // {value, unit} quantities and person names read better on one line
            if is_quantity(o) {
                rows.push(Row {
                    label: label_row(prefix, g, env),
                    value: Some(format!("{} {}", o["value"], o["unit"].as_str().unwrap_or(""))),
                });
                return;
            }
            let field = env.labels.field(g.as_str());
            if field.is_some_and(|f| f.schema_ref.as_deref() == Some(PERSON_NAME)) {
                if let Some(n) = super::expr::person_name(v) {
                    rows.push(Row { label: label_row(prefix, g, env), value: Some(n) });
                    return;
                }
            }
            members(o.iter(), g, prefix, env, rows, depth);
        }
        Value::Array(items) => {
            let m = g.mark();
            g.push_index();
            for it in items {
                flatten(it, g, prefix, env, rows, depth + 1);
            }
            g.reset(m);
        }
        other => {
            let label = label_row(prefix, g, env);
            rows.push(Row { label, value: Some(scalar(other, env.labels.field(g.as_str()), env)) });
        }
    }
}

/// The rows of an object's members (at generic path `g`).
fn members<'v>(
    o: impl Iterator<Item = (&'v String, &'v Value)>,
    g: &mut GenericPath,
    prefix: &str,
    env: &NarrativeEnv<'_>,
    rows: &mut Vec<Row>,
    depth: usize,
) {
    let m = g.mark();
    let top = g.is_empty_concrete();
    for (k, child) in o {
        g.reset(m);
        if !top {
            g.push_raw(".");
        }
        g.push_raw(k);
        let lbl = label_row("", g, env);
        match child {
            Value::Object(_) if !is_compact(child, g, env) => {
                rows.push(Row { label: join(prefix, &lbl), value: None });
                flatten(child, g, "", env, rows, depth + 1);
            }
            Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                let im = g.mark();
                for (i, it) in items.iter().enumerate() {
                    g.reset(im);
                    g.push_index();
                    if items.len() > 1 {
                        rows.push(Row { label: format!("{} {}", join(prefix, &lbl), i + 1), value: None });
                    } else {
                        rows.push(Row { label: join(prefix, &lbl), value: None });
                    }
                    flatten(it, g, "", env, rows, depth + 1);
                }
            }
            Value::Array(items) => {
                let im = g.mark();
                g.push_index();
                let field = env.labels.field(g.as_str());
                let mut texts = String::new();
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        texts.push_str("; ");
                    }
                    texts.push_str(&scalar(it, field, env));
                }
                g.reset(im);
                rows.push(Row { label: join(prefix, &lbl), value: Some(texts) });
            }
            Value::Object(_) => flatten(child, g, prefix, env, rows, depth + 1),
            _ => rows
                .push(Row { label: join(prefix, &lbl), value: Some(scalar(child, env.labels.field(g.as_str()), env)) }),
        }
    }
    g.reset(m);
}

fn is_compact(v: &Value, g: &GenericPath, env: &NarrativeEnv<'_>) -> bool {
    let o = match v.as_object() {
        Some(o) => o,
        None => return true,
    };
    is_quantity(o)
        || env
            .labels
            .field(g.as_str())
            .is_some_and(|f| f.kind == Kind::Object && f.schema_ref.as_deref() == Some(PERSON_NAME))
}

fn join(prefix: &str, label: &str) -> String {
    if prefix.is_empty() {
        label.to_string()
    } else {
        format!("{prefix} — {label}")
    }
}

fn concept_text(c: View<'_, '_>) -> Option<String> {
    if let Some(t) = c.get("text").and_then(View::as_str) {
        return Some(t.to_string());
    }
    let coding = c.get("coding")?.at(0)?;
    coding.get("display").or_else(|| coding.get("code")).and_then(View::as_str).map(str::to_string)
}

fn human_name(n: View<'_, '_>) -> Option<String> {
    if let Some(t) = n.get("text").and_then(View::as_str) {
        return Some(t.to_string());
    }
    let mut parts: Vec<String> = n.get("family").and_then(View::as_str).map(str::to_string).into_iter().collect();
    parts.extend(
        n.get("given").and_then(View::items).into_iter().flatten().filter_map(View::as_str).map(str::to_string),
    );
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn period_text(v: View<'_, '_>) -> String {
    format!(
        "{} – {}",
        v.get("start").and_then(View::as_str).unwrap_or(""),
        v.get("end").and_then(View::as_str).unwrap_or("")
    )
}

/// The text of the first `value[x]` member of object `o`.
fn value_text(o: View<'_, '_>) -> Option<String> {
    let (k, v) = o.members()?.find(|(k, _)| k.starts_with("value"))?;
    Some(match k {
        "valueQuantity" => format!(
            "{} {}",
            v.get("value").map(View::to_json).unwrap_or_default(),
            v.get("unit").or_else(|| v.get("code")).and_then(View::as_str).unwrap_or("")
        )
        .trim()
        .to_string(),
        "valueCodeableConcept" => concept_text(v)?,
        "valuePeriod" => period_text(v),
        _ => match v {
            View::Value(Value::Bool(b)) => b.to_string(),
            View::Value(Value::Number(n)) => n.to_string(),
            v => v.as_str()?.to_string(),
        },
    })
}

/// A short generated narrative for one resource (dom-6): what it is, its code, value, people, times.
pub fn resource_div(res: &Value) -> Option<String> {
    resource_div_of(View::Value(res))
}

/// [`resource_div`] of a resource being composed (an object).
pub fn resource_div_of(o: View<'_, '_>) -> Option<String> {
    // the members read below, found in one pass (a resource's members are unique)
    const SIMPLE: [&str; 11] = [
        "birthDate",
        "gender",
        "status",
        "effectiveDateTime",
        "occurrenceDateTime",
        "performedDateTime",
        "authoredOn",
        "recordedDate",
        "onsetDateTime",
        "issued",
        "conclusion",
    ];
    const PERIODS: [&str; 4] = ["actualPeriod", "effectivePeriod", "occurrencePeriod", "period"];
    let (mut rt, mut name, mut component, mut identifier, mut item) = (None, None, None, None, None);
    let mut codes: [Option<View<'_, '_>>; 4] = [None; 4];
    let mut simple: [Option<View<'_, '_>>; 11] = [None; 11];
    let mut periods: [Option<View<'_, '_>>; 4] = [None; 4];
    for (k, v) in o.members()? {
        let slot = match k {
            "resourceType" => &mut rt,
            "name" => &mut name,
            "component" => &mut component,
            "identifier" => &mut identifier,
            "item" => &mut item,
            "code" => &mut codes[0],
            "medication" => &mut codes[1],
            "type" => &mut codes[2],
            "suppliedItem" => &mut codes[3],
            "birthDate" => &mut simple[0],
            "gender" => &mut simple[1],
            "status" => &mut simple[2],
            "effectiveDateTime" => &mut simple[3],
            "occurrenceDateTime" => &mut simple[4],
            "performedDateTime" => &mut simple[5],
            "authoredOn" => &mut simple[6],
            "recordedDate" => &mut simple[7],
            "onsetDateTime" => &mut simple[8],
            "issued" => &mut simple[9],
            "conclusion" => &mut simple[10],
            "actualPeriod" => &mut periods[0],
            "effectivePeriod" => &mut periods[1],
            "occurrencePeriod" => &mut periods[2],
            "period" => &mut periods[3],
            _ => continue,
        };
        *slot = Some(v);
    }
    let rt = rt?.as_str()?;
    let mut rows = Vec::new();
    let mut push = |label: &str, v: Option<String>| {
        if let Some(v) = v.filter(|s| !s.is_empty()) {
            rows.push(Row { label: label.to_string(), value: Some(v) });
        }
    };
    let code = codes.iter().find_map(|c| {
        let c = (*c)?;
        let c = if c.is_array() { c.at(0)? } else { c };
        concept_text(c.get("concept").unwrap_or(c)).or_else(|| c.get("itemCodeableConcept").and_then(concept_text))
    });
    let name = name.and_then(|n| match n.as_str() {
        Some(s) => Some(s.to_string()),
        None => n.items()?.next().and_then(human_name),
    });
    push("name", name);
    push("code", code.clone());
    push("value", value_text(o));
    for c in component.and_then(View::items).into_iter().flatten() {
        if let (Some(l), Some(v)) = (c.get("code").and_then(concept_text), value_text(c)) {
            push(&l, Some(v));
        }
    }
    if let Some(id) = identifier.and_then(|i| if i.is_array() { i.at(0) } else { Some(i) }) {
        push("identifier", id.get("value").and_then(View::as_str).map(str::to_string));
    }
    for (k, v) in SIMPLE.iter().zip(simple) {
        push(k, v.and_then(View::as_str).map(str::to_string));
    }
    for (k, p) in PERIODS.iter().zip(periods) {
        if let Some(p) = p {
            // what `value_text` says of `{"valuePeriod": p}`
            push(k, Some(period_text(p)));
        }
    }
    if let Some(items) = item.and_then(View::items) {
        for it in items {
            let l = it.get("text").or_else(|| it.get("linkId")).and_then(View::as_str).unwrap_or("item");
            let v = it.get("answer").and_then(|a| a.at(0)).and_then(value_text);
            push(l, v);
        }
    }
    let heading = match &code {
        Some(c) => format!("{rt}: {c}"),
        None => rt.to_string(),
    };
    Narrative { heading: &heading, paragraphs: vec![], rows }.render().ok()
}
