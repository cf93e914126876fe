//! Field labels in Uzbek, Russian and English, read from the form's schema: `title` is English and
//! each `description` starts `UZ: «…»; RU: «…».` (the input contract's convention); enum meanings come
//! from `Values: \`code\` = meaning; …`. Keys are dotted input paths with `[]` for array items.

use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Labels {
    pub en: String,
    pub uz: String,
    pub ru: String,
}

impl Labels {
    pub fn get(&self, lang: Lang) -> &str {
        let s = match lang {
            Lang::Uz => &self.uz,
            Lang::Ru => &self.ru,
            Lang::En => &self.en,
        };
        if s.is_empty() {
            &self.en
        } else {
            s
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Uz,
    Ru,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Lang {
        match s.get(..2).unwrap_or("") {
            "ru" => Lang::Ru,
            "en" => Lang::En,
            _ => Lang::Uz,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::Uz => "uz",
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }
    pub fn yes_no(self, b: bool) -> &'static str {
        match (self, b) {
            (Lang::Uz, true) => "Ha",
            (Lang::Uz, false) => "Yo'q",
            (Lang::Ru, true) => "Да",
            (Lang::Ru, false) => "Нет",
            (Lang::En, true) => "Yes",
            (Lang::En, false) => "No",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Field {
    pub labels: Labels,
    /// enum code → meaning (as written in the schema: often `en / uz / ru`)
    pub values: HashMap<String, String>,
    /// the schema `$ref` of this location, e.g. `#/$defs/practitionerRef`
    pub schema_ref: Option<String>,
    pub kind: Kind,
    pub required: bool,
    pub enum_codes: Vec<String>,
    pub format: Option<String>,
    /// the schema constrains the text with a `pattern` or `enum` (codes, identifiers): FHIR `code`
    /// and identifier values must not carry leading or trailing white space
    pub coded: bool,
    pub order: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kind {
    #[default]
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

#[derive(Debug, Default)]
pub struct LabelMap {
    pub fields: super::FxHashMap<String, Field>,
}

static UZ_RU: Lazy<Regex> = Lazy::new(|| Regex::new(r"UZ: «([^»]*)»(?:; RU: «([^»]*)»)?").unwrap());
static VALUES: Lazy<Regex> = Lazy::new(|| Regex::new(r"`([^`]+)` = ([^;`]+?)(?:;|\.\s|\.$|$)").unwrap());

impl LabelMap {
    pub fn from_schema(schema: &Value) -> LabelMap {
        let mut m = LabelMap::default();
        let mut order = 0;
        walk(schema, schema, "", None, false, &mut m, &mut order, 0);
        m
    }

    pub fn field(&self, path: &str) -> Option<&Field> {
        self.fields.get(path)
    }

    /// The meaning of an enum code in the given language.
    pub fn value_text(&self, path: &str, code: &str, lang: Lang) -> Option<String> {
        self.fields.get(path)?.value_text(code, lang)
    }
}

impl Field {
    /// The meaning of one of this field's enum codes in the given language.
    pub fn value_text(&self, code: &str, lang: Lang) -> Option<String> {
        let raw = self.values.get(code)?;
        // a meaning may end with its code system in parentheses: keep the words only
        let raw = match raw.find(" (http") {
            Some(i) => &raw[..i],
            None => raw.as_str(),
        };
        let parts: Vec<&str> = raw.split(" / ").map(str::trim).collect();
        Some(match (parts.len(), lang) {
            (3, Lang::En) => parts[0].to_string(),
            (3, Lang::Uz) => parts[1].to_string(),
            (3, Lang::Ru) => parts[2].to_string(),
            _ => raw.trim().to_string(),
        })
    }
}

fn resolve<'a>(root: &'a Value, node: &'a Value) -> (&'a Value, Option<String>) {
    let mut n = node;
    let mut first_ref = None;
    for _ in 0..8 {
        match n.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                if first_ref.is_none() {
                    first_ref = Some(r.to_string());
                }
                let ptr = r.trim_start_matches('#');
                match root.pointer(ptr) {
                    Some(t) => n = t,
                    None => break,
                }
            }
            None => break,
        }
    }
    (n, first_ref)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    root: &Value,
    node: &Value,
    path: &str,
    outer: Option<&Value>,
    required: bool,
    m: &mut LabelMap,
    order: &mut usize,
    depth: usize,
) {
    if depth > 24 {
        return;
    }
    let (target, sref) = resolve(root, node);
    // The property's own title/description win over the referenced definition's.
    let title = node.get("title").or_else(|| target.get("title")).and_then(Value::as_str).unwrap_or("");
    let desc = node
        .get("description")
        .or_else(|| outer.and_then(|o| o.get("description")))
        .or_else(|| target.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = match target.get("type").and_then(Value::as_str) {
        Some("number") => Kind::Number,
        Some("integer") => Kind::Integer,
        Some("boolean") => Kind::Boolean,
        Some("object") => Kind::Object,
        Some("array") => Kind::Array,
        _ => {
            if target.get("properties").is_some() {
                Kind::Object
            } else {
                Kind::String
            }
        }
    };
    if !path.is_empty() {
        let mut labels = Labels { en: title.to_string(), ..Default::default() };
        if let Some(c) = UZ_RU.captures(desc) {
            labels.uz = c.get(1).map_or("", |x| x.as_str()).to_string();
            labels.ru = c.get(2).map_or("", |x| x.as_str()).to_string();
        }
        let mut values = HashMap::new();
        if let Some(idx) = desc.find("Values:") {
            for c in VALUES.captures_iter(&desc[idx..]) {
                values.insert(c[1].to_string(), c[2].trim().to_string());
            }
        }
        let enum_codes = target
            .get("enum")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let format = target.get("format").and_then(Value::as_str).map(str::to_string);
        let coded = target.get("pattern").is_some() || target.get("enum").is_some();
        *order += 1;
        m.fields.entry(path.to_string()).or_insert(Field {
            labels,
            values,
            schema_ref: sref,
            kind,
            required,
            enum_codes,
            format,
            coded,
            order: *order,
        });
    }
    if let Some(props) = target.get("properties").and_then(Value::as_object) {
        let req: Vec<&str> = target
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (k, v) in props {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            walk(root, v, &p, None, req.contains(&k.as_str()), m, order, depth + 1);
        }
    }
    if let Some(items) = target.get("items") {
        walk(root, items, &format!("{path}[]"), Some(node), false, m, order, depth + 1);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(arr) = target.get(key).and_then(Value::as_array) {
            for sub in arr {
                let (st, _) = resolve(root, sub);
                if st.get("properties").is_some() || st.get("items").is_some() {
                    walk_children(root, st, path, m, order, depth + 1);
                }
            }
        }
    }
}

fn walk_children(root: &Value, target: &Value, path: &str, m: &mut LabelMap, order: &mut usize, depth: usize) {
    if let Some(props) = target.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            walk(root, v, &p, None, false, m, order, depth + 1);
        }
    }
}

/// `a.b[3].c` → `a.b[].c`
pub fn generic_path(p: &str) -> String {
    let mut g = GenericPath::default();
    g.push_raw(p);
    g.path
}

/// A generic path built step by step: always equal to [`generic_path`] of the concrete path the
/// same steps spell (`key`, `.key`, `[i]`), without building the concrete path.
#[derive(Debug, Default, Clone)]
pub struct GenericPath {
    path: String,
    /// inside `[…]` at the end of the concrete path (a key may contain brackets)
    in_idx: bool,
}

/// Where a [`GenericPath`] was, to go back to it.
#[derive(Debug, Clone, Copy)]
pub struct Mark(usize, bool);

impl GenericPath {
    /// The generic path of a concrete path.
    pub fn of(concrete: &str) -> GenericPath {
        let mut g = GenericPath::default();
        g.push_raw(concrete);
        g
    }

    pub fn as_str(&self) -> &str {
        &self.path
    }

    pub fn is_empty_concrete(&self) -> bool {
        self.path.is_empty() && !self.in_idx
    }

    pub fn mark(&self) -> Mark {
        Mark(self.path.len(), self.in_idx)
    }

    pub fn reset(&mut self, m: Mark) {
        self.path.truncate(m.0);
        self.in_idx = m.1;
    }

    /// Append concrete path text.
    pub fn push_raw(&mut self, p: &str) {
        if !self.in_idx && !p.contains(['[', ']']) {
            self.path.push_str(p);
            return;
        }
        for ch in p.chars() {
            match ch {
                '[' => {
                    self.in_idx = true;
                    self.path.push('[');
                }
                ']' => {
                    self.in_idx = false;
                    self.path.push(']');
                }
                _ if self.in_idx => {}
                c => self.path.push(c),
            }
        }
    }

    /// Append `[i]` (any index: its digits are dropped).
    pub fn push_index(&mut self) {
        self.path.push_str("[]");
        self.in_idx = false;
    }
}
