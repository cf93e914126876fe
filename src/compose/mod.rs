//! Compose: form JSON → FHIR R5 document Bundle, driven by the declarative definitions in `forms/`.
//!
//! The pipeline: JSON Schema validation (formats asserted) → the definition's semantic checks (all
//! problems reported together) → resource templates → Composition and sections → the Bundle.
//! Output is deterministic: every id is a UUIDv5 of the Bundle identifier and the rule name, and the
//! clock is an input ([`ComposeContext`]).

pub mod expr;
pub mod labels;
pub mod narrative;
pub mod node;
pub mod questionnaire;
pub mod template;
pub mod workers;

use crate::error::{AppError, Issue};
use chrono::{DateTime, FixedOffset};
use expr::{as_text, eval, for_each_chain, truthy, with_levels, Env, Expr, Level, Scope};
use labels::{LabelMap, Labels, Lang};
use node::{Members, Node, View};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use template::{compile, render, Ctx, Instance, RefTable, RuleRefs, Tpl};
use uuid::Uuid;

/// Maps keyed by strings of the definition and the input, internal to composing (no untrusted
/// flooding concern: the keys are a form's own paths and rule names).
pub type FxHashMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// The forms built into the binary: (form code, schema, definition). Adding a form = one line here
/// plus its files in `forms/`.
pub const FORMS: &[(&str, &str, &str)] = &[
    ("003", include_str!("../../forms/form-003.schema.json"), include_str!("../../forms/form-003.json")),
    ("096", include_str!("../../forms/form-096.schema.json"), include_str!("../../forms/form-096.json")),
];

const IDENTIFIER_SYSTEM: &str = "urn:ietf:rfc:3986";

/// Identity and clock of one composed version.
#[derive(Debug, Clone)]
pub struct ComposeContext {
    /// The document's stable id (`Composition.identifier`, `/documents/{id}`); the input's
    /// `documentId` wins when given.
    pub document_id: Uuid,
    /// This version's `Bundle.identifier` (new per version) and `Bundle.id`.
    pub bundle_id: Uuid,
    /// `Bundle.timestamp` and the default for times the form does not carry.
    pub timestamp: DateTime<FixedOffset>,
}

impl ComposeContext {
    pub fn new(document_id: Uuid, now: DateTime<FixedOffset>) -> Self {
        ComposeContext { document_id, bundle_id: Uuid::new_v4(), timestamp: now }
    }
}

struct ResourceRule {
    key: String,
    /// nested `for` levels, outermost first (empty: one resource)
    levels: Vec<Level>,
    id: Option<Expr>,
    cond: Option<Expr>,
    profile: Option<String>,
    body: Tpl,
}

struct SectionRule {
    input: Option<Expr>,
    input_path: String,
    cond: Option<Expr>,
    over: Option<Expr>,
    title: HashMap<String, Tpl>,
    code: Tpl,
    text: Option<Expr>,
    /// members of the input the sub-sections show (left out of this section's table)
    skip: Vec<String>,
    author: Option<Tpl>,
    entry: Option<Tpl>,
    sections: Vec<SectionRule>,
}

struct Check {
    over: Option<Expr>,
    assert: Expr,
    path: Tpl,
    message: Tpl,
}

struct RefRule {
    schema_ref: String,
    within: Expr,
    key: String,
    message: String,
}

struct UniqueRule {
    within: Expr,
    key: String,
    message: String,
}

/// One form: its schema, validator, labels and compiled definition.
pub struct FormDef {
    pub form: String,
    pub title: Labels,
    pub profile: String,
    pub schema: Value,
    pub labels: LabelMap,
    validator: jsonschema::Validator,
    tables: Map<String, Value>,
    references: Vec<RefRule>,
    unique: Vec<UniqueRule>,
    checks: Vec<Check>,
    resources: Vec<ResourceRule>,
    composition: Tpl,
    sections: Vec<SectionRule>,
    /// schema instance paths (generic, `[]`) whose `$ref` is named in `references`
    ref_paths: Vec<(String, usize)>,
}

pub struct Composer {
    forms: Vec<FormDef>,
}

impl Composer {
    /// The built-in forms. A broken definition is a programming error caught by the tests.
    pub fn builtin() -> anyhow::Result<Composer> {
        let mut forms = Vec::new();
        for (code, schema, def) in FORMS {
            let schema: Value = serde_json::from_str(schema)?;
            let def: Value = serde_json::from_str(def)?;
            forms.push(FormDef::load(code, schema, &def).map_err(|e| anyhow::anyhow!("form {code}: {e}"))?);
        }
        Ok(Composer { forms })
    }

    pub fn forms(&self) -> &[FormDef] {
        &self.forms
    }

    pub fn get(&self, form: &str) -> Option<&FormDef> {
        let f = form.strip_prefix("form-").unwrap_or(form);
        self.forms.iter().find(|d| d.form == f)
    }

    /// Compose the document for the form named in the input's `form` member.
    pub fn compose_any(&self, input: &Value, ctx: &ComposeContext) -> Result<Value, AppError> {
        let form = input.get("form").and_then(Value::as_str).ok_or_else(|| {
            AppError::Invalid(vec![Issue::new(
                "required",
                Some("form".to_string()),
                "`form` must name the form (\"003\" or \"096\")",
            )])
        })?;
        let def = self.get(form).ok_or_else(|| {
            AppError::Invalid(vec![Issue::new("value", Some("form".to_string()), format!("unknown form `{form}`"))])
        })?;
        def.compose(input, ctx)
    }
}

