//! Property-based generator of VALID form instances, driven by the form's JSON Schema.
//!
//! The walker reads the schema (properties, required, items/minItems/maxItems, enum, const, type,
//! minimum/maximum, minLength/maxLength, pattern, format date/date-time/uuid, `$ref` to `$defs`,
//! anyOf/oneOf/allOf/not-required, dependentRequired, minProperties) and makes random choices:
//! optional properties present or not, arrays of 1..=3 (sometimes more) entries, Latin and Cyrillic
//! (Uzbek/Russian) names and free text with characters that need XML escaping. Then fix-ups make the
//! instance satisfy the rules the schema cannot express (spec/forms/README.md §1.2 and the
//! definitions' `references` / `unique` / `checks`): practitioner references are drawn from the
//! generated `practitioners` (unique PINFLs), times are ordered, death-only and transfer-only fields
//! appear only with the matching disposition, labour durations agree with the time stamps, newborn
//! outcome counts agree with the newborns.
//!
//! Every instance comes from one `u64` seed (ChaCha8), so a failure reproduces from the printed seed:
//! `HUJJAT_GEN_SEED=<base>` sets the base seed of a run (instance `i` uses `base + i`).

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Number, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Default base seed (CI is deterministic); override with `HUJJAT_GEN_SEED`.
pub const DEFAULT_SEED: u64 = 0x5eed_0003_0096;

