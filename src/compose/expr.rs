//! The small expression language of form definitions (see `forms/README.md`).
//!
//! Expressions are parsed once when a definition is loaded and evaluated many times. A value is
//! `Option<Cow<Value>>`: `None` is *absent* (a missing input field), which propagates through
//! templates so optional fields need no conditions. JSON `null` counts as absent too.

use chrono::DateTime;
use serde_json::{Map, Value};
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Root,
    At,
    Index,
    Var(String),
    Lit(Value),
    Field(Box<Expr>, String),
    Item(Box<Expr>, usize),
    /// `a[expr]`: an index computed at run time
    DynItem(Box<Expr>, Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
    Sub(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Box<Expr>, CmpOp, Box<Expr>),
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

pub type Val<'a> = Option<Cow<'a, Value>>;

/// The evaluation scope: the input root, the current `for` element and its index, variables.
pub struct Scope<'s> {
    pub root: &'s Value,
    pub at: Option<&'s Value>,
    pub index: Option<usize>,
    pub name: Option<&'s str>,
    pub parent: Option<&'s Scope<'s>>,
    pub env: &'s Env<'s>,
}

/// What the functions need from the definition and the document being composed.
pub struct Env<'a> {
    pub tables: &'a Map<String, Value>,
    pub uuid_seed: &'a str,
    /// the composition time (`now()`), RFC 3339
    pub now: &'a str,
}

impl<'s> Scope<'s> {
    pub fn child(&'s self, at: &'s Value, index: usize, name: Option<&'s str>) -> Scope<'s> {
        Scope { root: self.root, at: Some(at), index: Some(index), name, parent: Some(self), env: self.env }
    }

    fn var(&self, name: &str) -> Option<&'s Value> {
        let mut s = Some(self);
        while let Some(sc) = s {
            if sc.name == Some(name) {
                return sc.at;
            }
            s = sc.parent;
        }
        None
    }
}

/// One level of a (possibly nested) `for`: what it iterates over and the name bound with `as`.
pub type Level = (Expr, Option<String>);

/// The element a `for` level binds at index `i` of the value it iterates over (a present
/// non-array value is the one element, index 0).
pub fn element_at(v: &Value, i: usize) -> Option<&Value> {
    match v {
        Value::Array(a) => a.get(i),
        x => (i == 0).then_some(x),
    }
}

/// Run `f` in the scope of the elements `idx` (outermost first) of nested `for` levels.
///
/// The elements are found again by evaluating each level's expression in the scope `from` (the
/// scope the levels were enumerated in) extended by the outer levels, which gives the same values
/// as when they were enumerated: evaluation is deterministic. `f` runs in `base` extended by the
/// levels' bindings. `None` when an element is no longer there (cannot happen for indices the
/// enumeration produced).
pub fn with_levels<R>(
    from: &Scope<'_>,
    base: &Scope<'_>,
    levels: &[Level],
    idx: &[usize],
    f: &mut dyn FnMut(&Scope<'_>) -> R,
) -> Option<R> {
    match (levels.split_first(), idx.split_first()) {
        (Some(((over, name), rest)), Some((i, irest))) => {
            let v = eval(over, from)?;
            let el = element_at(&v, *i)?;
            let name = name.as_deref();
            let from_child =
                Scope { root: from.root, at: Some(el), index: Some(*i), name, parent: Some(from), env: from.env };
            let base_child =
                Scope { root: base.root, at: Some(el), index: Some(*i), name, parent: Some(base), env: base.env };
            with_levels(&from_child, &base_child, rest, irest, f)
        }
        _ => Some(f(base)),
    }
}

/// Call `f` for every combination of elements of nested `for` levels (one call with no index when
/// there are no levels), in the scope of those elements, with their indices (outermost first).
pub fn for_each_chain(levels: &[Level], sc: &Scope<'_>, idx: &mut Vec<usize>, f: &mut dyn FnMut(&Scope<'_>, &[usize])) {
    let Some(((over, name), rest)) = levels.split_first() else {
        f(sc, idx);
        return;
    };
    let Some(v) = eval(over, sc) else { return };
    let items: &[Value] = match v.as_ref() {
        Value::Array(a) => a,
        x => std::slice::from_ref(x),
    };
    for (i, el) in items.iter().enumerate() {
        let child =
            Scope { root: sc.root, at: Some(el), index: Some(i), name: name.as_deref(), parent: Some(sc), env: sc.env };
        idx.push(i);
        for_each_chain(rest, &child, idx, f);
        idx.pop();
    }
}

// ------------------------------------------------------------------------------------------------
// Parsing