fn req<'a>(v: &'a Value, k: &str) -> Result<&'a Value, String> {
    v.get(k).ok_or_else(|| format!("missing `{k}`"))
}

fn opt_expr(v: &Value, k: &str, at: &str) -> Result<Option<Expr>, String> {
    match v.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            let s = s.strip_prefix("{{").and_then(|x| x.strip_suffix("}}")).unwrap_or(s);
            expr::parse(s).map(Some).map_err(|e| format!("{at}.{k}: {e}"))
        }
        Some(_) => Err(format!("{at}.{k}: must be an expression string")),
    }
}

fn labels_of(v: &Value) -> Labels {
    let g = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    Labels { en: g("en"), uz: g("uz"), ru: g("ru") }
}

/// `$.a.b` → `a.b` (the generic input path of a section's input expression, for labels)
fn expr_path(e: &Expr) -> Option<String> {
    match e {
        Expr::Root => Some(String::new()),
        Expr::Field(b, n) => {
            let p = expr_path(b)?;
            Some(if p.is_empty() { n.clone() } else { format!("{p}.{n}") })
        }
        Expr::Item(b, _) => Some(format!("{}[]", expr_path(b)?)),
        _ => None,
    }
}

impl FormDef {
    fn load(code: &str, schema: Value, def: &Value) -> Result<FormDef, String> {
        // The form schema is a registered resource, compiled through a root `{"$ref": <its $id>}`.
        // jsonschema 0.33 checks every root it builds against the 2020-12 meta-schema, and its
        // process-wide meta-validator lazily compiles the meta-schema's `$dynamicRef`s anew for
        // each nesting level it walks and never frees them: ~140 MB of heap for the two form
        // schemas. Errors keep their kinds, instance paths and messages; only `schema_path` (not
        // read here) gains a leading `/$ref`. Debug builds (the tests) still check the meta-schema.
        if cfg!(debug_assertions) {
            jsonschema::draft202012::meta::validate(&schema).map_err(|e| format!("schema: {e}"))?;
        }
        let id = match schema.get("$id").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => format!("urn:hujjat:forms:{code}:schema"),
        };
        let resource = jsonschema::Draft::Draft202012.create_resource(schema.clone());
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .with_resource(id.as_str(), resource)
            .build(&json!({ "$ref": id }))
            .map_err(|e| format!("schema: {e}"))?;
        let labels = LabelMap::from_schema(&schema);
        let tables = def.get("tables").and_then(Value::as_object).cloned().unwrap_or_default();
        let mut resources = Vec::new();
        let mut keys = HashSet::new();
        for (i, r) in req(def, "resources")?.as_array().ok_or("resources must be an array")?.iter().enumerate() {
            let at = format!("resources[{i}]");
            let key = req(r, "key")?.as_str().ok_or(format!("{at}.key"))?.to_string();
            if !keys.insert(key.clone()) {
                return Err(format!("{at}: duplicate key `{key}`"));
            }
            let levels = match r.get("for") {
                None => vec![],
                Some(Value::Array(steps)) => steps
                    .iter()
                    .enumerate()
                    .map(|(j, st)| {
                        let here = format!("{at}.for[{j}]");
                        let over = opt_expr(st, "over", &here)?.ok_or(format!("{here}: missing over"))?;
                        Ok((over, st.get("as").and_then(Value::as_str).map(str::to_string)))
                    })
                    .collect::<Result<Vec<_>, String>>()?,
                Some(_) => vec![(
                    opt_expr(r, "for", &at)?.ok_or(format!("{at}.for"))?,
                    r.get("as").and_then(Value::as_str).map(str::to_string),
                )],
            };
            resources.push(ResourceRule {
                levels,
                id: opt_expr(r, "id", &at)?,
                cond: opt_expr(r, "if", &at)?,
                profile: r.get("profile").and_then(Value::as_str).map(str::to_string),
                body: compile(req(r, "resource")?, &format!("{at}.resource"))?,
                key,
            });
        }
        let mut sections = Vec::new();
        for (i, s) in req(def, "sections")?.as_array().ok_or("sections must be an array")?.iter().enumerate() {
            sections.push(load_section(s, &format!("sections[{i}]"), "")?);
        }
        // Every `$ref`/`$refs` must name a resource rule: a typo would silently drop a reference.
        {
            let mut named = Vec::new();
            for r in &resources {
                template::referenced_rules(&r.body, &mut named);
            }
            fn sec_refs(s: &SectionRule, out: &mut Vec<String>) {
                for t in [&s.author, &s.entry].into_iter().flatten() {
                    template::referenced_rules(t, out);
                }
                s.sections.iter().for_each(|x| sec_refs(x, out));
            }
            sections.iter().for_each(|s| sec_refs(s, &mut named));
            if let Some(c) = def.get("composition") {
                template::referenced_rules(&compile(c, "composition")?, &mut named);
            }
            for n in named {
                if !keys.contains(&n) {
                    return Err(format!("a template references `{n}`, which is not a resource rule"));
                }
            }
        }
        let mut checks = Vec::new();
        for (i, c) in def.get("checks").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("checks[{i}]");
            checks.push(Check {
                over: opt_expr(c, "for", &at)?,
                assert: opt_expr(c, "assert", &at)?.ok_or(format!("{at}: missing assert"))?,
                path: compile(req(c, "path")?, &format!("{at}.path"))?,
                message: compile(req(c, "message")?, &format!("{at}.message"))?,
            });
        }
        let mut references = Vec::new();
        for (i, r) in def.get("references").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("references[{i}]");
            references.push(RefRule {
                schema_ref: req(r, "schemaRef")?.as_str().unwrap_or_default().to_string(),
                within: opt_expr(r, "in", &at)?.ok_or(format!("{at}: missing in"))?,
                key: req(r, "key")?.as_str().unwrap_or_default().to_string(),
                message: r.get("message").and_then(Value::as_str).unwrap_or("unknown reference {{value}}").to_string(),
            });
        }
        let mut unique = Vec::new();
        for (i, r) in def.get("unique").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let at = format!("unique[{i}]");
            unique.push(UniqueRule {
                within: opt_expr(r, "in", &at)?.ok_or(format!("{at}: missing in"))?,
                key: req(r, "key")?.as_str().unwrap_or_default().to_string(),
                message: r.get("message").and_then(Value::as_str).unwrap_or("duplicate {{value}}").to_string(),
            });
        }
        let mut ref_paths = Vec::new();
        for (ri, r) in references.iter().enumerate() {
            for (p, f) in &labels.fields {
                if f.schema_ref.as_deref() == Some(r.schema_ref.as_str()) {
                    ref_paths.push((p.clone(), ri));
                }
            }
        }
        ref_paths.sort();
        let composition = compile(def.get("composition").unwrap_or(&json!({})), "composition")?;
        let form = def.get("form").and_then(Value::as_str).unwrap_or(code).to_string();
        Ok(FormDef {
            form,
            title: labels_of(req(def, "title")?),
            profile: req(def, "compositionProfile")?.as_str().unwrap_or_default().to_string(),
            schema,
            labels,
            validator,
            tables,
            references,
            unique,
            checks,
            resources,
            composition,
            sections,
            ref_paths,
        })
    }

    /// Schema errors and semantic check failures, all of them.
    pub fn validate(&self, input: &Value) -> Vec<Issue> {
        let mut issues = Vec::new();
        // `is_valid` is the same validation without building errors; only an invalid input needs them
        let schema_errors = if self.validator.is_valid(input) { None } else { Some(self.validator.iter_errors(input)) };
        for e in schema_errors.into_iter().flatten() {
            let mut path = pointer_to_expression(&e.instance_path);
            let (code, extra): (&'static str, Vec<String>) = match &e.kind {
                jsonschema::error::ValidationErrorKind::Required { property } => ("required", vec![as_text(property)]),
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    ("structure", unexpected.clone())
                }
                _ => ("value", vec![]),
            };
            let msg = describe(&e);
            let alternatives = required_alternatives(&e);
            if !alternatives.is_empty() {
                // "at least one of these is required": name each field that would satisfy it
                let paths: Vec<String> = alternatives
                    .iter()
                    .map(|a| if path.is_empty() { a.clone() } else { format!("{path}.{a}") })
                    .collect();
                issues.push(Issue::new("required", Some(paths[0].clone()), msg).with_more(paths[1..].to_vec()));
            } else if extra.is_empty() {
                issues.push(Issue::new(code, Some(path_or_root(&path)), msg));
            } else {
                for x in extra {
                    let p = if path.is_empty() { x.clone() } else { format!("{path}.{x}") };
                    issues.push(Issue::new(code, Some(p), msg.clone()));
                }
            }
            path.clear();
        }
        self.hygiene(input, &mut String::new(), 0, &mut issues);
        issues.extend(self.semantic_checks(input));
        issues
    }

    /// What FHIR's primitive types forbid but the schema lets through: control characters in any
    /// text (not representable in XHTML narratives, outside FHIR `string`), leading or trailing white
    /// space in codes and identifiers (FHIR `code`), and the year 0000 (outside FHIR `date`).
    fn hygiene(&self, v: &Value, path: &mut String, depth: usize, out: &mut Vec<Issue>) {
        if depth > 32 {
            return;
        }
        let len = path.len();
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if len > 0 {
                        path.push('.');
                    }
                    path.push_str(k);
                    self.hygiene(x, path, depth + 1, out);
                    path.truncate(len);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let _ = write!(path, "[{i}]");
                    self.hygiene(x, path, depth + 1, out);
                    path.truncate(len);
                }
            }
            Value::String(s) => {
                // the field's schema only matters for the rare texts the checks below look at
                let field = || self.labels.field(&labels::generic_path(path));
                if has_forbidden_char(s) {
                    out.push(Issue::new("value", Some(path.to_string()), "control characters are not allowed in text"));
                } else if (s.trim() != s || s.contains("  ")) && field().is_some_and(|f| f.coded) {
                    out.push(Issue::new(
                        "value",
                        Some(path.to_string()),
                        "a code or identifier must not have leading, trailing or double spaces",
                    ));
                }
                if s.starts_with("0000")
                    && field().is_some_and(|f| matches!(f.format.as_deref(), Some("date" | "date-time")))
                {
                    out.push(Issue::new("value", Some(path.to_string()), "the year 0000 does not exist"));
                }
            }
            _ => {}
        }
    }

    fn semantic_checks(&self, input: &Value) -> Vec<Issue> {
        let mut issues = Vec::new();
        let env = Env { tables: &self.tables, uuid_seed: "", now: "" };
        let root = Scope { root: input, at: None, index: None, name: None, parent: None, env: &env };
        // references: every value at a location whose schema is the named $ref must be a known key
        // the known keys of each reference rule, computed once
        let mut known: Vec<Option<HashSet<String>>> = (0..self.references.len()).map(|_| None).collect();
        for (gpath, ri) in &self.ref_paths {
            let r = &self.references[*ri];
            let known = known[*ri].get_or_insert_with(|| match eval(&r.within, &root).as_deref() {
                Some(Value::Array(a)) => a.iter().filter_map(|el| el.get(&r.key).map(as_text)).collect(),
                _ => HashSet::new(),
            });
            each_instance_at(input, gpath, &mut |path, v| {
                if let Some(s) = v.as_str() {
                    if !known.contains(s) {
                        issues.push(Issue::new(
                            "business-rule",
                            Some(path.to_string()),
                            r.message.replace("{{value}}", s),
                        ));
                    }
                }
            });
        }
        for u in &self.unique {
            let mut seen = HashSet::new();
            if let Some(Value::Array(arr)) = eval(&u.within, &root).as_deref() {
                let base = expr_path(&u.within).unwrap_or_default();
                for (i, el) in arr.iter().enumerate() {
                    if let Some(k) = el.get(&u.key) {
                        if !seen.insert(as_text(k)) {
                            issues.push(Issue::new(
                                "business-rule",
                                Some(format!("{base}[{i}].{}", u.key)),
                                u.message.replace("{{value}}", &as_text(k)),
                            ));
                        }
                    }
                }
            }
        }
        let refs = RefTable::default();
        let cx = Ctx { refs: &refs, root: &root };
        for c in &self.checks {
            let mut run = |sc: &Scope<'_>| {
                if !truthy(&eval(&c.assert, sc)) {
                    let path = render(&c.path, sc, &cx).map(Node::into_text);
                    let msg = render(&c.message, sc, &cx).map(Node::into_text).unwrap_or_default();
                    issues.push(Issue::new("business-rule", path, msg));
                }
            };
            match &c.over {
                None => run(&root),
                Some(over) => {
                    if let Some(v) = eval(over, &root) {
                        let items: Vec<&Value> = match v.as_ref() {
                            Value::Array(a) => a.iter().collect(),
                            x => vec![x],
                        };
                        for (i, el) in items.into_iter().enumerate() {
                            let sc = Scope {
                                root: input,
                                at: Some(el),
                                index: Some(i),
                                name: None,
                                parent: Some(&root),
                                env: &env,
                            };
                            run(&sc);
                        }
                    }
                }
            }
        }
        issues
    }

    /// Validate and compose, as a `Value` (the CLI, tests): [`FormDef::compose_json`] parsed.
    pub fn compose(&self, input: &Value, ctx: &ComposeContext) -> Result<Value, AppError> {
        let out = self.compose_json(input, ctx, None)?;
        serde_json::from_str(&out.json).map_err(|e| AppError::Internal(e.into()))
    }

    /// Validate and compose to the Bundle's JSON text. Nothing is stored here; the caller stores
    /// the result. `replaces`: the identifier of the Composition an amendment replaces (its
    /// `relatesTo`, archive lifecycle).
    pub fn compose_json(
        &self,
        input: &Value,
        ctx: &ComposeContext,
        replaces: Option<&Value>,
    ) -> Result<Output, AppError> {
        // Outer white space is never meaningful in a form field, and FHIR codes and identifiers
        // must not carry it: inputs are trimmed first (callers that store the input call
        // `normalize` themselves, so the stored input is the one composed).
        let trimmed;
        let input = if needs_trim(input) {
            let mut v = input.clone();
            normalize(&mut v);
            trimmed = v;
            &trimmed
        } else {
            input
        };
        let issues = self.validate(input);
        if !issues.is_empty() {
            return Err(AppError::Invalid(issues));
        }
        self.build(input, ctx, replaces)
    }

    fn build(&self, input: &Value, ctx: &ComposeContext, replaces: Option<&Value>) -> Result<Output, AppError> {
        let internal = |e: String| AppError::Internal(anyhow::anyhow!("form {}: {e}", self.form));
        let document_id = input
            .get("documentId")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .unwrap_or(ctx.document_id);
        let seed = ctx.bundle_id.to_string();
        let now = ctx.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        let env = Env { tables: &self.tables, uuid_seed: &seed, now: &now };
        let root = Scope { root: input, at: None, index: None, name: None, parent: None, env: &env };
        let uuid_for = |rule: &str, i: usize| Uuid::new_v5(&ctx.bundle_id, format!("{rule}/{i}").as_bytes());

        // Pass 1: which resources exist, and their fullUrls (references may point forward).
        let mut refs = RefTable::default();
        refs.rules.reserve(self.resources.len());
        let mut idx = Vec::new();
        for r in &self.resources {
            let mut insts = Vec::new();
            for_each_chain(&r.levels, &root, &mut idx, &mut |sc, chain| {
                let keep = r.cond.as_ref().is_none_or(|c| truthy(&eval(c, sc)));
                if keep {
                    let key = match (&r.id, sc.index) {
                        (Some(e), _) => eval(e, sc).map(|v| v.into_owned()),
                        (None, Some(i)) => Some(Value::from(i)),
                        (None, None) => None,
                    };
                    let n = insts.len();
                    insts.push(Instance {
                        key,
                        idx: chain.to_vec(),
                        full_url: format!("urn:uuid:{}", uuid_for(&r.key, n)),
                    });
                }
            });
            refs.rules.insert(r.key.as_str(), RuleRefs { levels: &r.levels, insts });
        }
        let cx = Ctx { refs: &refs, root: &root };

        // Pass 2: the resources.
        let mut entries: Vec<Node<'_>> = Vec::new();
        let mut practitioners = HashMap::new();
        if let Some(ps) = input.get("practitioners").and_then(Value::as_array) {
            for p in ps {
                if let (Some(pin), Some(name)) = (p.get("pinfl").and_then(Value::as_str), p.get("name")) {
                    let mut n = expr::person_name(name).unwrap_or_default();
                    if let Some(pos) = p.get("positionText").and_then(Value::as_str) {
                        n = format!("{n}, {pos}");
                    }
                    practitioners.insert(pin.to_string(), n);
                }
            }
        }
        for r in &self.resources {
            let rr = &refs.rules[r.key.as_str()];
            for inst in &rr.insts {
                let body = with_levels(&root, &root, &r.levels, &inst.idx, &mut |sc| render(&r.body, sc, &cx))
                    .flatten()
                    .ok_or_else(|| internal(format!("resource `{}` rendered empty", r.key)))?;
                let Node::Obj(mut body) = body else {
                    return Err(internal(format!("resource `{}` is not an object", r.key)));
                };
                let id = inst.full_url.trim_start_matches("urn:uuid:").to_string();
                let mut res: Members<'_> = Vec::with_capacity(body.len() + 3);
                // `resourceType` (and `meta` with a profile) are written first
                let resource_type = node::take(&mut body, "resourceType")
                    .ok_or_else(|| internal(format!("resource `{}` has no resourceType", r.key)))?;
                res.push(("resourceType", resource_type));
                res.push(("id", Node::Str(id)));
                if let Some(p) = &r.profile {
                    let mut meta = match node::take(&mut body, "meta") {
                        Some(Node::Obj(m)) => m,
                        _ => Vec::new(),
                    };
                    node::set(&mut meta, "profile", Node::Arr(vec![Node::Text(p)]));
                    res.push(("meta", Node::Obj(meta)));
                }
                for (k, v) in body {
                    node::set(&mut res, k, v);
                }
                if !res.iter().any(|(k, _)| *k == "text") {
                    if let Some(div) = narrative::resource_div_of(View::Members(&res)) {
                        // keep the FHIR element order: text follows meta (or id when there is no meta)
                        let after = if res.iter().any(|(k, _)| *k == "meta") { "meta" } else { "id" };
                        if let Some(at) = res.iter().position(|(k, _)| *k == after) {
                            res.insert(at + 1, ("text", generated_text(div)));
                        }
                    }
                }
                entries
                    .push(Node::Obj(vec![("fullUrl", Node::Str(inst.full_url.clone())), ("resource", Node::Obj(res))]));
            }
        }

        // The Composition.
        let lang = Lang::parse(input.get("language").and_then(Value::as_str).unwrap_or("uz"));
        let nenv = narrative::NarrativeEnv { labels: &self.labels, lang, practitioners: &practitioners };
        let mut sections = Vec::new();
        for s in &self.sections {
            render_section(s, &root, &cx, &nenv, &mut sections).map_err(internal)?;
        }
        let comp_id = Uuid::new_v5(&ctx.bundle_id, b"composition");
        let comp_url = format!("urn:uuid:{comp_id}");
        let mut comp: Members<'_> = Vec::with_capacity(16);
        comp.push(("resourceType", Node::Text("Composition")));
        comp.push(("id", Node::Str(comp_id.to_string())));
        comp.push(("meta", Node::Obj(vec![("profile", Node::Arr(vec![Node::Text(&self.profile)]))])));
        if input.get("language").is_some() {
            comp.push(("language", Node::Text(lang.code())));
        }
        let patient_name = input.get("patient").and_then(|p| p.get("name")).and_then(expr::person_name);
        let heading = self.title.get(lang).to_string();
        let summary = [
            patient_name,
            input
                .get("patient")
                .and_then(|p| p.get("pinfl"))
                .and_then(Value::as_str)
                .map(|p| format!("JShShIR/ПИНФЛ/PINFL {p}")),
            input.get("organization").and_then(|o| o.get("name")).and_then(Value::as_str).map(str::to_string),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
        comp.push(("text", generated_text(narrative::render(&heading, Some(&summary), None, &nenv))));
        let mut identifiers = vec![Node::Obj(vec![
            ("system", Node::Text(IDENTIFIER_SYSTEM)),
            ("value", Node::Str(format!("urn:uuid:{document_id}"))),
        ])];
        let mut extra = match render(&self.composition, &root, &cx) {
            Some(Node::Obj(m)) => m,
            None => Vec::new(),
            Some(_) => return Err(internal("composition template must be an object".into())),
        };
        match node::take(&mut extra, "identifier") {
            Some(Node::Arr(more)) => identifiers.extend(more),
            Some(Node::Lit(Value::Array(more))) => identifiers.extend(more.iter().map(Node::Lit)),
            Some(Node::Val(Value::Array(more))) => identifiers.extend(more.into_iter().map(Node::Val)),
            _ => {}
        }
        node::set(&mut comp, "identifier", Node::Arr(identifiers));
        node::set(&mut comp, "status", Node::Text("final"));
        let title = node::take(&mut extra, "title").unwrap_or(Node::Text(&self.title.en));
        for (k, v) in extra {
            node::set(&mut comp, k, v);
        }
        node::set(&mut comp, "title", title);
        node::set(&mut comp, "section", Node::Arr(sections));
        if let Some(ident) = replaces {
            node::set(
                &mut comp,
                "relatesTo",
                Node::Val(
                    json!([{"type": "replaces", "resourceReference": {"type": "Composition", "identifier": ident}}]),
                ),
            );
        }
        let date = comp.iter().find(|(k, _)| *k == "date").and_then(|(_, d)| d.view().as_str()).map(str::to_string);
        // FHIR `code` values an input field made invalid (checked on the built document)
        let bad = bad_codes(View::Members(&comp), &entries, input);
        if !bad.is_empty() {
            return Err(AppError::Invalid(bad));
        }
        let comp = Node::Obj(comp);
        let mut all = Vec::with_capacity(entries.len() + 1);
        all.push(Node::Obj(vec![("fullUrl", Node::Str(comp_url)), ("resource", comp)]));
        all.extend(entries);

        let mut bundle: Members<'_> = Vec::with_capacity(7);
        bundle.push(("resourceType", Node::Text("Bundle")));
        bundle.push(("id", Node::Str(ctx.bundle_id.to_string())));
        if input.get("language").is_some() {
            bundle.push(("language", Node::Text(lang.code())));
        }
        bundle.push((
            "identifier",
            Node::Obj(vec![
                ("system", Node::Text(IDENTIFIER_SYSTEM)),
                ("value", Node::Str(format!("urn:uuid:{}", ctx.bundle_id))),
            ]),
        ));
        bundle.push(("type", Node::Text("document")));
        bundle.push(("timestamp", Node::Str(now.clone())));
        bundle.push(("entry", Node::Arr(all)));
        // room for a Form 003 document at once (growing by doubling copied ~0.3 MB)
        let mut out = Vec::with_capacity(256 * 1024);
        Node::Obj(bundle).write(&mut out);
        let json = String::from_utf8(out).map_err(|e| AppError::Internal(e.into()))?;
        Ok(Output { json, date })
    }
}