/// The base seed of this run: `HUJJAT_GEN_SEED` (decimal or 0x-hex) or [`DEFAULT_SEED`].
pub fn base_seed() -> u64 {
    match std::env::var("HUJJAT_GEN_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => s.parse().ok(),
            };
            parsed.unwrap_or_else(|| panic!("HUJJAT_GEN_SEED={s} is not a u64"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

/// The input schema of a form, from the shared spec (the contract; forms/ holds a byte-exact copy).
pub fn schema(form: &str) -> Value {
    super::read_json(super::shared().join(format!("spec/forms/form-{form}.schema.json")))
}

/// A generated instance that the library's own validation accepts (schema + semantic checks).
/// Panics with the seed and the issues when it does not: that is a generator bug or a service bug.
pub fn valid_instance(g: &FormGen, def: &hujjat::compose::FormDef, seed: u64) -> Value {
    let v = g.instance(seed);
    let issues = def.validate(&v);
    assert!(
        issues.is_empty(),
        "generated form {} instance (seed {seed}, reproduce with FormGen::instance({seed})) is rejected by FormDef::validate:\n{}\ninstance:\n{}",
        g.form,
        issues.iter().map(|i| format!("  {:?}: {}", i.expression, i.diagnostics)).collect::<Vec<_>>().join("\n"),
        serde_json::to_string_pretty(&v).unwrap()
    );
    v
}

/// A generator for one form's schema.
pub struct FormGen {
    pub form: String,
    pub schema: Value,
    regexes: Mutex<HashMap<String, regex::Regex>>,
}

/// Which script names and free text use.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Script {
    UzLatin,
    UzCyrillic,
    Russian,
}

struct Run<'a> {
    g: &'a FormGen,
    rng: ChaCha8Rng,
    /// probability that an optional property is sent
    density: f64,
    script: Script,
    /// practitioner PINFLs that `practitionerRef` locations draw from
    pinfls: Vec<String>,
    /// the admission instant (epoch seconds) that free date-times cluster around
    t0: i64,
    /// names of the `$defs` being expanded (innermost last)
    defs: Vec<String>,
    /// property names / `[]` from the root to the current value
    path: Vec<String>,
}

impl FormGen {
    pub fn new(schema: Value) -> FormGen {
        let form =
            schema["properties"]["form"]["const"].as_str().expect("schema has properties.form.const").to_string();
        FormGen { form, schema, regexes: Mutex::new(HashMap::new()) }
    }

    pub fn for_form(form: &str) -> FormGen {
        FormGen::new(schema(form))
    }

    /// One valid instance for `seed`.
    pub fn instance(&self, seed: u64) -> Value {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let density = *[0.15, 0.4, 0.6, 0.9].choose(&mut rng).unwrap();
        let script = *[Script::UzLatin, Script::UzLatin, Script::UzCyrillic, Script::Russian].choose(&mut rng).unwrap();
        // admission between 2019 and mid-2026, on a minute
        let t0 = Utc.with_ymd_and_hms(2019, 1, 1, 0, 0, 0).unwrap().timestamp()
            + rng.random_range(0..7 * 365 * 24 * 60) * 60;
        let mut run = Run { g: self, rng, density, script, pinfls: Vec::new(), t0, defs: Vec::new(), path: Vec::new() };
        let root = &self.schema;
        // Practitioners first: every practitionerRef draws from them.
        let props = root["properties"].as_object().expect("root properties");
        let practitioners = props.get("practitioners").map(|ps| {
            run.path.push("practitioners".into());
            let mut v = run.value(ps);
            run.path.pop();
            let mut seen = HashSet::new();
            for p in v.as_array_mut().expect("practitioners is an array") {
                let mut pin = p["pinfl"].as_str().unwrap().to_string();
                while !seen.insert(pin.clone()) {
                    pin = run.digits(14);
                }
                p["pinfl"] = json!(pin);
            }
            run.pinfls = v.as_array().unwrap().iter().map(|p| p["pinfl"].as_str().unwrap().to_string()).collect();
            v
        });
        let mut out = run.object(root, practitioners);
        match self.form.as_str() {
            "003" => run.fix_003(&mut out),
            "096" => run.fix_096(&mut out),
            _ => {}
        }
        out
    }

    fn def(&self, r: &str) -> &Value {
        let name = r.strip_prefix("#/$defs/").unwrap_or_else(|| panic!("unsupported $ref {r}"));
        self.schema["$defs"].get(name).unwrap_or_else(|| panic!("no $defs/{name}"))
    }

    fn check_pattern(&self, pattern: &str, s: &str) {
        let mut m = self.regexes.lock().unwrap();
        let re = m
            .entry(pattern.to_string())
            .or_insert_with(|| regex::Regex::new(pattern).expect("schema pattern compiles"));
        assert!(re.is_match(s), "generator bug: {s:?} does not match {pattern}");
    }
}

// ------------------------------------------------------------------------------------------------
// Word lists

const UZ_FAMILY: &[&str] = &[
    "Rasulov",
    "Yusupova",
    "Karimov",
    "Abdullayeva",
    "Toshmatov",
    "Xo'jayev",
    "G'ulomova",
    "O'rinboyev",
    "Qodirov",
    "Sharipova",
    "Ismoilov",
    "Mirzayeva",
    "Nazarov",
    "Ergasheva",
    "Oʻktamov",
    "Gʻaniyeva",
];
const UZ_GIVEN: &[&str] = &[
    "Bekzod", "Madina", "Dilshod", "Nodira", "Farhod", "Malika", "Sardor", "Gulnora", "O'tkir", "G'ayrat", "Shahnoza",
    "Jamshid", "Zulfiya", "Oʻlmas", "Ra'no",
];
const UZ_PATRONYMIC: &[&str] = &[
    "Rustamovna",
    "Ismoilovich",
    "Bahodirovna",
    "Saidovich",
    "Alisherovich",
    "To'xtayevna",
    "Qahramonovich",
    "Gʻofurovna",
];
const UZC_FAMILY: &[&str] =
    &["Расулов", "Юсупова", "Каримов", "Ғуломова", "Ўринбоев", "Қодиров", "Ҳакимова", "Шарипова"];
const UZC_GIVEN: &[&str] = &["Бекзод", "Мадина", "Ғайрат", "Ўткир", "Шаҳноза", "Жамшид", "Зулфия", "Нодира"];
const UZC_PATRONYMIC: &[&str] = &["Рустамовна", "Исмоилович", "Баҳодировна", "Тўхтаевич", "Қаҳрамонович"];
const RU_FAMILY: &[&str] = &["Иванов", "Петрова", "Смирнов", "Кузнецова", "Соколов", "Лебедева", "Ёлкин", "Д'Арк"];
const RU_GIVEN: &[&str] = &["Алексей", "Наталья", "Сергей", "Ольга", "Дмитрий", "Юлия", "Фёдор", "Анна-Мария"];
const RU_PATRONYMIC: &[&str] = &["Иванович", "Сергеевна", "Петрович", "Алексеевна", "Фёдорович"];

const UZ_WORDS: &[&str] = &[
    "bemor",
    "holati",
    "qoniqarli",
    "og'riq",
    "o'ng",
    "yonbosh",
    "sohasida",
    "harorat",
    "ko'tarilgan",
    "qorin",
    "yumshoq",
    "shifokor",
    "tavsiya",
    "etildi",
    "nafas",
    "olish",
    "erkin",
    "yurak",
    "tonlari",
    "aniq",
    "tahlil",
    "natijasi",
    "me'yorda",
    "jarrohlik",
    "amaliyoti",
    "oʻtkazildi",
    "gʻayritabiiy",
    "kuzatuv",
    "davom",
    "etmoqda",
];
const UZC_WORDS: &[&str] = &[
    "бемор",
    "ҳолати",
    "қониқарли",
    "оғриқ",
    "ўнг",
    "ёнбош",
    "соҳасида",
    "ҳарорат",
    "кўтарилган",
    "қорин",
    "юмшоқ",
    "шифокор",
    "тавсия",
    "этилди",
    "нафас",
    "юрак",
    "таҳлил",
    "натижаси",
    "меъёрда",
    "кузатув",
];
const RU_WORDS: &[&str] = &[
    "пациент",
    "состояние",
    "удовлетворительное",
    "боль",
    "в",
    "правой",
    "подвздошной",
    "области",
    "температура",
    "повышена",
    "живот",
    "мягкий",
    "рекомендовано",
    "наблюдение",
    "дыхание",
    "везикулярное",
    "тоны",
    "сердца",
    "ясные",
    "анализ",
    "в норме",
    "ёмкость",
];
/// Tokens that need escaping in XHTML or that try to look like markup, templates or SQL.
const SPECIAL: &[&str] = &[
    "<",
    ">",
    "&",
    "\"",
    "'",
    "&amp;",
    "&lt;b&gt;",
    "<b>qalin</b>",
    "a<b",
    "x&y",
    "\"iqtibos\"",
    "«кавычки»",
    "]]>",
    "<!--",
    "-->",
    "{{ $.patient.pinfl }}",
    "{{@index}}",
    "'; DROP TABLE documents; --",
    "5 > 3 && 2 < 4",
    "100%",
    "C:\\temp\\x",
    "☺",
    "𝔘𝔷",
    "<script>alert(1)</script>",
    "&#x41;",
    "&nbsp;",
    "<p>",
    "</div>",
];
const ORG_WORDS_UZ: &[&str] = &["Toshkent shahar", "Samarqand viloyat", "Yunusobod tumani", "Farg'ona", "Nukus"];
const ORG_KIND_UZ: &[&str] =
    &["klinik shifoxonasi", "tug'ruq kompleksi", "oilaviy poliklinikasi", "ko'p tarmoqli markazi"];
const ORG_WORDS_RU: &[&str] =
    &["Городская клиническая больница", "Родильный комплекс", "Семейная поликлиника", "ООО «Шифо & Ко»"];
const UCUM: &[&str] = &[
    "mg", "mL", "g/L", "10*9/L", "10*12/L", "mmol/L", "%", "U/L", "[iU]", "mg/kg", "/min", "mm[Hg]", "ug", "g", "{tbl}",
];

// ------------------------------------------------------------------------------------------------
// Regex → string, for the simple patterns of the schemas.

#[derive(Debug)]
enum Re {
    Lit(char),
    Class(Vec<(char, char)>),
    Group(Vec<Vec<Re>>),
    Rep(Box<Re>, u32, u32),
}

fn parse_alts(c: &[char], i: &mut usize) -> Vec<Vec<Re>> {
    let mut alts: Vec<Vec<Re>> = vec![vec![]];
    while *i < c.len() {
        let atom = match c[*i] {
            ')' => break,
            '|' => {
                *i += 1;
                alts.push(vec![]);
                continue;
            }
            '^' | '$' => {
                *i += 1;
                continue;
            }
            '(' => {
                *i += 1;
                let g = parse_alts(c, i);
                assert_eq!(c.get(*i), Some(&')'), "unbalanced group");
                *i += 1;
                Re::Group(g)
            }
            '[' => {
                *i += 1;
                assert_ne!(c[*i], '^', "negated classes are not supported");
                let mut ranges = Vec::new();
                while c[*i] != ']' {
                    let mut a = c[*i];
                    if a == '\\' {
                        *i += 1;
                        a = c[*i];
                    }
                    *i += 1;
                    if c[*i] == '-' && c[*i + 1] != ']' {
                        let mut b = c[*i + 1];
                        *i += 2;
                        if b == '\\' {
                            b = c[*i];
                            *i += 1;
                        }
                        ranges.push((a, b));
                    } else {
                        ranges.push((a, a));
                    }
                }
                *i += 1;
                Re::Class(ranges)
            }
            '\\' => {
                *i += 2;
                match c[*i - 1] {
                    'd' => Re::Class(vec![('0', '9')]),
                    x => Re::Lit(x),
                }
            }
            '.' => {
                *i += 1;
                Re::Class(vec![('a', 'z'), ('A', 'Z'), ('0', '9')])
            }
            x => {
                *i += 1;
                Re::Lit(x)
            }
        };
        let atom = match c.get(*i) {
            Some('{') => {
                let close = (*i..c.len()).find(|&k| c[k] == '}').expect("closing }");
                let inner: String = c[*i + 1..close].iter().collect();
                *i = close + 1;
                let (lo, hi) = match inner.split_once(',') {
                    Some((a, b)) => (
                        a.parse().unwrap(),
                        if b.is_empty() { a.parse::<u32>().unwrap() + 3 } else { b.parse().unwrap() },
                    ),
                    None => (inner.parse().unwrap(), inner.parse().unwrap()),
                };
                Re::Rep(Box::new(atom), lo, hi)
            }
            Some('?') => {
                *i += 1;
                Re::Rep(Box::new(atom), 0, 1)
            }
            Some('*') => {
                *i += 1;
                Re::Rep(Box::new(atom), 0, 3)
            }
            Some('+') => {
                *i += 1;
                Re::Rep(Box::new(atom), 1, 3)
            }
            _ => atom,
        };
        alts.last_mut().unwrap().push(atom);
    }
    alts
}

fn gen_re(re: &Re, rng: &mut ChaCha8Rng, out: &mut String) {
    match re {
        Re::Lit(c) => out.push(*c),
        Re::Class(ranges) => {
            let total: u32 = ranges.iter().map(|(a, b)| *b as u32 - *a as u32 + 1).sum();
            let mut k = rng.random_range(0..total);
            for (a, b) in ranges {
                let n = *b as u32 - *a as u32 + 1;
                if k < n {
                    out.push(char::from_u32(*a as u32 + k).unwrap());
                    return;
                }
                k -= n;
            }
        }
        Re::Group(alts) => {
            let alt = alts.choose(rng).unwrap();
            for r in alt {
                gen_re(r, rng, out);
            }
        }
        Re::Rep(r, lo, hi) => {
            for _ in 0..rng.random_range(*lo..=*hi) {
                gen_re(r, rng, out);
            }
        }
    }
}

/// A random string matching `pattern` (the subset of regex syntax the schemas use).
pub fn string_for_pattern(pattern: &str, rng: &mut ChaCha8Rng) -> String {
    let c: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let alts = parse_alts(&c, &mut i);
    assert_eq!(i, c.len(), "pattern {pattern}: trailing input");
    let mut out = String::new();
    gen_re(&Re::Group(alts), rng, &mut out);
    out
}

// ------------------------------------------------------------------------------------------------
// Times

/// RFC 3339 with seconds and an offset: mostly +05:00, sometimes Z or another offset; `plain` =
/// whole seconds only (times whose minute differences are checked).
fn fmt_dt(t: i64, rng: &mut ChaCha8Rng, plain: bool) -> String {
    let offsets = [5 * 3600, 5 * 3600, 5 * 3600, 5 * 3600, 0, 3 * 3600, -4 * 3600, 5 * 3600 + 1800];
    let off = *offsets.choose(rng).unwrap();
    let tz = FixedOffset::east_opt(off).unwrap();
    let dt: DateTime<FixedOffset> = tz.timestamp_opt(t, 0).unwrap();
    let mut s = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
    if !plain && rng.random_bool(0.1) {
        s.push_str([".5", ".123", ".000", ".999999"].choose(rng).unwrap());
    }
    if off == 0 && rng.random_bool(0.7) {
        s.push('Z');
    } else {
        s.push_str(&dt.format("%:z").to_string());
    }
    s
}

fn parse_dt(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).timestamp()
}

