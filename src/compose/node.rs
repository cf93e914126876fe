//! The composed document while it is built: a tree that borrows what it can from the form
//! definition (member names, literals) and is written once as JSON text.
//!
//! Composing used to build a `serde_json::Value` tree, then serialize it: every member name was
//! copied into a `String` and hashed into an `IndexMap`, every literal cloned, and the whole tree
//! freed again — about a third of composing the Form 003 example (issue 7, BENCHMARKS.md, eighth
//! session). A `Node` object is a `Vec` of borrowed names: members are few, so a linear search
//! where a name must be found is cheaper than hashing every insert. The text written is the one
//! `canon::to_json_string` writes for the equivalent `Value`, octet for octet.

use crate::sign::canon::{write_array, write_json, write_object, write_string};
use serde_json::Value;

/// One value of the document being built. `'d`: the form definition.
#[derive(Debug)]
pub enum Node<'d> {
    /// a literal of the definition
    Lit(&'d Value),
    /// a value computed or taken from the input
    Val(Value),
    /// a string of the definition
    Text(&'d str),
    /// a string built while composing
    Str(String),
    /// members in order; names are unique (see [`set`])
    Obj(Vec<(&'d str, Node<'d>)>),
    Arr(Vec<Node<'d>>),
}

/// Members of an object node.
pub type Members<'d> = Vec<(&'d str, Node<'d>)>;

/// Insert or replace member `k`: a replaced member keeps its place (what `Map::insert` does).
pub fn set<'d>(m: &mut Members<'d>, k: &'d str, v: Node<'d>) {
    match m.iter_mut().find(|(name, _)| *name == k) {
        Some(slot) => slot.1 = v,
        None => m.push((k, v)),
    }
}

/// Take member `k` out; the rest keep their order (`Map::shift_remove`, not serde_json's
/// `Map::remove`, which swaps the last member into the hole).
pub fn take<'d>(m: &mut Members<'d>, k: &str) -> Option<Node<'d>> {
    let i = m.iter().position(|(name, _)| *name == k)?;
    Some(m.remove(i).1)
}

impl<'d> Node<'d> {
    /// The text of a scalar (a string as it is, anything else as its JSON text): `expr::as_text`.
    pub fn into_text(self) -> String {
        match self {
            Node::Str(s) => s,
            Node::Text(s) => s.to_string(),
            Node::Lit(Value::String(s)) => s.clone(),
            Node::Val(Value::String(s)) => s,
            other => other.to_json(),
        }
    }

    pub fn to_json(&self) -> String {
        self.view().to_json()
    }

    /// Append the JSON text of this node.
    pub fn write(&self, out: &mut Vec<u8>) {
        self.view().write(out)
    }

    pub fn view(&self) -> View<'_, 'd> {
        match self {
            Node::Lit(v) => View::Value(v),
            Node::Val(v) => View::Value(v),
            Node::Text(s) => View::Text(s),
            Node::Str(s) => View::Text(s),
            Node::Obj(m) => View::Members(m),
            Node::Arr(a) => View::Items(a),
        }
    }
}