/// A composed document: the Bundle's JSON text and what the store indexes of it.
#[derive(Debug)]
pub struct Output {
    pub json: String,
    /// `Composition.date`
    pub date: Option<String>,
}

fn load_section(s: &Value, at: &str, _parent: &str) -> Result<SectionRule, String> {
    let input = opt_expr(s, "input", at)?;
    let input_path = input.as_ref().and_then(expr_path).unwrap_or_default();
    let over = opt_expr(s, "for", at)?;
    let input_path = match (&over, input.is_none()) {
        (Some(o), true) => format!("{}[]", expr_path(o).unwrap_or_default()),
        _ => input_path,
    };
    let mut title = HashMap::new();
    for (k, v) in req(s, "title")?.as_object().ok_or(format!("{at}.title must be an object"))? {
        title.insert(k.clone(), compile(v, &format!("{at}.title.{k}"))?);
    }
    let mut subs = Vec::new();
    for (i, sub) in s.get("sections").and_then(Value::as_array).into_iter().flatten().enumerate() {
        subs.push(load_section(sub, &format!("{at}.sections[{i}]"), &input_path)?);
    }
    let text = opt_expr(s, "text", at)?;
    let mut skip = Vec::new();
    for (i, sub) in s.get("sections").and_then(Value::as_array).into_iter().flatten().enumerate() {
        for k in ["input", "text"] {
            if let Some(p) = opt_expr(sub, k, &format!("{at}.sections[{i}]"))?.as_ref().and_then(expr_path) {
                if let Some(rest) = p.strip_prefix(&input_path).and_then(|r| r.strip_prefix('.')) {
                    if !input_path.is_empty() {
                        skip.push(rest.split(['.', '[']).next().unwrap_or(rest).to_string());
                    }
                }
            }
        }
    }
    Ok(SectionRule {
        skip,
        input,
        input_path,
        cond: opt_expr(s, "if", at)?,
        over,
        title,
        code: compile(req(s, "code")?, &format!("{at}.code"))?,
        text,
        author: s.get("author").map(|a| compile(a, &format!("{at}.author"))).transpose()?,
        entry: s.get("entry").map(|a| compile(a, &format!("{at}.entry"))).transpose()?,
        sections: subs,
    })
}