pub fn parse(src: &str) -> Result<Expr, String> {
    let toks = lex(src)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected `{}` in expression `{src}`", p.toks[p.pos].text()));
    }
    Ok(e)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64, String),
    Sym(&'static str),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Ident(s) | Tok::Str(s) => s.clone(),
            Tok::Num(_, s) => s.clone(),
            Tok::Sym(s) => s.to_string(),
        }
    }
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    const SYMS: [&str; 19] =
        ["==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ".", ",", "$", "@", "+", "-"];
    'outer: while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err(format!("unterminated string in `{src}`")),
                    Some('\\') => {
                        if let Some(n) = cs.get(i + 1) {
                            s.push(*n);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
            continue;
        }
        // `-` starts a negative number only where an operand is expected (not in `@index-1`)
        let operand_expected = match out.last() {
            None => true,
            Some(Tok::Sym(s)) => !matches!(*s, ")" | "]" | "$" | "@"),
            Some(_) => false,
        };
        if c.is_ascii_digit() || (c == '-' && operand_expected && cs.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            i += 1;
            while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.') {
                i += 1;
            }
            let t: String = cs[start..i].iter().collect();
            let n: f64 = t.parse().map_err(|_| format!("bad number `{t}` in `{src}`"))?;
            out.push(Tok::Num(n, t));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(cs[start..i].iter().collect()));
            continue;
        }
        for s in SYMS {
            let sc: Vec<char> = s.chars().collect();
            if cs[i..].starts_with(&sc) {
                out.push(Tok::Sym(s));
                i += sc.len();
                continue 'outer;
            }
        }
        return Err(format!("unexpected character `{c}` in `{src}`"));
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, s: &str) -> Result<(), String> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(format!("expected `{s}`, found {:?}", self.peek().map(|t| t.text())))
        }
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.eat("||") {
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.cmp()?;
        while self.eat("&&") {
            l = Expr::And(Box::new(l), Box::new(self.cmp()?));
        }
        Ok(l)
    }
    fn cmp(&mut self) -> Result<Expr, String> {
        let l = self.additive()?;
        let op = match self.peek() {
            Some(Tok::Sym("==")) => CmpOp::Eq,
            Some(Tok::Sym("!=")) => CmpOp::Ne,
            Some(Tok::Sym("<")) => CmpOp::Lt,
            Some(Tok::Sym("<=")) => CmpOp::Le,
            Some(Tok::Sym(">")) => CmpOp::Gt,
            Some(Tok::Sym(">=")) => CmpOp::Ge,
            _ => return Ok(l),
        };
        self.pos += 1;
        let r = self.additive()?;
        Ok(Expr::Cmp(Box::new(l), op, Box::new(r)))
    }
    fn additive(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        loop {
            if self.eat("+") {
                l = Expr::Add(Box::new(l), Box::new(self.unary()?));
            } else if self.eat("-") {
                l = Expr::Sub(Box::new(l), Box::new(self.unary()?));
            } else {
                return Ok(l);
            }
        }
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.postfix()
    }
    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                match self.toks.get(self.pos).cloned() {
                    Some(Tok::Ident(name)) => {
                        self.pos += 1;
                        e = Expr::Field(Box::new(e), name);
                    }
                    other => return Err(format!("expected a field name after `.`, found {other:?}")),
                }
            } else if self.eat("[") {
                match (self.toks.get(self.pos).cloned(), self.toks.get(self.pos + 1)) {
                    (Some(Tok::Num(n, _)), Some(Tok::Sym("]"))) if n >= 0.0 && n.fract() == 0.0 => {
                        self.pos += 2;
                        e = Expr::Item(Box::new(e), n as usize);
                    }
                    _ => {
                        let idx = self.or()?;
                        self.expect("]")?;
                        e = Expr::DynItem(Box::new(e), Box::new(idx));
                    }
                }
            } else {
                return Ok(e);
            }
        }
    }
    fn primary(&mut self) -> Result<Expr, String> {
        let t = self.toks.get(self.pos).cloned().ok_or("unexpected end of expression")?;
        self.pos += 1;
        match t {
            Tok::Sym("$") => Ok(Expr::Root),
            Tok::Sym("@") => {
                if let Some(Tok::Ident(i)) = self.peek() {
                    if i == "index" {
                        self.pos += 1;
                        return Ok(Expr::Index);
                    }
                }
                Ok(Expr::At)
            }
            Tok::Sym("(") => {
                let e = self.or()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Str(s) => Ok(Expr::Lit(Value::String(s))),
            Tok::Num(_, t) => Ok(Expr::Lit(serde_json::from_str(&t).map_err(|e| e.to_string())?)),
            Tok::Ident(id) => {
                if self.eat("(") {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    check_function(&id, args.len())?;
                    return Ok(Expr::Call(id, args));
                }
                match id.as_str() {
                    "true" => Ok(Expr::Lit(Value::Bool(true))),
                    "false" => Ok(Expr::Lit(Value::Bool(false))),
                    "null" => Ok(Expr::Lit(Value::Null)),
                    _ => Ok(Expr::Var(id)),
                }
            }
            Tok::Sym(s) => Err(format!("unexpected `{s}`")),
        }
    }
}

