//! Generated XHTML narratives: a heading, free-text paragraphs, and a label/value table of the
//! section's input (labels and code meanings from the schema, in the document's language).

use super::labels::{generic_path, Kind, LabelMap, Lang};
use askama::Template;
use serde_json::Value;
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
    let paragraphs: Vec<&str> =
        text.map(|t| t.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect()).unwrap_or_default();
    let mut rows = Vec::new();
    if let Some((v, path)) = input {
        flatten(v, path, "", env, &mut rows, 0);
    }
    let n = Narrative { heading, paragraphs, rows };
    n.render().unwrap_or_else(|_| {
        // Rendering into a String cannot fail for these types; keep a valid div regardless.
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>-</p></div>".to_string()
    })
}

fn label_of(path: &str, env: &NarrativeEnv<'_>) -> String {
    let g = generic_path(path);
    match env.labels.field(&g) {
        Some(f) => f.labels.get(env.lang).to_string(),
        None => g.rsplit('.').next().unwrap_or(&g).trim_end_matches("[]").to_string(),
    }
}

fn scalar(v: &Value, path: &str, env: &NarrativeEnv<'_>) -> String {
    let g = generic_path(path);
    let field = env.labels.field(&g);
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
                    if let Some(t) = env.labels.value_text(&g, s, env.lang) {
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

fn flatten(v: &Value, path: &str, prefix: &str, env: &NarrativeEnv<'_>, rows: &mut Vec<Row>, depth: usize) {
    if depth > 12 {
        return;
    }
    match v {
        Value::Object(o) => {
            // {value, unit} quantities and person names read better on one line
            if o.len() <= 2 && o.contains_key("value") && o.contains_key("unit") {
                let label = label_of(path, env);
                rows.push(Row {
                    label: join(prefix, &label),
                    value: Some(format!("{} {}", o["value"], o["unit"].as_str().unwrap_or(""))),
                });
                return;
            }
            let field = env.labels.field(&generic_path(path));
            if field.is_some_and(|f| f.schema_ref.as_deref() == Some("#/$defs/personName")) {
                if let Some(n) = super::expr::person_name(v) {
                    rows.push(Row { label: join(prefix, &label_of(path, env)), value: Some(n) });
                    return;
                }
            }
            for (k, child) in o {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                let lbl = label_of(&p, env);
                match child {
                    Value::Object(_) if !is_compact(child, &p, env) => {
                        rows.push(Row { label: join(prefix, &lbl), value: None });
                        flatten(child, &p, "", env, rows, depth + 1);
                    }
                    Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                        for (i, it) in items.iter().enumerate() {
                            let ip = format!("{p}[{i}]");
                            if items.len() > 1 {
                                rows.push(Row { label: format!("{} {}", join(prefix, &lbl), i + 1), value: None });
                            } else {
                                rows.push(Row { label: join(prefix, &lbl), value: None });
                            }
                            flatten(it, &ip, "", env, rows, depth + 1);
                        }
                    }
                    Value::Array(items) => {
                        let texts: Vec<String> =
                            items.iter().enumerate().map(|(i, it)| scalar(it, &format!("{p}[{i}]"), env)).collect();
                        rows.push(Row { label: join(prefix, &lbl), value: Some(texts.join("; ")) });
                    }
                    Value::Object(_) => flatten(child, &p, prefix, env, rows, depth + 1),
                    _ => rows.push(Row { label: join(prefix, &lbl), value: Some(scalar(child, &p, env)) }),
                }
            }
        }
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                flatten(it, &format!("{path}[{i}]"), prefix, env, rows, depth + 1);
            }
        }
        other => {
            let label = label_of(path, env);
            rows.push(Row { label: join(prefix, &label), value: Some(scalar(other, path, env)) });
        }
    }
}

fn is_compact(v: &Value, path: &str, env: &NarrativeEnv<'_>) -> bool {
    let o = match v.as_object() {
        Some(o) => o,
        None => return true,
    };
    (o.len() <= 2 && o.contains_key("value") && o.contains_key("unit"))
        || env
            .labels
            .field(&generic_path(path))
            .is_some_and(|f| f.kind == Kind::Object && f.schema_ref.as_deref() == Some("#/$defs/personName"))
}