fn fmt_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn date_of(t: i64) -> NaiveDate {
    DateTime::from_timestamp(t, 0).unwrap().date_naive()
}

/// Start ≤ end for pairs of dates / date-times in the same object (periods).
fn order_pair(o: &mut Value, a: &str, b: &str) {
    if let (Some(x), Some(y)) = (o.get(a).and_then(Value::as_str), o.get(b).and_then(Value::as_str)) {
        let key = |s: &str| if s.len() == 10 { parse_dt(&format!("{s}T00:00:00Z")) } else { parse_dt(s) };
        if key(x) > key(y) {
            let (x, y) = (x.to_string(), y.to_string());
            o[a] = json!(y);
            o[b] = json!(x);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The walker

impl Run<'_> {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.rng.random_range(0..10u8))).collect()
    }

    /// A valid value for schema `s` at the current path.
    fn value(&mut self, s: &Value) -> Value {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.trim_start_matches("#/$defs/").to_string();
            // references to practitioners: one of the generated PINFLs
            if name == "practitionerRef" && !self.pinfls.is_empty() {
                return json!(self.pinfls.choose(&mut self.rng).unwrap().clone());
            }
            let g = self.g;
            let target = g.def(r);
            self.defs.push(name);
            let v = self.value(target);
            self.defs.pop();
            return v;
        }
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e.choose(&mut self.rng).unwrap().clone();
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") => self.object(s, None),
            Some("array") => {
                let items = &s["items"];
                let lo = s.get("minItems").and_then(Value::as_u64).unwrap_or(0).max(1);
                let hi = s.get("maxItems").and_then(Value::as_u64).unwrap_or(u64::MAX);
                let want = if self.chance(0.08) {
                    self.rng.random_range(lo..=lo + 5)
                } else {
                    self.rng.random_range(lo..=lo + 2)
                };
                let n = want.min(hi).max(lo);
                self.path.push("[]".into());
                let v = (0..n).map(|_| self.value(items)).collect();
                self.path.pop();
                Value::Array(v)
            }
            Some("string") => Value::String(self.string(s)),
            Some("integer") => {
                let lo = s.get("minimum").and_then(Value::as_i64).unwrap_or(0);
                let hi = s.get("maximum").and_then(Value::as_i64).unwrap_or(lo + 1000);
                let x = match self.rng.random_range(0..10) {
                    0 => lo,
                    1 => hi,
                    _ => {
                        // mostly small, realistic counts
                        let top = if self.chance(0.7) { hi.min(lo + 12) } else { hi };
                        self.rng.random_range(lo..=top)
                    }
                };
                json!(x)
            }
            Some("number") => {
                let lo = s.get("minimum").and_then(Value::as_f64);
                let hi = s.get("maximum").and_then(Value::as_f64);
                let (lo, hi) = match (lo, hi) {
                    (Some(a), Some(b)) => (a, b),
                    (Some(a), None) => (a, a + 1000.0),
                    (None, Some(b)) => (b - 1000.0, b),
                    (None, None) => (-50.0, 1000.0),
                };
                let x = match self.rng.random_range(0..12) {
                    0 => lo,
                    1 => hi,
                    _ => self.rng.random_range(lo..=hi),
                };
                let decimals = *[0, 0, 1, 1, 2, 3].choose(&mut self.rng).unwrap();
                let scale = 10f64.powi(decimals);
                let mut y = (x * scale).round() / scale;
                if y < lo {
                    y = (lo * scale).ceil() / scale;
                }
                if y > hi {
                    y = (hi * scale).floor() / scale;
                }
                if y.fract() == 0.0 && y.abs() < 1e15 {
                    json!(y as i64)
                } else {
                    // shortest decimal text of the rounded value
                    let text = format!("{y:.*}", decimals as usize);
                    Value::Number(Number::from_f64(text.parse().unwrap()).unwrap())
                }
            }
            Some("boolean") => json!(self.chance(0.5)),
            other => panic!("generator: unsupported schema type {other:?} at {}: {s}", self.path.join(".")),
        }
    }

    /// An object: required members, the branches of anyOf/allOf/oneOf, dependentRequired,
    /// minProperties, and random optional members. `preset` replaces `practitioners` at the root.
    fn object(&mut self, s: &Value, mut preset: Option<Value>) -> Value {
        let empty = Map::new();
        let props = s.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let names: Vec<String> = props.keys().cloned().collect();
        let mut present: HashSet<String> = HashSet::new();
        let mut absent: HashSet<String> = HashSet::new();
        let req = |v: &Value| -> Vec<String> {
            v.get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        for r in req(s) {
            present.insert(r);
        }
        for n in &names {
            if !present.contains(n) && self.chance(self.density) {
                present.insert(n.clone());
            }
        }
        // anyOf (also inside allOf): at least one branch holds
        let mut any_ofs: Vec<&Vec<Value>> = Vec::new();
        if let Some(a) = s.get("anyOf").and_then(Value::as_array) {
            any_ofs.push(a);
        }
        for sub in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            if let Some(a) = sub.get("anyOf").and_then(Value::as_array) {
                any_ofs.push(a);
            }
            for r in req(sub) {
                present.insert(r);
            }
        }
        for branches in any_ofs {
            if !branches.iter().any(|b| req(b).iter().all(|r| present.contains(r))) {
                let b = branches.choose(&mut self.rng).unwrap();
                present.extend(req(b));
            }
        }
        // oneOf: exactly one branch holds
        if let Some(branches) = s.get("oneOf").and_then(Value::as_array) {
            let k = self.rng.random_range(0..branches.len());
            let chosen = &branches[k];
            let mine = req(chosen);
            present.extend(mine.iter().cloned());
            for n in chosen.get("not").map(req).unwrap_or_default() {
                present.remove(&n);
                absent.insert(n);
            }
            for (j, other) in branches.iter().enumerate() {
                if j != k {
                    for n in req(other) {
                        if !mine.contains(&n) {
                            present.remove(&n);
                            absent.insert(n);
                        }
                    }
                }
            }
        }
        if let Some(dep) = s.get("dependentRequired").and_then(Value::as_object) {
            for (k, deps) in dep {
                if present.contains(k) {
                    present.extend(deps.as_array().unwrap().iter().filter_map(Value::as_str).map(str::to_string));
                }
            }
        }
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
            while (present.len() as u64) < min {
                let candidates: Vec<&String> =
                    names.iter().filter(|n| !present.contains(*n) && !absent.contains(*n)).collect();
                let n = (*candidates.choose(&mut self.rng).expect("minProperties satisfiable")).clone();
                present.insert(n);
            }
        }
        let mut out = Map::new();
        for n in &names {
            if !present.contains(n) {
                continue;
            }
            if n == "practitioners" {
                if let Some(p) = preset.take() {
                    out.insert(n.clone(), p);
                    continue;
                }
            }
            self.path.push(n.clone());
            let v = self.value(&props[n]);
            self.path.pop();
            out.insert(n.clone(), v);
        }
        Value::Object(out)
    }

    fn key(&self) -> &str {
        self.path.iter().rev().find(|p| *p != "[]").map(String::as_str).unwrap_or("")
    }

    fn in_def(&self, name: &str) -> bool {
        self.defs.last().map(String::as_str) == Some(name)
    }

    fn string(&mut self, s: &Value) -> String {
        let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = s.get("maxLength").and_then(Value::as_u64).unwrap_or(500) as usize;
        let out = match s.get("format").and_then(Value::as_str) {
            Some("date-time") => {
                let t = self.t0 + self.rng.random_range(-3 * 24 * 60..20 * 24 * 60) * 60 + self.rng.random_range(0..60);
                fmt_dt(t, &mut self.rng, false)
            }
            Some("date") => {
                let base = date_of(self.t0);
                let d = match self.key() {
                    "birthDate" => base - Duration::days(self.rng.random_range(16 * 365..90 * 365)),
                    "lastMenstrualPeriod" => base - Duration::days(self.rng.random_range(250..300)),
                    "firstFetalMovement" => base - Duration::days(self.rng.random_range(100..160)),
                    _ => base + Duration::days(self.rng.random_range(-30..30)),
                };
                // a leap day now and then
                if self.chance(0.02) {
                    fmt_date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
                } else {
                    fmt_date(d)
                }
            }
            Some("uuid") => {
                let mut b = [0u8; 16];
                self.rng.fill(&mut b);
                let u = uuid::Builder::from_random_bytes(b).into_uuid().to_string();
                if self.chance(0.2) {
                    u.to_uppercase()
                } else {
                    u
                }
            }
            Some(f) => panic!("generator: unsupported format {f}"),
            None => match s.get("pattern").and_then(Value::as_str) {
                Some(p) => string_for_pattern(p, &mut self.rng),
                None => self.text(min, max),
            },
        };
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            self.g.check_pattern(p, &out);
        }
        out
    }

    fn pick_script(&mut self) -> Script {
        if self.chance(0.8) {
            self.script
        } else {
            *[Script::UzLatin, Script::UzCyrillic, Script::Russian].choose(&mut self.rng).unwrap()
        }
    }

    fn person(&mut self, part: &str) -> String {
        let (f, g, p) = match self.pick_script() {
            Script::UzLatin => (UZ_FAMILY, UZ_GIVEN, UZ_PATRONYMIC),
            Script::UzCyrillic => (UZC_FAMILY, UZC_GIVEN, UZC_PATRONYMIC),
            Script::Russian => (RU_FAMILY, RU_GIVEN, RU_PATRONYMIC),
        };
        let list = match part {
            "family" => f,
            "given" => g,
            _ => p,
        };
        let mut s = list.choose(&mut self.rng).unwrap().to_string();
        if part == "family" && self.chance(0.05) {
            s = format!("{s}-{}", list.choose(&mut self.rng).unwrap());
        }
        s
    }

    /// Free text of `min..=max` characters (code points), never starting or ending with
    /// whitespace, with Latin / Cyrillic words and now and then markup-like characters.
    fn text(&mut self, min: usize, max: usize) -> String {
        let key = self.key().to_string();
        let parent_def = self.defs.last().cloned().unwrap_or_default();
        let mut s = if parent_def == "personName" || (self.in_def("newborn") && self.path.iter().any(|p| p == "name")) {
            self.person(&key)
        } else if key == "name" && self.path.iter().any(|p| p == "relatives") {
            format!("{} {}", self.person("family"), self.person("given"))
        } else if key == "name" && (parent_def == "organizationRef" || parent_def == "organization") {
            if self.pick_script() == Script::UzLatin {
                format!(
                    "{} {}-son {}",
                    ORG_WORDS_UZ.choose(&mut self.rng).unwrap(),
                    self.rng.random_range(1..60),
                    ORG_KIND_UZ.choose(&mut self.rng).unwrap()
                )
            } else {
                format!("{} № {}", ORG_WORDS_RU.choose(&mut self.rng).unwrap(), self.rng.random_range(1..60))
            }
        } else if parent_def == "ucumUnit" {
            UCUM.choose(&mut self.rng).unwrap().to_string()
        } else if key == "specialtyCode" {
            string_for_pattern("^[1-9][0-9]{5,9}$", &mut self.rng)
        } else if max <= 60 {
            // identifiers and short labels: no line breaks
            let k = self.rng.random_range(1..=3);
            let w = self.words(k, false);
            if self.chance(0.5) {
                format!("{}-{}", w.split(' ').next().unwrap(), self.rng.random_range(1..100000))
            } else {
                w
            }
        } else {
            let long = max >= 1000 && self.chance(0.05);
            let n = if long { self.rng.random_range(100..800) } else { self.rng.random_range(1..25) };
            let mut t = self.words(n, max >= 1000);
            if max >= 1000 && self.chance(0.01) {
                // exactly the longest allowed text
                while t.chars().count() < max {
                    t.push(' ');
                    t.push_str(&self.words(50, false));
                }
            }
            t
        };
        if s.chars().count() > max {
            s = s.chars().take(max).collect();
        }
        let mut s = s.trim_end().to_string();
        while s.chars().count() < min.max(1) {
            s.push('x');
        }
        // now and then outer white space, which is no part of the value (the service trims it)
        if self.chance(0.03) && s.chars().count() + 2 <= max {
            let pad = *[" ", "\n", "\t", "  "].choose(&mut self.rng).unwrap();
            s = if self.chance(0.5) { format!("{pad}{s}") } else { format!("{s}{pad}") };
            s.truncate(s.len().min(max * 4));
        }
        s
    }

    fn words(&mut self, n: usize, newlines: bool) -> String {
        let mut out = String::new();
        for i in 0..n {
            let list = match self.pick_script() {
                Script::UzLatin => UZ_WORDS,
                Script::UzCyrillic => UZC_WORDS,
                Script::Russian => RU_WORDS,
            };
            let w = if self.chance(0.08) {
                SPECIAL.choose(&mut self.rng).unwrap()
            } else {
                list.choose(&mut self.rng).unwrap()
            };
            if i > 0 {
                out.push(if newlines && self.chance(0.05) { '\n' } else { ' ' });
            }
            out.push_str(w);
            if self.chance(0.1) {
                out.push(*[',', '.', ';', ':', '!', '?'].choose(&mut self.rng).unwrap());
            }
        }
        out
    }

    // --------------------------------------------------------------------------------------------
    // Fix-ups: what JSON Schema cannot say.

    fn set_dt(&mut self, v: &mut Value, ptr: &str, t: i64, plain: bool) {
        if let Some(x) = v.pointer_mut(ptr) {
            *x = json!(fmt_dt(t, &mut self.rng, plain));
        }
    }

    fn gen_at(&mut self, schema_ptr: &str, path: &[&str]) -> Value {
        let g = self.g;
        let s = g.schema.pointer(schema_ptr).unwrap_or_else(|| panic!("schema has {schema_ptr}"));
        self.path = path.iter().map(|p| p.to_string()).collect();
        let v = self.value(s);
        self.path.clear();
        v
    }

    fn fix_003(&mut self, v: &mut Value) {
        let t0 = self.t0;
        let ai = "/administrativeInformation";
        self.set_dt(v, &format!("{ai}/admissionDateTime"), t0, false);
        let stay = if self.chance(0.05) {
            0
        } else {
            self.rng.random_range(0..30 * 24 * 60) * 60 + self.rng.random_range(0..60)
        };
        let t1 = t0 + stay;
        self.set_dt(v, &format!("{ai}/dischargeDateTime"), t1, false);
        if let Some(Value::Array(tr)) = v.pointer(&format!("{ai}/transfers")).cloned().as_ref() {
            let mut ts: Vec<i64> = (0..tr.len()).map(|_| self.rng.random_range(t0..=t1)).collect();
            if self.chance(0.1) {
                ts[0] = t0; // a transfer at the very admission instant
            }
            ts.sort();
            for (i, t) in ts.into_iter().enumerate() {
                self.set_dt(v, &format!("{ai}/transfers/{i}/transferredAt"), t, false);
            }
        }
        // the outcome: death-only and transfer-only members follow the disposition
        let died = "mserv-0004-00002";
        if self.chance(0.2) {
            v["treatmentOutcome"]["dischargeDisposition"] = json!(died);
        } else if self.chance(0.15) {
            v["treatmentOutcome"]["dischargeDisposition"] =
                json!(*["other-hcf", "mserv-0004-00005"].choose(&mut self.rng).unwrap());
        }
        let disp = v["treatmentOutcome"].get("dischargeDisposition").and_then(Value::as_str).map(str::to_string);
        if disp.as_deref() == Some(died) {
            if v["treatmentOutcome"].get("deathContext").is_none() && self.chance(0.5) {
                let dc = self.gen_at(
                    "/properties/treatmentOutcome/properties/deathContext",
                    &["treatmentOutcome", "deathContext"],
                );
                v["treatmentOutcome"]["deathContext"] = dc;
            }
            if v.get("postmortemConclusion").is_none() && self.chance(0.5) {
                let pm = self.gen_at("/properties/postmortemConclusion", &["postmortemConclusion"]);
                v["postmortemConclusion"] = pm;
            }
        } else {
            v["treatmentOutcome"].as_object_mut().unwrap().remove("deathContext");
            v.as_object_mut().unwrap().remove("postmortemConclusion");
        }
        if matches!(disp.as_deref(), Some("other-hcf" | "mserv-0004-00005")) {
            if v["treatmentOutcome"].get("transferredTo").is_none() && self.chance(0.5) {
                let org = self.gen_at(
                    "/properties/treatmentOutcome/properties/transferredTo",
                    &["treatmentOutcome", "transferredTo"],
                );
                v["treatmentOutcome"]["transferredTo"] = org;
            }
        } else {
            v["treatmentOutcome"].as_object_mut().unwrap().remove("transferredTo");
        }
        // periods: anaesthesia start ≤ end, sick leave opened ≤ closed
        if let Some(ops) = v.pointer_mut("/surgicalProcedures/operations").and_then(Value::as_array_mut) {
            for op in ops {
                if let Some(an) = op.get_mut("anaesthesia") {
                    order_pair(an, "start", "end");
                }
            }
        }
        if let Some(sl) = v.pointer_mut("/temporaryDisability/sickLeaves").and_then(Value::as_array_mut) {
            for s in sl {
                order_pair(s, "openedOn", "closedOn");
            }
        }
    }

    fn fix_096(&mut self, v: &mut Value) {
        let t0 = self.t0;
        let ai = "/admissionInformation";
        self.set_dt(v, &format!("{ai}/admissionDateTime"), t0, false);
        // the outcome: transferredTo only with other-hcf
        if self.chance(0.25) {
            v["admissionInformation"]["hospitalizationOutcome"] = json!("other-hcf");
        }
        if v["admissionInformation"]["hospitalizationOutcome"] == json!("other-hcf") {
            if v["admissionInformation"].get("transferredTo").is_none() && self.chance(0.5) {
                let org = self.gen_at(
                    "/properties/admissionInformation/properties/transferredTo",
                    &["admissionInformation", "transferredTo"],
                );
                v["admissionInformation"]["transferredTo"] = org;
            }
        } else {
            v["admissionInformation"].as_object_mut().unwrap().remove("transferredTo");
        }
        // the labour timeline, on whole minutes: onset → full dilation → births → placenta / end
        let m = 60;
        // time stamps to the second now and then: durations are whole minutes, rounded either way
        let secs = self.chance(0.3);
        let jitter = |r: &mut ChaCha8Rng| if secs { r.random_range(0..60) } else { 0 };
        let onset = t0 + self.rng.random_range(-12 * 60..6 * 60) * m + jitter(&mut self.rng);
        let full = onset + self.rng.random_range(60..900) * m + jitter(&mut self.rng);
        let n = v["newbornDeliveryRecord"]["newborns"].as_array().map_or(0, Vec::len);
        let mut births = Vec::new();
        let mut t = full + self.rng.random_range(5..120) * m;
        for _ in 0..n {
            births.push(t);
            t += self.rng.random_range(1..40) * m + jitter(&mut self.rng);
        }
        let last = *births.last().unwrap_or(&full);
        let placenta = last + self.rng.random_range(3..40) * m + jitter(&mut self.rng);
        let end = if self.chance(0.5) {
            placenta
        } else {
            placenta + self.rng.random_range(0..30) * m + jitter(&mut self.rng)
        };
        let lc = "/laborCourse";
        self.set_dt(v, &format!("{lc}/onset"), onset, true);
        self.set_dt(v, &format!("{lc}/fullDilationAt"), full, true);
        let rupture = onset + self.rng.random_range(0..=(last - onset) / m) * m;
        self.set_dt(v, &format!("{lc}/membranesRupturedAt"), rupture, true);
        let pushing = full + self.rng.random_range(0..=(last - full) / m) * m;
        self.set_dt(v, &format!("{lc}/pushingStartedAt"), pushing, true);
        self.set_dt(v, &format!("{lc}/laborEnd"), end, true);
        self.set_dt(v, "/newbornDeliveryRecord/placenta/deliveredAt", placenta, true);
        for (i, b) in births.iter().enumerate() {
            self.set_dt(v, &format!("/newbornDeliveryRecord/newborns/{i}/birthDateTime"), *b, true);
        }
        let has = |v: &Value, p: &str| v.pointer(p).is_some();
        let end_sent = if has(v, "/laborCourse/laborEnd") {
            Some(end)
        } else if has(v, "/newbornDeliveryRecord/placenta/deliveredAt") {
            Some(placenta)
        } else {
            None
        };
        // minutes between two stamps as the paper form would record them: rounded down or up
        let mut mins = |a: i64, b: i64| -> i64 {
            let d = (b - a).div_euclid(m);
            if (b - a) % m != 0 && self.rng.random_bool(0.5) {
                d + 1
            } else {
                d
            }
        };
        let (total, first, second, third) =
            (end_sent.map(|e| mins(onset, e)), mins(onset, full), mins(full, last), end_sent.map(|e| mins(last, e)));
        let lcv = &mut v["laborCourse"];
        let onset_sent = lcv.get("onset").is_some();
        let full_sent = lcv.get("fullDilationAt").is_some();
        if let (true, Some(t), Some(x)) = (onset_sent, total, lcv.get_mut("totalDurationMin")) {
            *x = json!(t);
        }
        if let (true, true, Some(x)) = (onset_sent, full_sent, lcv.get_mut("firstStageMin")) {
            *x = json!(first);
        }
        if let (true, true, Some(x)) = (full_sent, n > 0, lcv.get_mut("secondStageMin")) {
            *x = json!(second);
        }
        if let (Some(t), true, Some(x)) = (third, n > 0, lcv.get_mut("thirdStageMin")) {
            *x = json!(t);
        }
        if let Some(x) = v.pointer_mut("/newbornDeliveryRecord/placenta/intervalFromBirthMin") {
            *x = json!(((placenta - last) / m).min(1440));
        }
        // discharge after the births
        let dis = t0.max(last) + self.rng.random_range(0..6 * 24 * 60) * m;
        self.set_dt(v, &format!("{ai}/dischargeDateTime"), dis, false);
        // outcome counts agree with newborns[].outcome (those without an outcome may count either way)
        let outcomes: Vec<Option<String>> = v["newbornDeliveryRecord"]["newborns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|nb| nb.get("outcome").and_then(Value::as_str).map(str::to_string))
            .collect();
        let live = outcomes.iter().filter(|o| o.as_deref() == Some("281050002")).count();
        let still = outcomes.iter().filter(|o| o.as_deref() == Some("237364002")).count();
        let unknown = outcomes.len() - live - still;
        let k = self.rng.random_range(0..=unknown);
        if let Some(os) = v.pointer_mut("/newbornDeliveryRecord/outcomeSummary") {
            if let Some(x) = os.get_mut("liveBirths") {
                *x = json!(live + k);
            }
            if let Some(x) = os.get_mut("stillbirths") {
                *x = json!(still + unknown - k);
            }
            if let (Some(l), Some(d)) =
                (os.get("liveBirths").and_then(Value::as_u64), os.get("postnatalDeaths").and_then(Value::as_u64))
            {
                os["postnatalDeaths"] = json!(d.min(l));
            }
        }
        if let Some(cs) = v.pointer_mut("/sickLeaveCertificates/certificates").and_then(Value::as_array_mut) {
            for c in cs {
                order_pair(c, "openedOn", "closedOn");
            }
        }
    }
}