/// A read-only look at a node, or at a value inside one: what the generated narratives and the
/// checks of the built document read.
#[derive(Debug, Clone, Copy)]
pub enum View<'a, 'd> {
    Value(&'a Value),
    /// an object being built
    Members(&'a [(&'d str, Node<'d>)]),
    /// an array being built
    Items(&'a [Node<'d>]),
    Text(&'a str),
}

impl<'a, 'd> View<'a, 'd> {
    pub fn get(self, key: &str) -> Option<View<'a, 'd>> {
        match self {
            View::Value(v) => v.get(key).map(View::Value),
            View::Members(m) => m.iter().find(|(k, _)| *k == key).map(|(_, n)| n.view()),
            _ => None,
        }
    }

    /// Element `i` of an array.
    pub fn at(self, i: usize) -> Option<View<'a, 'd>> {
        match self {
            View::Value(v) => v.get(i).map(View::Value),
            View::Items(a) => a.get(i).map(Node::view),
            _ => None,
        }
    }

    pub fn as_str(self) -> Option<&'a str> {
        match self {
            View::Value(v) => v.as_str(),
            View::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_array(self) -> bool {
        matches!(self, View::Value(Value::Array(_)) | View::Items(_))
    }

    /// The elements of an array.
    pub fn items(self) -> Option<Items<'a, 'd>> {
        match self {
            View::Value(Value::Array(a)) => Some(Items::Value(a.iter())),
            View::Items(a) => Some(Items::Node(a.iter())),
            _ => None,
        }
    }

    /// The members of an object, in order.
    pub fn members(self) -> Option<Entries<'a, 'd>> {
        match self {
            View::Value(Value::Object(m)) => Some(Entries::Value(m.iter())),
            View::Members(m) => Some(Entries::Node(m.iter())),
            _ => None,
        }
    }

    /// Append the JSON text (`Value`'s `Display`, `canon::to_json_string`'s octets).
    pub fn write(self, out: &mut Vec<u8>) {
        match self {
            View::Value(v) => write_json(out, v),
            View::Members(m) => write_object(out, m.iter().map(|(k, x)| (*k, x)), |o, x| x.write(o)),
            View::Items(a) => write_array(out, a, |o, x| x.write(o)),
            View::Text(s) => write_string(out, s),
        }
    }

    /// The JSON text.
    pub fn to_json(self) -> String {
        let mut out = Vec::new();
        self.write(&mut out);
        String::from_utf8(out).expect("JSON text is UTF-8")
    }
}

pub enum Items<'a, 'd> {
    Value(std::slice::Iter<'a, Value>),
    Node(std::slice::Iter<'a, Node<'d>>),
}

impl<'a, 'd> Iterator for Items<'a, 'd> {
    type Item = View<'a, 'd>;
    fn next(&mut self) -> Option<View<'a, 'd>> {
        match self {
            Items::Value(i) => i.next().map(View::Value),
            Items::Node(i) => i.next().map(Node::view),
        }
    }
}

pub enum Entries<'a, 'd> {
    Value(serde_json::map::Iter<'a>),
    Node(std::slice::Iter<'a, (&'d str, Node<'d>)>),
}

impl<'a, 'd> Iterator for Entries<'a, 'd> {
    type Item = (&'a str, View<'a, 'd>);
    fn next(&mut self) -> Option<(&'a str, View<'a, 'd>)> {
        match self {
            Entries::Value(i) => i.next().map(|(k, v)| (k.as_str(), View::Value(v))),
            Entries::Node(i) => i.next().map(|(k, n)| (*k, n.view())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_writes_what_the_equivalent_value_writes() {
        let lit = json!({"a": [1, 2.5, "x\n\"y\""], "b": null});
        let n = Node::Obj(vec![
            ("resourceType", Node::Text("Patient")),
            ("lit", Node::Lit(&lit)),
            ("val", Node::Val(json!(-3))),
            ("arr", Node::Arr(vec![Node::Str("é\u{1}".into()), Node::Obj(vec![])])),
        ]);
        let v = json!({"resourceType": "Patient", "lit": lit, "val": -3, "arr": ["é\u{1}", {}]});
        assert_eq!(n.to_json(), serde_json::to_string(&v).unwrap());
        assert_eq!(
            n.view().get("lit").and_then(|l| l.get("a")).and_then(|a| a.at(2)).and_then(View::as_str),
            Some("x\n\"y\"")
        );
        assert_eq!(n.view().get("arr").and_then(|a| a.items()).map(|i| i.count()), Some(2));
        let names: Vec<&str> = n.view().members().unwrap().map(|(k, _)| k).collect();
        assert_eq!(names, ["resourceType", "lit", "val", "arr"]);
    }

    #[test]
    fn set_replaces_in_place_and_take_keeps_the_order() {
        let mut m = vec![("a", Node::Text("1")), ("b", Node::Text("2")), ("c", Node::Text("3"))];
        set(&mut m, "a", Node::Text("9"));
        set(&mut m, "d", Node::Text("4"));
        assert!(take(&mut m, "b").is_some());
        assert_eq!(Node::Obj(m).to_json(), r#"{"a":"9","c":"3","d":"4"}"#);
    }
}