fn check_function(name: &str, n: usize) -> Result<(), String> {
    let ok = match name {
        "coalesce" | "concat" => n >= 1,
        "now" => n == 0,
        "countWhere" => n == 3,
        "joinNonEmpty" => n >= 2,
        "in" => n >= 2,
        "lookup" | "join" | "minutesBetween" => n == 2,
        "find" => n == 3,
        "name" | "exists" | "count" | "date" | "string" | "number" | "instant" | "uuid" | "year" | "idx" => n == 1,
        "substr" => n == 2 || n == 3,
        _ => return Err(format!("unknown function `{name}`")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("wrong number of arguments ({n}) for `{name}`"))
    }
}

// ------------------------------------------------------------------------------------------------
// Evaluation

fn present(v: Option<Cow<'_, Value>>) -> Option<Cow<'_, Value>> {
    match v {
        Some(c) if c.is_null() => None,
        x => x,
    }
}

pub fn truthy(v: &Val<'_>) -> bool {
    match v.as_deref() {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Append [`as_text`] of `v` to `out`.
pub fn push_text(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        other => {
            use std::fmt::Write as _;
            let _ = write!(out, "{other}");
        }
    }
}

/// `as_text(a) == as_text(b)` without building the texts when both are strings.
pub fn text_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::String(x), y) | (y, Value::String(x)) => {
            let y = y.to_string();
            *x == y
        }
        (x, y) => {
            let (x, y) = (x.to_string(), y.to_string());
            x == y
        }
    }
}

pub fn eval<'s>(e: &'s Expr, sc: &Scope<'s>) -> Val<'s> {
    match e {
        Expr::Root => Some(Cow::Borrowed(sc.root)),
        Expr::At => sc.at.map(Cow::Borrowed),
        Expr::Index => sc.index.map(|i| Cow::Owned(Value::from(i))),
        Expr::Var(n) => sc.var(n).map(Cow::Borrowed),
        Expr::Lit(v) => present(Some(Cow::Borrowed(v))),
        Expr::Field(b, name) => match eval(b, sc)? {
            Cow::Borrowed(v) => present(v.get(name).map(Cow::Borrowed)),
            Cow::Owned(v) => present(v.get(name).cloned().map(Cow::Owned)),
        },
        Expr::Item(b, i) => match eval(b, sc)? {
            Cow::Borrowed(v) => present(v.get(*i).map(Cow::Borrowed)),
            Cow::Owned(v) => present(v.get(*i).cloned().map(Cow::Owned)),
        },
        Expr::DynItem(b, i) => {
            let i = eval(i, sc)?.as_u64()? as usize;
            match eval(b, sc)? {
                Cow::Borrowed(v) => present(v.get(i).map(Cow::Borrowed)),
                Cow::Owned(v) => present(v.get(i).cloned().map(Cow::Owned)),
            }
        }
        Expr::Add(a, b) | Expr::Sub(a, b) => {
            let (x, y) = (eval(a, sc)?, eval(b, sc)?);
            let neg = matches!(e, Expr::Sub(..));
            match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) => Some(Cow::Owned(Value::from(if neg { x - y } else { x + y }))),
                _ => {
                    let (x, y) = (x.as_f64()?, y.as_f64()?);
                    serde_json::Number::from_f64(if neg { x - y } else { x + y }).map(|n| Cow::Owned(Value::Number(n)))
                }
            }
        }
        Expr::Not(b) => Some(Cow::Owned(Value::Bool(!truthy(&eval(b, sc))))),
        Expr::And(a, b) => Some(Cow::Owned(Value::Bool(truthy(&eval(a, sc)) && truthy(&eval(b, sc))))),
        Expr::Or(a, b) => Some(Cow::Owned(Value::Bool(truthy(&eval(a, sc)) || truthy(&eval(b, sc))))),
        Expr::Cmp(a, op, b) => {
            let (x, y) = (eval(a, sc), eval(b, sc));
            let r = match (x.as_deref(), y.as_deref()) {
                (Some(x), Some(y)) => compare(x, *op, y),
                // absent differs from any present value; every other comparison with absent is false
                (None, Some(_)) | (Some(_), None) => *op == CmpOp::Ne,
                (None, None) => false,
            };
            Some(Cow::Owned(Value::Bool(r)))
        }
        Expr::Call(f, args) => call(f, args, sc),
    }
}

