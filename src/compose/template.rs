//! Templates: JSON that looks like the FHIR it produces, with `{{ expr }}` and `$` directives.
//! Compiled once from the definition file; evaluated per document (see `forms/README.md`).

use super::expr::{self, eval, push_text, text_eq, truthy, Expr, Scope};
use super::node::{self, Node};
use super::FxHashMap;
use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Tpl {
    Lit(Value),
    Expr(Expr),
    Interp(Vec<Part>),
    Object { cond: Option<Expr>, members: Vec<(String, Tpl)> },
    Array(Vec<Item>),
    Ref { rule: String, key: Option<Expr>, extra: Vec<(String, Tpl)> },
}

#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub enum Item {
    One(Tpl),
    For { over: Expr, name: Option<String>, body: Tpl },
    Refs { rule: String, filter: Option<Expr> },
}

/// Where references point: rule → instances (key value, element, uuid).
#[derive(Default)]
pub struct RefTable<'d> {
    pub rules: FxHashMap<&'d str, RuleRefs<'d>>,
}

/// The instances of one resource rule and the `for` levels that produced them.
pub struct RuleRefs<'d> {
    pub levels: &'d [expr::Level],
    pub insts: Vec<Instance>,
}

pub struct Instance {
    pub key: Option<Value>,
    /// the indices of its elements in the rule's `for` levels (empty for a single resource)
    pub idx: Vec<usize>,
    pub full_url: String,
}

pub struct Ctx<'a> {
    pub refs: &'a RefTable<'a>,
    /// the scope the rules' `for` levels are evaluated in (the input root)
    pub root: &'a Scope<'a>,
}

pub fn compile(v: &Value, at: &str) -> Result<Tpl, String> {
    match v {
        Value::String(s) => compile_string(s).map_err(|e| format!("{at}: {e}")),
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                let here = format!("{at}[{i}]");
                if let Some(o) = it.as_object() {
                    if let Some(over) = o.get("$for") {
                        let over = parse_expr_str(over, &here)?;
                        let name = o.get("as").and_then(Value::as_str).map(str::to_string);
                        let body = o.get("do").ok_or_else(|| format!("{here}: $for without do"))?;
                        out.push(Item::For { over, name, body: compile(body, &format!("{here}.do"))? });
                        continue;
                    }
                    if let Some(rule) = o.get("$refs") {
                        let rule = rule.as_str().ok_or_else(|| format!("{here}: $refs needs a rule name"))?;
                        let filter = o.get("where").map(|w| parse_expr_str(w, &here)).transpose()?;
                        out.push(Item::Refs { rule: rule.to_string(), filter });
                        continue;
                    }
                }
                out.push(Item::One(compile(it, &here)?));
            }
            Ok(Tpl::Array(out))
        }
        Value::Object(o) => {
            if let Some(rule) = o.get("$ref") {
                let rule = rule.as_str().ok_or_else(|| format!("{at}: $ref needs a rule name"))?.to_string();
                let key = o.get("key").map(|k| parse_expr_str(k, at)).transpose()?;
                let mut extra = Vec::new();
                for (k, v) in o {
                    if k != "$ref" && k != "key" {
                        extra.push((k.clone(), compile(v, &format!("{at}.{k}"))?));
                    }
                }
                return Ok(Tpl::Ref { rule, key, extra });
            }
            if let Some(e) = o.get("$value") {
                return Ok(Tpl::Expr(parse_expr_str(e, at)?));
            }
            let mut cond = None;
            let mut members = Vec::new();
            for (k, v) in o {
                if k == "$if" {
                    cond = Some(parse_expr_str(v, at)?);
                } else if k.starts_with('$') {
                    return Err(format!("{at}: unknown directive `{k}`"));
                } else if k.starts_with("_comment") {
                    continue;
                } else {
                    members.push((k.clone(), compile(v, &format!("{at}.{k}"))?));
                }
            }
            Ok(Tpl::Object { cond, members })
        }
        other => Ok(Tpl::Lit(other.clone())),
    }
}

fn parse_expr_str(v: &Value, at: &str) -> Result<Expr, String> {
    let s = v.as_str().ok_or_else(|| format!("{at}: expression must be a string"))?;
    let s = s.trim();
    let s = s.strip_prefix("{{").and_then(|x| x.strip_suffix("}}")).unwrap_or(s);
    expr::parse(s).map_err(|e| format!("{at}: {e}"))
}