fn render_section<'d>(
    s: &'d SectionRule,
    sc: &Scope<'_>,
    cx: &Ctx<'_>,
    nenv: &narrative::NarrativeEnv<'_>,
    out: &mut Vec<Node<'d>>,
) -> Result<(), String> {
    if let Some(over) = &s.over {
        let Some(v) = eval(over, sc) else {
            return Ok(());
        };
        let items: &[Value] = match v.as_ref() {
            Value::Array(a) => a,
            x => std::slice::from_ref(x),
        };
        let path = s.input_path.trim_end_matches("[]");
        let mut concrete = String::with_capacity(path.len() + 8);
        for (i, el) in items.iter().enumerate() {
            let child =
                Scope { root: sc.root, at: Some(el), index: Some(i), name: None, parent: Some(sc), env: sc.env };
            concrete.clear();
            let _ = write!(concrete, "{path}[{i}]");
            one_section(s, &child, cx, nenv, out, Some(el), &concrete)?;
        }
        return Ok(());
    }
    let input = s.input.as_ref().and_then(|e| eval(e, sc));
    let show = match &s.cond {
        Some(c) => truthy(&eval(c, sc)),
        None => s.input.is_none() || input.is_some(),
    };
    if !show {
        return Ok(());
    }
    one_section(s, sc, cx, nenv, out, input.as_deref(), &s.input_path)
}

