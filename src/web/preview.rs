//! The printable preview of a document version: the same view the signing iframe shows.
//! The narratives are the Bundle's own XHTML (generated and escaped by the composer).

use crate::error::AppError;
use askama::Template;
use serde_json::Value;

pub struct Sec {
    pub title: String,
    pub div: String,
    pub depth: usize,
}

#[derive(Template)]
#[template(path = "preview.html")]
struct Preview {
    lang: String,
    title: String,
    version_label: &'static str,
    version: i64,
    timestamp: String,
    identifier: String,
    composition_div: String,
    sections: Vec<Sec>,
}

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

pub fn render(bundle: &Value, version: i64) -> Result<String, AppError> {
    let comp = bundle
        .pointer("/entry/0/resource")
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stored bundle has no Composition")))?;
    let mut sections = Vec::new();
    if let Some(s) = comp.get("section").and_then(Value::as_array) {
        collect(s, 0, &mut sections);
    }
    let lang = comp.get("language").and_then(Value::as_str).unwrap_or("uz").to_string();
    let version_label = match lang.as_str() {
        "ru" => "Версия",
        "en" => "Version",
        _ => "Versiya",
    };
    let p = Preview {
        title: comp.get("title").and_then(Value::as_str).unwrap_or("").to_string(),
        lang,
        version_label,
        version,
        timestamp: bundle.get("timestamp").and_then(Value::as_str).unwrap_or("").to_string(),
        identifier: bundle.pointer("/identifier/value").and_then(Value::as_str).unwrap_or("").to_string(),
        composition_div: comp.pointer("/text/div").and_then(Value::as_str).unwrap_or("").to_string(),
        sections,
    };
    p.render().map_err(|e| AppError::Internal(e.into()))
}