fn compile_string(s: &str) -> Result<Tpl, String> {
    if !s.contains("{{") {
        return Ok(Tpl::Lit(Value::String(s.to_string())));
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unterminated {{{{ in `{s}`"))?;
        parts.push(Part::Expr(expr::parse(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    if parts.len() == 1 {
        if let Part::Expr(e) = &parts[0] {
            return Ok(Tpl::Expr(e.clone()));
        }
    }
    Ok(Tpl::Interp(parts))
}

/// Evaluate a template; `None` is absent.
pub fn render<'d>(t: &'d Tpl, sc: &Scope<'_>, cx: &Ctx<'_>) -> Option<Node<'d>> {
    match t {
        Tpl::Lit(v) => Some(Node::Lit(v)),
        Tpl::Expr(e) => eval(e, sc).map(|c| Node::Val(c.into_owned())),
        Tpl::Interp(parts) => {
            let mut s = String::new();
            for p in parts {
                match p {
                    Part::Text(t) => s.push_str(t),
                    Part::Expr(e) => push_text(&mut s, &*eval(e, sc)?),
                }
            }
            Some(Node::Str(s))
        }
        Tpl::Object { cond, members } => {
            if let Some(c) = cond {
                if !truthy(&eval(c, sc)) {
                    return None;
                }
            }
            // the names of a template object are unique (members of one JSON object)
            let mut m = Vec::with_capacity(members.len());
            for (k, v) in members {
                if let Some(x) = render(v, sc, cx) {
                    m.push((k.as_str(), x));
                }
            }
            if m.is_empty() {
                None
            } else {
                Some(Node::Obj(m))
            }
        }
        Tpl::Array(items) => {
            let mut out = Vec::new();
            for it in items {
                render_item(it, sc, cx, &mut out);
            }
            if out.is_empty() {
                None
            } else {
                Some(Node::Arr(out))
            }
        }
        Tpl::Ref { rule, key, extra } => {
            let url = resolve(cx.refs, rule, key.as_ref().map(|k| eval(k, sc)))?;
            let mut m = Vec::with_capacity(extra.len() + 1);
            m.push(("reference", Node::Str(url)));
            for (k, v) in extra {
                if let Some(x) = render(v, sc, cx) {
                    node::set(&mut m, k, x);
                }
            }
            Some(Node::Obj(m))
        }
    }
}

fn resolve(refs: &RefTable<'_>, rule: &str, key: Option<expr::Val<'_>>) -> Option<String> {
    let insts = &refs.rules.get(rule)?.insts;
    match key {
        None => insts.first().map(|i| i.full_url.clone()),
        Some(None) => None,
        Some(Some(k)) => insts
            .iter()
            .find(|i| i.key.as_ref().is_some_and(|ik| ik == k.as_ref() || text_eq(ik, &k)))
            .map(|i| i.full_url.clone()),
    }
}

pub fn render_item<'d>(it: &'d Item, sc: &Scope<'_>, cx: &Ctx<'_>, out: &mut Vec<Node<'d>>) {
    match it {
        Item::One(t) => {
            if let Some(v) = render(t, sc, cx) {
                out.push(v);
            }
        }
        Item::For { over, name, body } => {
            let Some(arr) = eval(over, sc) else { return };
            let elems: &[Value] = match arr.as_ref() {
                Value::Array(a) => a,
                v => std::slice::from_ref(v),
            };
            for (i, el) in elems.iter().enumerate() {
                let child = Scope {
                    root: sc.root,
                    at: Some(el),
                    index: Some(i),
                    name: name.as_deref(),
                    parent: Some(sc),
                    env: sc.env,
                };
                if let Some(v) = render(body, &child, cx) {
                    out.push(v);
                }
            }
        }
        Item::Refs { rule, filter } => {
            let Some(rr) = cx.refs.rules.get(rule.as_str()) else {
                return;
            };
            for inst in &rr.insts {
                if let Some(f) = filter {
                    let keep = expr::with_levels(cx.root, sc, rr.levels, &inst.idx, &mut |c| truthy(&eval(f, c)));
                    if keep != Some(true) {
                        continue;
                    }
                }
                out.push(Node::Obj(vec![("reference", Node::Str(inst.full_url.clone()))]));
            }
        }
    }
}

/// Every rule name a template references with `$ref` / `$refs` (checked when a definition loads).
pub fn referenced_rules(t: &Tpl, out: &mut Vec<String>) {
    match t {
        Tpl::Lit(_) | Tpl::Expr(_) | Tpl::Interp(_) => {}
        Tpl::Object { members, .. } => members.iter().for_each(|(_, v)| referenced_rules(v, out)),
        Tpl::Ref { rule, extra, .. } => {
            out.push(rule.clone());
            extra.iter().for_each(|(_, v)| referenced_rules(v, out));
        }
        Tpl::Array(items) => {
            for it in items {
                match it {
                    Item::One(t) | Item::For { body: t, .. } => referenced_rules(t, out),
                    Item::Refs { rule, .. } => out.push(rule.clone()),
                }
            }
        }
    }
}