fn one_section<'d>(
    s: &'d SectionRule,
    sc: &Scope<'_>,
    cx: &Ctx<'_>,
    nenv: &narrative::NarrativeEnv<'_>,
    out: &mut Vec<Node<'d>>,
    input: Option<&Value>,
    input_path: &str,
) -> Result<(), String> {
    let title_of = |lang: &str| s.title.get(lang).and_then(|t| render(t, sc, cx)).map(Node::into_text);
    let title_en = title_of("en").ok_or("section without an English title")?;
    let heading = title_of(nenv.lang.code()).unwrap_or_else(|| title_en.clone());
    let text = s.text.as_ref().and_then(|e| eval(e, sc)).map(|v| as_text(&v));
    // A section with its own text shows the text; otherwise the generated table of its input.
    // Sub-sections show their own parts, so the parent table leaves out what they show.
    let table_input = if text.is_some() { None } else { input };
    let div = narrative::render_without(&heading, text.as_deref(), table_input.map(|v| (v, input_path)), &s.skip, nenv);
    let mut sec: Members<'d> = Vec::with_capacity(6);
    sec.push(("title", Node::Str(title_en)));
    sec.push(("code", render(&s.code, sc, cx).ok_or("section code rendered empty")?));
    if let Some(a) = s.author.as_ref().and_then(|a| render(a, sc, cx)) {
        sec.push(("author", a));
    }
    sec.push(("text", generated_text(div)));
    if let Some(e) = s.entry.as_ref().and_then(|e| render(e, sc, cx)) {
        sec.push(("entry", e));
    }
    let mut subs = Vec::new();
    for sub in &s.sections {
        render_section(sub, sc, cx, nenv, &mut subs)?;
    }
    if !subs.is_empty() {
        sec.push(("section", Node::Arr(subs)));
    }
    out.push(Node::Obj(sec));
    Ok(())
}