fn compare(x: &Value, op: CmpOp, y: &Value) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (x, y) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        CmpOp::Eq => x == y || ord == Some(Ordering::Equal),
        CmpOp::Ne => !(x == y || ord == Some(Ordering::Equal)),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
    }
}

fn owned<'s>(v: Value) -> Val<'s> {
    Some(Cow::Owned(v))
}

pub fn person_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => {
            let parts: Vec<&str> = ["family", "given", "patronymic"]
                .iter()
                .filter_map(|k| o.get(*k).and_then(Value::as_str))
                .filter(|s| !s.is_empty())
                .collect();
            if parts.is_empty() {
                o.get("text").and_then(Value::as_str).map(str::to_string)
            } else {
                Some(parts.join(" "))
            }
        }
        _ => None,
    }
}

fn call<'s>(f: &str, args: &'s [Expr], sc: &Scope<'s>) -> Val<'s> {
    let arg = |i: usize| eval(&args[i], sc);
    match f {
        "coalesce" => args.iter().map(|a| eval(a, sc)).find(|v| v.is_some()).flatten(),
        "exists" => owned(Value::Bool(arg(0).is_some())),
        "now" => (!sc.env.now.is_empty()).then(|| Cow::Owned(Value::String(sc.env.now.to_string()))),
        "countWhere" => {
            let field = arg(1)?;
            let want = arg(2)?;
            let n = match arg(0).as_deref() {
                Some(Value::Array(a)) => {
                    a.iter().filter(|el| el.get(field.as_str().unwrap_or("")) == Some(want.as_ref())).count()
                }
                _ => 0,
            };
            owned(Value::from(n))
        }
        "count" => owned(Value::from(arg(0).map_or(0, |v| match v.as_ref() {
            Value::Array(a) => a.len(),
            _ => 1,
        }))),
        "lookup" => {
            let table = arg(0)?;
            let code = arg(1)?;
            let t = sc.env.tables.get(table.as_str()?)?;
            present(t.get(as_text(&code)).cloned().map(Cow::Owned))
        }
        "concat" => {
            let mut out = String::new();
            let mut any = false;
            for v in args.iter().filter_map(|a| eval(a, sc)) {
                any = true;
                push_text(&mut out, &v);
            }
            if any {
                owned(Value::String(out))
            } else {
                None
            }
        }
        "join" => {
            let arr = arg(0)?;
            let sep = arg(1).map(|s| as_text(&s)).unwrap_or_default();
            let items: Vec<String> = match arr.as_ref() {
                Value::Array(a) => a.iter().filter(|v| !v.is_null()).map(as_text).collect(),
                v => vec![as_text(v)],
            };
            if items.is_empty() {
                None
            } else {
                owned(Value::String(items.join(&sep)))
            }
        }
        "joinNonEmpty" => {
            let sep = arg(0).map(|s| as_text(&s)).unwrap_or_default();
            let items: Vec<String> =
                args[1..].iter().filter_map(|a| eval(a, sc)).map(|v| as_text(&v)).filter(|s| !s.is_empty()).collect();
            if items.is_empty() {
                None
            } else {
                owned(Value::String(items.join(&sep)))
            }
        }
        "name" => person_name(&*arg(0)?).map(|s| Cow::Owned(Value::String(s))),
        "find" => {
            let field = arg(1)?;
            let field = field.as_str()?;
            let want = arg(2)?;
            match arg(0)? {
                Cow::Borrowed(Value::Array(a)) => {
                    a.iter().find(|el| el.get(field) == Some(want.as_ref())).map(Cow::Borrowed)
                }
                Cow::Owned(Value::Array(a)) => {
                    a.into_iter().find(|el| el.get(field) == Some(want.as_ref())).map(Cow::Owned)
                }
                _ => None,
            }
        }
        "date" => {
            let v = arg(0)?;
            let s = v.as_str()?;
            owned(Value::String(s.chars().take(10).collect()))
        }
        "string" => owned(Value::String(as_text(&*arg(0)?))),
        "year" => {
            let v = arg(0)?;
            let y: i64 = v.as_str()?.get(..4)?.parse().ok()?;
            owned(Value::from(y))
        }
        "substr" => {
            let v = arg(0)?;
            let s = v.as_str()?;
            let start = arg(1)?.as_u64()? as usize;
            let chars = s.chars().skip(start);
            let out: String = match args.get(2).and_then(|a| eval(a, sc)).and_then(|n| n.as_u64()) {
                Some(n) => chars.take(n as usize).collect(),
                None => chars.collect(),
            };
            owned(Value::String(out))
        }
        "idx" => {
            // the index of the enclosing `for` level bound with `as: name`
            let n = arg(0)?;
            let name = n.as_str()?;
            let mut s = Some(sc);
            while let Some(x) = s {
                if x.name == Some(name) {
                    return x.index.map(|i| Cow::Owned(Value::from(i)));
                }
                s = x.parent;
            }
            None
        }
        "number" => {
            let v = arg(0)?;
            match v.as_ref() {
                Value::Number(_) => Some(v),
                Value::String(s) => {
                    serde_json::from_str::<serde_json::Number>(s).ok().map(|n| Cow::Owned(Value::Number(n)))
                }
                _ => None,
            }
        }
        "instant" => {
            let v = arg(0)?;
            let t = parse_instant(v.as_str()?)?;
            owned(Value::from(t))
        }
        "minutesBetween" => {
            let a = parse_instant(arg(0)?.as_str()?)?;
            let b = parse_instant(arg(1)?.as_str()?)?;
            owned(Value::from((b - a).div_euclid(60)))
        }
        "in" => {
            let x = arg(0);
            let r = x.is_some_and(|x| args[1..].iter().any(|a| eval(a, sc).as_deref() == Some(x.as_ref())));
            owned(Value::Bool(r))
        }
        "uuid" => {
            let n = arg(0)?;
            let id = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_URL,
                format!("{}/{}", sc.env.uuid_seed, as_text(&n)).as_bytes(),
            );
            owned(Value::String(format!("urn:uuid:{id}")))
        }
        _ => None,
    }
}

