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

pub fn render(
    heading: &str,
    text: Option<&str>,
    input: Option<(&Value, &str)>,
    env: &NarrativeEnv<'_>,
) -> String {
    let paragraphs: Vec<&str> = text
        .map(|t| {
            t.split('\n')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    if let Some((v, path)) = input {
        flatten(v, path, "", env, &mut rows, 0);
    }
    let n = Narrative {
        heading,
        paragraphs,
        rows,
    };
    n.render().unwrap_or_else(|_| {
        // Rendering into a String cannot fail for these types; keep a valid div regardless.
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>-</p></div>".to_string()
    })
}

fn label_of(path: &str, env: &NarrativeEnv<'_>) -> String {
    let g = generic_path(path);
    match env.labels.field(&g) {
        Some(f) => f.labels.get(env.lang).to_string(),
        None => g
            .rsplit('.')
            .next()
            .unwrap_or(&g)
            .trim_end_matches("[]")
            .to_string(),
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

fn flatten(
    v: &Value,
    path: &str,
    prefix: &str,
    env: &NarrativeEnv<'_>,
    rows: &mut Vec<Row>,
    depth: usize,
) {
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
                    value: Some(format!(
                        "{} {}",
                        o["value"],
                        o["unit"].as_str().unwrap_or("")
                    )),
                });
                return;
            }
            let field = env.labels.field(&generic_path(path));
            if field.is_some_and(|f| f.schema_ref.as_deref() == Some("#/$defs/personName")) {
                if let Some(n) = super::expr::person_name(v) {
                    rows.push(Row {
                        label: join(prefix, &label_of(path, env)),
                        value: Some(n),
                    });
                    return;
                }
            }
            for (k, child) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let lbl = label_of(&p, env);
                match child {
                    Value::Object(_) if !is_compact(child, &p, env) => {
                        rows.push(Row {
                            label: join(prefix, &lbl),
                            value: None,
                        });
                        flatten(child, &p, "", env, rows, depth + 1);
                    }
                    Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                        for (i, it) in items.iter().enumerate() {
                            let ip = format!("{p}[{i}]");
                            if items.len() > 1 {
                                rows.push(Row {
                                    label: format!("{} {}", join(prefix, &lbl), i + 1),
                                    value: None,
                                });
                            } else {
                                rows.push(Row {
                                    label: join(prefix, &lbl),
                                    value: None,
                                });
                            }
                            flatten(it, &ip, "", env, rows, depth + 1);
                        }
                    }
                    Value::Array(items) => {
                        let texts: Vec<String> = items
                            .iter()
                            .enumerate()
                            .map(|(i, it)| scalar(it, &format!("{p}[{i}]"), env))
                            .collect();
                        rows.push(Row {
                            label: join(prefix, &lbl),
                            value: Some(texts.join("; ")),
                        });
                    }
                    Value::Object(_) => flatten(child, &p, prefix, env, rows, depth + 1),
                    _ => rows.push(Row {
                        label: join(prefix, &lbl),
                        value: Some(scalar(child, &p, env)),
                    }),
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
            rows.push(Row {
                label: join(prefix, &label),
                value: Some(scalar(other, path, env)),
            });
        }
    }
}

fn is_compact(v: &Value, path: &str, env: &NarrativeEnv<'_>) -> bool {
    let o = match v.as_object() {
        Some(o) => o,
        None => return true,
    };
    (o.len() <= 2 && o.contains_key("value") && o.contains_key("unit"))
        || env.labels.field(&generic_path(path)).is_some_and(|f| {
            f.kind == Kind::Object && f.schema_ref.as_deref() == Some("#/$defs/personName")
        })
}

fn join(prefix: &str, label: &str) -> String {
    if prefix.is_empty() {
        label.to_string()
    } else {
        format!("{prefix} — {label}")
    }
}