fn join(prefix: &str, label: &str) -> String {
    if prefix.is_empty() {
        label.to_string()
    } else {
        format!("{prefix} — {label}")
    }
}

fn concept_text(c: &Value) -> Option<String> {
    if let Some(t) = c.get("text").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    let coding = c.get("coding")?.get(0)?;
    coding.get("display").or_else(|| coding.get("code")).and_then(Value::as_str).map(str::to_string)
}

fn human_name(n: &Value) -> Option<String> {
    if let Some(t) = n.get("text").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    let mut parts: Vec<String> = n.get("family").and_then(Value::as_str).map(str::to_string).into_iter().collect();
    parts.extend(
        n.get("given").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string),
    );
    (!parts.is_empty()).then(|| parts.join(" "))
}

fn value_text(o: &serde_json::Map<String, Value>) -> Option<String> {
    let (k, v) = o.iter().find(|(k, _)| k.starts_with("value"))?;
    Some(match k.as_str() {
        "valueQuantity" => format!(
            "{} {}",
            v.get("value").map(|x| x.to_string()).unwrap_or_default(),
            v.get("unit").or_else(|| v.get("code")).and_then(Value::as_str).unwrap_or("")
        )
        .trim()
        .to_string(),
        "valueCodeableConcept" => concept_text(v)?,
        "valuePeriod" => format!(
            "{} – {}",
            v.get("start").and_then(Value::as_str).unwrap_or(""),
            v.get("end").and_then(Value::as_str).unwrap_or("")
        ),
        _ => match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        },
    })
}

/// A short generated narrative for one resource (dom-6): what it is, its code, value, people, times.
pub fn resource_div(res: &Value) -> Option<String> {
    let o = res.as_object()?;
    let rt = o.get("resourceType")?.as_str()?;
    let mut rows = Vec::new();
    let mut push = |label: &str, v: Option<String>| {
        if let Some(v) = v.filter(|s| !s.is_empty()) {
            rows.push(Row { label: label.to_string(), value: Some(v) });
        }
    };
    let code = ["code", "medication", "type", "suppliedItem"].iter().find_map(|k| {
        let c = o.get(*k)?;
        let c = if c.is_array() { c.get(0)? } else { c };
        concept_text(c.get("concept").unwrap_or(c)).or_else(|| c.get("itemCodeableConcept").and_then(concept_text))
    });
    let name = o.get("name").and_then(|n| match n {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(human_name),
        _ => None,
    });
    push("name", name);
    push("code", code.clone());
    push("value", value_text(o));
    for c in o.get("component").and_then(Value::as_array).into_iter().flatten() {
        if let (Some(l), Some(v)) = (c.get("code").and_then(concept_text), c.as_object().and_then(value_text)) {
            push(&l, Some(v));
        }
    }
    if let Some(id) = o.get("identifier").and_then(|i| if i.is_array() { i.get(0) } else { Some(i) }) {
        push("identifier", id.get("value").and_then(Value::as_str).map(str::to_string));
    }
    for k in [
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
    ] {
        push(k, o.get(k).and_then(Value::as_str).map(str::to_string));
    }
    for k in ["actualPeriod", "effectivePeriod", "occurrencePeriod", "period"] {
        if let Some(p) = o.get(k) {
            push(k, value_text(&[("valuePeriod".to_string(), p.clone())].into_iter().collect()));
        }
    }
    if let Some(items) = o.get("item").and_then(Value::as_array) {
        for it in items {
            let l = it.get("text").or_else(|| it.get("linkId")).and_then(Value::as_str).unwrap_or("item");
            let v = it.get("answer").and_then(|a| a.get(0)).and_then(Value::as_object).and_then(value_text);
            push(l, v);
        }
    }
    let heading = match &code {
        Some(c) => format!("{rt}: {c}"),
        None => rt.to_string(),
    };
    Narrative { heading: &heading, paragraphs: vec![], rows }.render().ok()
}