/// Epoch seconds of an RFC 3339 date-time, or of a date at midnight UTC.
pub fn parse_instant(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(src: &str, root: &Value) -> Option<Value> {
        let tables = Map::new();
        let env = Env { tables: &tables, uuid_seed: "t", now: "2026-01-01T00:00:00+05:00" };
        let sc = Scope { root, at: None, index: None, name: None, parent: None, env: &env };
        eval(&parse(src).unwrap(), &sc).map(Cow::into_owned)
    }

    #[test]
    fn paths_functions_and_absence() {
        let r = json!({"a": {"b": [1, 2, {"c": "x"}]}, "n": null, "p": [{"pinfl": "1", "n": "A"}]});
        assert_eq!(ev("$.a.b[1]", &r), Some(json!(2)));
        assert_eq!(ev("$.a.b[2].c", &r), Some(json!("x")));
        assert_eq!(ev("$.a.zz", &r), None);
        assert_eq!(ev("$.n", &r), None);
        assert_eq!(ev("coalesce($.zz, $.a.b[0])", &r), Some(json!(1)));
        assert_eq!(ev("$.a.b[2].c == 'x' && !$.zz", &r), Some(json!(true)));
        assert_eq!(ev("$.zz == 'x'", &r), Some(json!(false)));
        assert_eq!(ev("find($.p, 'pinfl', '1').n", &r), Some(json!("A")));
        assert_eq!(ev("concat('a', $.zz, 'b')", &r), Some(json!("ab")));
        assert_eq!(ev("minutesBetween('2026-01-01T10:00:00+05:00', '2026-01-01T06:30:00Z')", &r), Some(json!(90)));
        assert_eq!(ev("in($.a.b[2].c, 'y', 'x')", &r), Some(json!(true)));
        assert_eq!(ev("count($.a.b)", &r), Some(json!(3)));
        assert_eq!(ev("$.a.b[1 + 1].c", &r), Some(json!("x")));
        assert_eq!(ev("count($.a.b) - 1", &r), Some(json!(2)));
        assert_eq!(ev("$.a.b[0]-1", &r), Some(json!(0)));
        assert_eq!(ev("$.a.b[count($.a.b)-2]", &r), Some(json!(2)));
        assert_eq!(ev("year('2026-03-02T22:40:00+05:00')", &r), Some(json!(2026)));
        assert_eq!(ev("substr('2026-03-02', 5, 2)", &r), Some(json!("03")));
        assert_eq!(ev("$.zz != 'x'", &r), Some(json!(true)));
        assert_eq!(ev("$.zz < 1", &r), Some(json!(false)));
        assert_eq!(ev("countWhere($.p, 'n', 'A')", &r), Some(json!(1)));
        assert_eq!(ev("now()", &r), Some(json!("2026-01-01T00:00:00+05:00")));
        assert!(parse("nosuch(1)").is_err());
        assert!(parse("$.a ==").is_err());
    }
}