/// Every instance location matching a generic path (`a.b[].c`), with its concrete expression.
pub fn instances_at<'a>(root: &'a Value, generic: &str) -> Vec<(String, &'a Value)> {
    let mut cur: Vec<(String, &Value)> = vec![(String::new(), root)];
    for seg in generic.split('.') {
        let (name, arrays) = match seg.find("[]") {
            Some(i) => (&seg[..i], seg[i..].matches("[]").count()),
            None => (seg, 0),
        };
        let mut next = Vec::new();
        for (p, v) in cur {
            if let Some(c) = v.get(name) {
                let base = if p.is_empty() { name.to_string() } else { format!("{p}.{name}") };
                let mut level = vec![(base, c)];
                for _ in 0..arrays {
                    let mut l2 = Vec::new();
                    for (bp, bv) in level {
                        if let Some(a) = bv.as_array() {
                            for (i, x) in a.iter().enumerate() {
                                l2.push((format!("{bp}[{i}]"), x));
                            }
                        }
                    }
                    level = l2;
                }
                next.extend(level);
            }
        }
        cur = next;
    }
    cur
}

fn path_or_root(p: &str) -> String {
    if p.is_empty() {
        "$".to_string()
    } else {
        p.to_string()
    }
}

/// JSON Pointer location → `a.b[0].c`
fn pointer_to_expression(loc: &jsonschema::paths::Location) -> String {
    let mut out = String::new();
    for seg in loc {
        match seg {
            jsonschema::paths::LocationSegment::Property(p) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&p);
            }
            jsonschema::paths::LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The properties of an `anyOf`/`oneOf` whose every branch only failed a `required`.
fn required_alternatives(e: &jsonschema::ValidationError<'_>) -> Vec<String> {
    use jsonschema::error::ValidationErrorKind as K;
    let (K::AnyOf { context } | K::OneOfNotValid { context }) = &e.kind else { return vec![] };
    let mut names = Vec::new();
    for branch in context {
        if branch.is_empty() {
            return vec![];
        }
        for b in branch {
            match &b.kind {
                K::Required { property } => {
                    let n = as_text(property);
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                _ => return vec![],
            }
        }
    }
    names
}

fn describe(e: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match &e.kind {
        K::Required { property } => format!("`{}` is required", as_text(property)),
        K::AdditionalProperties { .. } => "this property is not part of the form".to_string(),
        K::Format { format } => format!("{} is not a valid {format}", short(&e.instance)),
        K::AnyOf { context } | K::OneOfNotValid { context } => {
            // `anyOf` of `required` alternatives (e.g. a patient identifier): name them
            let mut names = Vec::new();
            let all_required = context.iter().all(|branch| {
                !branch.is_empty()
                    && branch.iter().all(|b| match &b.kind {
                        K::Required { property } => {
                            names.push(format!("`{}`", as_text(property)));
                            true
                        }
                        _ => false,
                    })
            });
            if all_required && !names.is_empty() {
                names.dedup();
                format!("at least one of {} is required", names.join(", "))
            } else {
                let s = e.to_string();
                s.chars().take(300).collect()
            }
        }
        _ => {
            let s = e.to_string();
            if s.len() > 300 {
                format!("{}…", s.chars().take(300).collect::<String>())
            } else {
                s
            }
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// A control character other than tab, line feed and carriage return (`char::is_control`: U+0000–
/// U+001F, U+007F–U+009F), or U+FFFE / U+FFFF — found in the UTF-8 bytes.
fn has_forbidden_char(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\t' | b'\n' | b'\r' => {}
            0x00..=0x1F | 0x7F => return true,
            // U+0080–U+009F
            0xC2 if matches!(b.get(i + 1), Some(0x80..=0x9F)) => return true,
            // U+FFFE, U+FFFF
            0xEF if b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)) => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// `{"status": "generated", "div": div}`
fn generated_text<'d>(div: String) -> Node<'d> {
    Node::Obj(vec![("status", Node::Text("generated")), ("div", Node::Str(div))])
}

/// [`instances_at`] without building a path for every instance: `f` gets each location's
/// expression and value, in the same order.
fn each_instance_at<'a>(root: &'a Value, generic: &str, f: &mut dyn FnMut(&str, &'a Value)) {
    let segs: Vec<(&str, usize)> = generic
        .split('.')
        .map(|seg| match seg.find("[]") {
            Some(i) => (&seg[..i], seg[i..].matches("[]").count()),
            None => (seg, 0),
        })
        .collect();
    fn go<'a>(v: &'a Value, segs: &[(&str, usize)], path: &mut String, f: &mut dyn FnMut(&str, &'a Value)) {
        let Some(((name, arrays), rest)) = segs.split_first() else {
            f(path, v);
            return;
        };
        let Some(c) = v.get(*name) else { return };
        let len = path.len();
        if len > 0 {
            path.push('.');
        }
        path.push_str(name);
        items(c, *arrays, rest, path, f);
        path.truncate(len);
    }
    fn items<'a>(
        v: &'a Value,
        arrays: usize,
        rest: &[(&str, usize)],
        path: &mut String,
        f: &mut dyn FnMut(&str, &'a Value),
    ) {
        if arrays == 0 {
            return go(v, rest, path, f);
        }
        if let Some(a) = v.as_array() {
            let len = path.len();
            for (i, x) in a.iter().enumerate() {
                let _ = write!(path, "[{i}]");
                items(x, arrays - 1, rest, path, f);
                path.truncate(len);
            }
        }
    }
    go(root, &segs, &mut String::new(), f);
}

fn needs_trim(v: &Value) -> bool {
    match v {
        Value::String(s) => s.trim() != s,
        Value::Array(a) => a.iter().any(needs_trim),
        Value::Object(o) => o.values().any(needs_trim),
        _ => false,
    }
}

/// Trim the outer white space of every string of a form input.
pub fn normalize(v: &mut Value) {
    match v {
        Value::String(s) if s.trim() != s => *s = s.trim().to_string(),
        Value::Array(a) => a.iter_mut().for_each(normalize),
        Value::Object(o) => o.values_mut().for_each(normalize),
        _ => {}
    }
}

/// Text that is no FHIR `code` (`^[^\s]+( [^\s]+)*$`): empty, a leading, trailing or doubled
/// space, or other white space. One pass: every string of every input is looked at.
fn bad_code_text(s: &str) -> bool {
    let mut after_space = true; // the start counts as a space: a leading one is bad
    for c in s.chars() {
        if c == ' ' {
            if after_space {
                return true;
            }
            after_space = true;
        } else if c.is_whitespace() {
            return true;
        } else {
            after_space = false;
        }
    }
    after_space // empty, or a trailing space
}

/// FHIR `code` values (`^[^\s]+( [^\s]+)*$`) in the composed Bundle (its Composition `comp`
/// and the other `entries`) that an input field put there with inner runs of white space:
/// reported at every input field holding that text.
fn bad_codes(comp: View<'_, '_>, entries: &[Node<'_>], input: &Value) -> Vec<Issue> {
    fn any_bad(v: &Value) -> bool {
        match v {
            Value::Object(o) => o.values().any(any_bad),
            Value::Array(a) => a.iter().any(any_bad),
            Value::String(s) => bad_code_text(s),
            _ => false,
        }
    }
    fn walk<'a>(v: View<'a, '_>, key: &str, out: &mut Vec<&'a str>) {
        if let Some(members) = v.members() {
            members.for_each(|(k, x)| walk(x, k, out));
        } else if let Some(items) = v.items() {
            items.for_each(|x| walk(x, key, out));
        } else if let Some(s) = v.as_str().filter(|s| key == "code" && bad_code_text(s)) {
            out.push(s);
        }
    }
    // An issue names an input field whose text equals a bad code, so that text is bad too: when no
    // input text is, there is nothing to find in the Bundle.
    if !any_bad(input) {
        return Vec::new();
    }
    fn find(v: &Value, want: &str, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                find(x, want, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") }, out)
            }),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| find(x, want, &format!("{path}[{i}]"), out)),
            Value::String(s) if s == want => out.push(path.to_string()),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    walk(comp, "", &mut bad);
    entries.iter().for_each(|e| walk(e.view(), "", &mut bad));
    let mut issues = Vec::new();
    for b in bad {
        let mut paths = Vec::new();
        find(input, b, "", &mut paths);
        for p in paths {
            let i = Issue::new(
                "value",
                Some(p),
                "this field becomes a FHIR code, which must not contain runs of white space",
            );
            if !issues.contains(&i) {
                issues.push(i);
            }
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def_with(resources: Value, composition: Value) -> Result<FormDef, String> {
        let schema = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"});
        let def = json!({"form": "x", "title": {"en": "X"}, "compositionProfile": "p", "resources": resources,
            "composition": composition, "sections": []});
        FormDef::load("x", schema, &def)
    }

    #[test]
    fn a_reference_to_an_unknown_rule_is_a_load_error() {
        let r = json!([{"key": "organization", "resource": {"resourceType": "Organization"}}]);
        assert!(def_with(r.clone(), json!({"custodian": {"$ref": "organization"}})).is_ok());
        let err = def_with(r, json!({"custodian": {"$ref": "organisation"}})).err().unwrap();
        assert!(err.contains("organisation"), "{err}");
    }

    #[test]
    fn bad_code_text_is_the_fhir_code_pattern_negated() {
        let code = regex::Regex::new(r"^[^\s]+( [^\s]+)*$").unwrap();
        let alphabet = [" ", "a", "\t", "\u{a0}", "\u{3000}", "é", "\n", "1"];
        let mut all = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> =
                all.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            all.extend(longer);
        }
        all.sort();
        all.dedup();
        for s in &all {
            assert_eq!(bad_code_text(s), !code.is_match(s), "{s:?}");
        }
    }

    #[test]
    fn builtin_definitions_load() {
        let c = Composer::builtin().unwrap();
        assert!(c.get("003").is_some() && c.get("form-096").is_some() && c.get("004").is_none());
    }
}
