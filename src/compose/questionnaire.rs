//! An R5 Questionnaire generated from a form's schema (so an SDC renderer can draw the form), and
//! the inverse: a QuestionnaireResponse answering it → the form JSON the composer takes.
//!
//! `linkId` is the field's input path with `[]` for array items (`administrativeInformation.transfers[].department`),
//! so answers map back without a table. Texts are English with Uzbek and Russian translations
//! (`http://hl7.org/fhir/StructureDefinition/translation`), all read from the schema.

use super::labels::{Field, Kind, Lang};
use super::FormDef;
use crate::error::{AppError, Issue};
use serde_json::{json, Map, Value};

const TRANSLATION: &str = "http://hl7.org/fhir/StructureDefinition/translation";

/// The canonical URL of a form's Questionnaire.
pub fn canonical(def: &FormDef, base: &str) -> String {
    format!("{base}/forms/{}/Questionnaire", def.form)
}

fn children<'a>(def: &'a FormDef, parent: &str) -> Vec<(&'a String, &'a Field)> {
    let mut v: Vec<(&String, &Field)> = def
        .labels
        .fields
        .iter()
        .filter(|(p, _)| match parent {
            "" => !p.contains('.') && !p.contains("[]"),
            _ => p
                .strip_prefix(parent)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|r| !r.contains('.') && !r.contains("[]")),
        })
        .collect();
    v.sort_by_key(|(_, f)| f.order);
    v
}

fn text_with_translations(item: &mut Map<String, Value>, f: &Field, fallback: &str) {
    let en = if f.labels.en.is_empty() { fallback.to_string() } else { f.labels.en.clone() };
    item.insert("text".into(), json!(en));
    let mut ext = Vec::new();
    for (lang, s) in [("uz", &f.labels.uz), ("ru", &f.labels.ru)] {
        if !s.is_empty() {
            ext.push(json!({"url": TRANSLATION, "extension": [
                {"url": "lang", "valueCode": lang}, {"url": "content", "valueString": s}]}));
        }
    }
    if !ext.is_empty() {
        item.insert("_text".into(), json!({"extension": ext}));
    }
}

fn scalar_type(f: &Field) -> &'static str {
    if !f.enum_codes.is_empty() {
        return "coding";
    }
    match f.kind {
        Kind::Boolean => "boolean",
        Kind::Integer => "integer",
        Kind::Number => "decimal",
        _ => match f.format.as_deref() {
            Some("date") => "date",
            Some("date-time") => "dateTime",
            _ => "string",
        },
    }
}

fn item_for(def: &FormDef, path: &str, f: &Field) -> Value {
    let name = path.rsplit('.').next().unwrap_or(path);
    let mut item = Map::new();
    item.insert("linkId".into(), json!(path));
    text_with_translations(&mut item, f, name);
    let (node_path, node, repeats) = match f.kind {
        Kind::Array => {
            let ip = format!("{path}[]");
            match def.labels.fields.get(&ip) {
                Some(inner) => (ip, inner, true),
                None => (path.to_string(), f, true),
            }
        }
        _ => (path.to_string(), f, false),
    };
    if node.kind == Kind::Object {
        item.insert("type".into(), json!("group"));
        let kids: Vec<Value> = children(def, &node_path).into_iter().map(|(p, cf)| item_for(def, p, cf)).collect();
        if !kids.is_empty() {
            item.insert("item".into(), Value::Array(kids));
        }
    } else {
        item.insert("type".into(), json!(scalar_type(node)));
        if !node.enum_codes.is_empty() {
            let opts: Vec<Value> = node
                .enum_codes
                .iter()
                .map(|c| {
                    let mut coding = json!({"code": c});
                    if let Some(d) = def.labels.value_text(&node_path, c, Lang::En) {
                        coding["display"] = json!(d);
                    }
                    json!({"valueCoding": coding})
                })
                .collect();
            item.insert("answerOption".into(), Value::Array(opts));
        }
    }
    if f.required {
        item.insert("required".into(), json!(true));
    }
    if repeats {
        item.insert("repeats".into(), json!(true));
    }
    Value::Object(item)
}

/// The Questionnaire for a form.
pub fn questionnaire(def: &FormDef, base: &str) -> Value {
    let items: Vec<Value> = children(def, "").into_iter().map(|(p, f)| item_for(def, p, f)).collect();
    json!({
        "resourceType": "Questionnaire",
        "id": format!("form-{}", def.form),
        "url": canonical(def, base),
        "version": env!("CARGO_PKG_VERSION"),
        "name": format!("Form{}", def.form),
        "title": def.title.en,
        "status": "active",
        "subjectType": ["Patient"],
        "item": items,
    })
}

/// A QuestionnaireResponse answering the form's Questionnaire → form JSON. Problems are reported
/// with the QuestionnaireResponse path of the offending item.
pub fn response_to_input(def: &FormDef, qr: &Value) -> Result<Value, AppError> {
    let mut issues = Vec::new();
    let q = qr.get("questionnaire").and_then(Value::as_str).unwrap_or("");
    let suffix = format!("/forms/{}/Questionnaire", def.form);
    if !q.split('|').next().unwrap_or("").ends_with(&suffix) {
        issues.push(Issue::new(
            "value",
            Some("QuestionnaireResponse.questionnaire".to_string()),
            format!("must be the canonical of this form's Questionnaire (…{suffix}), not `{q}`"),
        ));
    }
    let items = qr.get("item").and_then(Value::as_array).cloned().unwrap_or_default();
    let obj = object_from(def, &items, "", "QuestionnaireResponse", &mut issues);
    if issues.is_empty() {
        Ok(Value::Object(obj))
    } else {
        Err(AppError::Invalid(issues))
    }
}

fn object_from(def: &FormDef, items: &[Value], parent: &str, at: &str, issues: &mut Vec<Issue>) -> Map<String, Value> {
    let mut out = Map::new();
    // group the (possibly repeated) items by linkId, keeping first-seen order
    let mut groups: Vec<(String, Vec<(usize, &Value)>)> = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let Some(link) = it.get("linkId").and_then(Value::as_str) else {
            issues.push(Issue::new("required", Some(format!("{at}.item[{i}].linkId")), "every item needs a linkId"));
            continue;
        };
        match groups.iter_mut().find(|(l, _)| l == link) {
            Some((_, v)) => v.push((i, it)),
            None => groups.push((link.to_string(), vec![(i, it)])),
        }
    }
    for (link, its) in groups {
        let here = format!("{at}.item[{}]", its[0].0);
        let name = match parent {
            "" => Some(link.as_str()),
            _ => link.strip_prefix(parent).and_then(|r| r.strip_prefix('.')),
        };
        let (Some(name), Some(f)) = (name.filter(|n| !n.contains('.')), def.labels.fields.get(&link)) else {
            issues.push(Issue::new(
                "value",
                Some(format!("{here}.linkId")),
                format!("`{link}` is not an item of this Questionnaire here"),
            ));
            continue;
        };
        let value = match f.kind {
            Kind::Array => {
                let ip = format!("{link}[]");
                let inner = def.labels.fields.get(&ip);
                if inner.is_some_and(|x| x.kind == Kind::Object) {
                    let arr: Vec<Value> = its
                        .iter()
                        .map(|(i, it)| {
                            let kids = it.get("item").and_then(Value::as_array).cloned().unwrap_or_default();
                            Value::Object(object_from(def, &kids, &ip, &format!("{at}.item[{i}]"), issues))
                        })
                        .collect();
                    Value::Array(arr)
                } else {
                    Value::Array(its.iter().flat_map(|(_, it)| answers(it)).collect())
                }
            }
            Kind::Object => {
                let kids = its[0].1.get("item").and_then(Value::as_array).cloned().unwrap_or_default();
                Value::Object(object_from(def, &kids, &link, &here, issues))
            }
            _ => match answers(its[0].1).into_iter().next() {
                Some(v) => v,
                None => continue,
            },
        };
        out.insert(name.to_string(), value);
    }
    out
}

fn answers(item: &Value) -> Vec<Value> {
    item.get("answer")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|ans| {
                    let o = ans.as_object()?;
                    let (k, v) = o.iter().find(|(k, _)| k.starts_with("value"))?;
                    Some(match k.as_str() {
                        "valueCoding" => v.get("code").cloned().unwrap_or(Value::Null),
                        _ => v.clone(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The inverse, for tests and for MIS developers: form JSON → a QuestionnaireResponse.
pub fn input_to_response(def: &FormDef, input: &Value, base: &str) -> Value {
    fn items(def: &FormDef, v: &Map<String, Value>, parent: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for (k, val) in v {
            let link = if parent.is_empty() { k.clone() } else { format!("{parent}.{k}") };
            let f = def.labels.fields.get(&link);
            match val {
                Value::Array(arr) => {
                    let ip = format!("{link}[]");
                    if def.labels.fields.get(&ip).is_some_and(|x| x.kind == Kind::Object) {
                        for el in arr {
                            let kids = el.as_object().map(|o| items(def, o, &ip)).unwrap_or_default();
                            out.push(json!({"linkId": link, "item": kids}));
                        }
                    } else {
                        let ans: Vec<Value> = arr.iter().map(|x| answer(def.labels.fields.get(&ip).or(f), x)).collect();
                        out.push(json!({"linkId": link, "answer": ans}));
                    }
                }
                Value::Object(o) => out.push(json!({"linkId": link, "item": items(def, o, &link)})),
                x => out.push(json!({"linkId": link, "answer": [answer(f, x)]})),
            }
        }
        out
    }
    fn answer(f: Option<&Field>, v: &Value) -> Value {
        let t = f.map(scalar_type).unwrap_or("string");
        match (t, v) {
            ("coding", x) => json!({"valueCoding": {"code": x}}),
            ("boolean", x) => json!({"valueBoolean": x}),
            ("integer", x) => json!({"valueInteger": x}),
            ("decimal", x) => json!({"valueDecimal": x}),
            ("date", x) => json!({"valueDate": x}),
            ("dateTime", x) => json!({"valueDateTime": x}),
            (_, x) => json!({"valueString": x}),
        }
    }
    let body = input.as_object().map(|o| items(def, o, "")).unwrap_or_default();
    json!({"resourceType": "QuestionnaireResponse", "questionnaire": canonical(def, base), "status": "completed", "item": body})
}
