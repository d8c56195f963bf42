//! A YAML document as a tree of nodes that remember their line and column.
//!
//! Scenario files are the product's user interface, so every validation error must point at the
//! offending key or value. `serde_yaml_ng` parses with libyaml and knows each event's position,
//! but it only reveals a position through an error. This module uses that channel on purpose: the
//! visitor answers every scalar with a *probe* error, the deserializer stamps the scalar's mark on
//! it on the way out, and the enclosing map or sequence visitor catches the probe, reads the
//! position from it and carries on. The result is one parse, with positions straight from libyaml,
//! and a plain tree that the schema code can validate at its own pace (and report every problem
//! in a file, not only the first).
//!
//! The position is read from the error's `Display` text (`… at line L column C`), the only
//! channel a generic `Deserializer::Error` offers; the unit tests pin that format, so an upgrade of
//! `serde_yaml_ng` that changes it fails loudly instead of reporting wrong lines.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A 1-based position in the source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters as libyaml counts them.
    pub column: usize,
}

impl Pos {
    /// The first character of the file, for problems that have no better anchor.
    pub const START: Pos = Pos { line: 1, column: 1 };
}

/// A YAML value and where it starts.
///
/// Containers start at their first child (a block mapping's first key, a sequence's first item);
/// empty containers take the position of whatever precedes them, usually their key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value itself.
    pub value: Value,
}

/// The shapes a YAML value can take once libyaml and the YAML 1.2 core schema have resolved it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// `~`, `null` or nothing at all (`key:` with no value).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer; `i128` holds every integer libyaml can produce.
    Int(i128),
    /// A floating-point number, including `.inf` and `.nan`.
    Float(f64),
    /// Text, quoted or not.
    Str(String),
    /// A sequence (`- a` or `[a, b]`).
    Seq(Vec<Node>),
    /// A mapping, in source order; duplicate keys are kept so the schema can report them.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// Describes the value for "expected X, found Y" messages, e.g. `string "many"`.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "an empty value".to_string(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Int(i) => format!("integer `{i}`"),
            // `1e300` as written, not its 301 digits.
            Value::Float(f) if f.is_finite() && *f != 0.0 && !(1e-4..1e16).contains(&f.abs()) => {
                format!("number `{f:e}`")
            }
            Value::Float(f) => format!("number `{f}`"),
            Value::Str(s) => {
                const MAX: usize = 40;
                if s.chars().count() > MAX {
                    let head: String = s.chars().take(MAX).collect();
                    format!("string {:?}", format!("{head}…"))
                } else {
                    format!("string {s:?}")
                }
            }
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
        }
    }
}

/// Why a file could not be read as a YAML tree.
#[derive(Debug, PartialEq)]
pub(crate) struct SyntaxError {
    /// Where libyaml gave up, when it says.
    pub pos: Option<Pos>,
    /// What went wrong, without the position (the caller prints that itself).
    pub message: String,
}

/// What a file contains at the top level.
#[derive(Debug, PartialEq)]
pub(crate) enum Document {
    /// Nothing but whitespace, comments or an explicit null.
    Empty,
    /// One YAML document.
    Node(Node),
}

/// Parses `source` (one YAML document) into a positioned tree.
pub(crate) fn parse(source: &str) -> Result<Document, SyntaxError> {
    check_flow_nesting(source)?;
    let mut documents = serde_yaml_ng::Deserializer::from_str(source);
    let Some(first) = documents.next() else {
        return Ok(Document::Empty);
    };
    let mut builder = Builder {
        last: Pos::START,
        scalar: None,
        expanded: 0,
    };
    let result = NodeSeed {
        builder: &mut builder,
    }
    .deserialize(first);
    let node = finish(&mut builder, result, Pos::START).map_err(|err| syntax_error(&err))?;
    if documents.next().is_some() {
        return Err(SyntaxError {
            pos: second_document_pos(source),
            message: "the file holds more than one YAML document (`---`): keep one, and list \
                      several scenarios under `scenarios:`"
                .to_string(),
        });
    }
    Ok(match node.value {
        Value::Null => Document::Empty,
        _ => Document::Node(node),
    })
}

/// Deepest flow nesting (`[` and `{`) accepted before parsing. The deserializer stops at 128
/// levels anyway, but only after libyaml has scanned the whole file, which takes time quadratic in
/// the depth (minutes for `[` repeated 100 000 times).
const MAX_FLOW_DEPTH: usize = 1000;

/// Refuses text whose brackets nest deeper than [`MAX_FLOW_DEPTH`], counted naively (quotes
/// and comments included, which can only overcount: no real scenario file comes near).
fn check_flow_nesting(source: &str) -> Result<(), SyntaxError> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1, 0);
    for c in source.chars() {
        column += 1;
        match c {
            '\n' => (line, column) = (line + 1, 0),
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(SyntaxError {
                        pos: Some(Pos { line, column }),
                        message: format!(
                            "brackets (`[`, `{{`) nest more than {MAX_FLOW_DEPTH} levels deep"
                        ),
                    });
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Message of the probe error; the control characters keep it from clashing with real text.
const PROBE: &str = "\u{1}leakcheck-position-probe\u{1}";

/// Most bytes of text (plus one per value) a document may expand to. Without aliases a document
/// holds at most its own length, and files are limited to 10 MiB; an alias (`*name`) repeats its
/// anchor's whole value, so 2 000 aliases of a 4 MB string would be 8 GB, built before any check.
pub(crate) const MAX_EXPANDED_BYTES: usize = 16 << 20;

/// Message for a document that expands past [`MAX_EXPANDED_BYTES`].
const EXPANDS_TOO_FAR: &str = "the document expands to more than 16 MiB of values: YAML aliases \
                               (`*name`) repeat the whole value of their anchor (`&name`); \
                               write shared text once, in `defaults:` or a Python module";

/// Message for YAML tags (`!foo bar`), which scenario files have no use for.
const TAGS_UNSUPPORTED: &str = "YAML tags (`!name`) are not supported in scenario files";

/// State shared by the nested visitors of one parse.
struct Builder {
    /// Position of the most recent scalar, used for empty containers.
    last: Pos,
    /// The scalar a visitor saw just before it raised the probe error.
    scalar: Option<Value>,
    /// Bytes of text and values built so far, aliases expanded (see [`MAX_EXPANDED_BYTES`]).
    expanded: usize,
}

impl Builder {
    /// Counts `bytes` more of the document, refusing to go past [`MAX_EXPANDED_BYTES`].
    fn spend<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        self.expanded = self.expanded.saturating_add(bytes).saturating_add(1);
        if self.expanded > MAX_EXPANDED_BYTES {
            return Err(E::custom(EXPANDS_TOO_FAR));
        }
        Ok(())
    }
}

/// Deserializes one node; containers come back as `Ok`, scalars as a probe error.
struct NodeSeed<'b> {
    builder: &'b mut Builder,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(NodeVisitor {
            builder: self.builder,
        })
    }
}

/// Turns the outcome of a [`NodeSeed`] into a node: catches the probe of a scalar and reads its
/// position, or places a container at its first child; real errors pass through.
fn finish<E: de::Error>(
    builder: &mut Builder,
    result: Result<Value, E>,
    before: Pos,
) -> Result<Node, E> {
    match result {
        Ok(value) => {
            let first_child = match &value {
                Value::Seq(items) => items.first().map(|n| n.pos),
                Value::Map(entries) => entries.first().map(|(k, _)| k.pos),
                _ => None,
            };
            Ok(Node {
                pos: first_child.unwrap_or(before),
                value,
            })
        }
        Err(err) => {
            let Some(value) = builder.scalar.take() else {
                return Err(err);
            };
            let Some(pos) = probe_pos(&err.to_string()) else {
                return Err(err);
            };
            builder.last = pos;
            Ok(Node { pos, value })
        }
    }
}

/// Reads the position out of a probe error's text: `[path: ]PROBE[ at line L column C]`.
///
/// serde_yaml_ng leaves out the position when it is the very first character of the input.
fn probe_pos(text: &str) -> Option<Pos> {
    let rest = &text[text.rfind(PROBE)? + PROBE.len()..];
    if rest.is_empty() {
        return Some(Pos::START);
    }
    let (line, column) = rest.strip_prefix(" at line ")?.split_once(" column ")?;
    Some(Pos {
        line: line.parse().ok()?,
        column: column.parse().ok()?,
    })
}

struct NodeVisitor<'b> {
    builder: &'b mut Builder,
}

impl NodeVisitor<'_> {
    /// Records a scalar and raises the probe so the deserializer attaches the scalar's position.
    fn scalar<E: de::Error>(self, value: Value) -> Result<Value, E> {
        self.builder.spend(0)?;
        self.builder.scalar = Some(value);
        Err(E::custom(PROBE))
    }
}

impl<'de> Visitor<'de> for NodeVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.scalar(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.scalar(Value::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.scalar(Value::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        self.scalar(Value::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        // Beyond i128 only a float can hold it; no scenario key accepts such a number anyway.
        let value = i128::try_from(v).map_or(Value::Float(v as f64), Value::Int);
        self.scalar(value)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.scalar(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        // Counted before the copy: the copies are what an alias bomb multiplies.
        self.builder.spend(v.len())?;
        self.scalar(Value::Str(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.scalar(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.scalar(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.builder.spend(0)?;
        let mut items = Vec::new();
        loop {
            let before = self.builder.last;
            let result = match seq.next_element_seed(NodeSeed {
                builder: self.builder,
            }) {
                Ok(None) => break,
                Ok(Some(value)) => Ok(value),
                Err(err) => Err(err),
            };
            items.push(finish(self.builder, result, before)?);
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.builder.spend(0)?;
        let mut entries = Vec::new();
        loop {
            let before = self.builder.last;
            let result = match map.next_key_seed(NodeSeed {
                builder: self.builder,
            }) {
                Ok(None) => break,
                Ok(Some(value)) => Ok(value),
                Err(err) => Err(err),
            };
            let key = finish(self.builder, result, before)?;
            let before = self.builder.last;
            let result = map.next_value_seed(NodeSeed {
                builder: self.builder,
            });
            let value = finish(self.builder, result, before)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _data: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(TAGS_UNSUPPORTED))
    }
}

/// Turns a real (non-probe) parse error into a message without the position suffix.
fn syntax_error(err: &serde_yaml_ng::Error) -> SyntaxError {
    let text = err.to_string();
    if let Some(known) = [TAGS_UNSUPPORTED, EXPANDS_TOO_FAR]
        .into_iter()
        .find(|known| text.contains(known))
    {
        return SyntaxError {
            pos: err.location().map(|l| Pos {
                line: l.line(),
                column: l.column(),
            }),
            message: known.to_string(),
        };
    }
    match err.location() {
        Some(location) => {
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            SyntaxError {
                pos: Some(Pos {
                    line: location.line(),
                    column: location.column(),
                }),
                message: format!("invalid YAML: {}", text.replacen(&suffix, "", 1)),
            }
        }
        None => SyntaxError {
            pos: None,
            message: format!("invalid YAML: {text}"),
        },
    }
}

/// Finds the `---` that starts a second document, to point at it.
fn second_document_pos(source: &str) -> Option<Pos> {
    let mut seen_content = false;
    for (index, line) in source.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if marker && seen_content {
            return Some(Pos {
                line: index + 1,
                column: 1,
            });
        }
        let rest = if marker { &line[3..] } else { line }.trim();
        if !rest.is_empty() && !rest.starts_with('#') && !rest.starts_with('%') {
            seen_content = true;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(source: &str) -> Node {
        match parse(source) {
            Ok(Document::Node(node)) => node,
            other => panic!("expected a node, got {other:?}"),
        }
    }

    fn map(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("expected a mapping, got {other:?}"),
        }
    }

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn scalars_carry_their_positions() {
        let doc = node("name: leak\niterations: 200\nrate: 1.5\nok: true\nnothing:\n");
        let entries = map(&doc);
        assert_eq!(doc.pos, at(1, 1));
        assert_eq!(entries[0].0.pos, at(1, 1));
        assert_eq!(
            entries[0].1,
            Node {
                pos: at(1, 7),
                value: Value::Str("leak".into())
            }
        );
        assert_eq!(entries[1].0.pos, at(2, 1));
        assert_eq!(
            entries[1].1,
            Node {
                pos: at(2, 13),
                value: Value::Int(200)
            }
        );
        assert_eq!(entries[2].1.value, Value::Float(1.5));
        assert_eq!(entries[3].1.value, Value::Bool(true));
        assert_eq!(entries[4].1.value, Value::Null);
        assert_eq!(entries[4].1.pos.line, 5);
    }

    #[test]
    fn nested_containers_start_at_their_first_child() {
        let doc = node(
            "# comment\nscenarios:\n  - name: a\n    run: |\n      x = 1\n  -\n    name: b\n    gate: []\n    tags: [x, y]\n",
        );
        let (key, list) = &map(&doc)[0];
        assert_eq!(key.pos, at(2, 1));
        let Value::Seq(items) = &list.value else {
            panic!("expected a list")
        };
        assert_eq!(items[0].pos, at(3, 5));
        let first = map(&items[0]);
        assert_eq!(
            first[1].1,
            Node {
                pos: at(4, 10),
                value: Value::Str("x = 1\n".into())
            }
        );
        assert_eq!(items[1].pos, at(7, 5));
        let second = map(&items[1]);
        // An empty list has no child: it sits where its key is.
        assert_eq!(
            second[1].1,
            Node {
                pos: at(8, 5),
                value: Value::Seq(vec![])
            }
        );
        let Value::Seq(tags) = &second[2].1.value else {
            panic!("expected a list")
        };
        assert_eq!(tags[1].pos, at(9, 15));
    }

    #[test]
    fn scalar_at_the_very_start_is_line_one() {
        // serde_yaml_ng prints no position for offset 0; the probe must still read it as 1:1.
        assert_eq!(
            node("hello"),
            Node {
                pos: at(1, 1),
                value: Value::Str("hello".into())
            }
        );
    }

    #[test]
    fn empty_inputs_are_empty_documents() {
        assert_eq!(parse(""), Ok(Document::Empty));
        assert_eq!(parse("# only a comment\n\n"), Ok(Document::Empty));
        assert_eq!(parse("---\n"), Ok(Document::Empty));
        assert_eq!(parse("~\n"), Ok(Document::Empty));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("name: a\nrun: [1, 2\n").unwrap_err();
        assert_eq!(err.pos.map(|p| p.line), Some(3));
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
        assert!(!err.message.contains(" at line 3"), "{}", err.message);

        let err = parse("name: a\n  run: x\n").unwrap_err();
        assert_eq!(err.pos, Some(at(2, 6)));
        assert!(
            err.message.contains("mapping values are not allowed"),
            "{}",
            err.message
        );
    }

    #[test]
    fn aliases_are_refused_once_they_expand_past_the_limit() {
        // 2 000 aliases of a 1 MB string: 2 GB expanded, from a 1 MB file.
        let big = "A".repeat(1 << 20);
        let mut source = format!("a: &x \"{big}\"\nb: [");
        source.push_str(&vec!["*x"; 2000].join(", "));
        source.push_str("]\n");
        let err = parse(&source).unwrap_err();
        assert!(
            err.message
                .starts_with("the document expands to more than 16 MiB"),
            "{}",
            err.message
        );
        // At the anchor whose copies went over (libyaml replays its events, marks included).
        assert_eq!(err.pos, Some(at(1, 4)), "{err:?}");
        // A few aliases of it are fine.
        let source = format!("a: &x \"{big}\"\nb: [*x, *x, *x]\n");
        assert!(parse(&source).is_ok());
    }

    #[test]
    fn duplicate_keys_are_kept_for_the_schema_to_report() {
        let doc = node("a: 1\na: 2\n");
        assert_eq!(map(&doc).len(), 2);
    }

    #[test]
    fn aliases_resolve_to_their_anchor() {
        let doc = node("x: &v 5\ny: *v\n");
        assert_eq!(map(&doc)[1].1.value, Value::Int(5));
    }

    #[test]
    fn tags_and_several_documents_are_rejected() {
        let err = parse("name: !weird a\n").unwrap_err();
        assert_eq!(err.message, TAGS_UNSUPPORTED);
        assert_eq!(err.pos.map(|p| p.line), Some(1));

        let err = parse("name: a\n---\nname: b\n").unwrap_err();
        assert!(
            err.message.contains("more than one YAML document"),
            "{}",
            err.message
        );
        assert_eq!(err.pos, Some(at(2, 1)));

        let err = parse("---\nname: a\n--- \nname: b\n").unwrap_err();
        assert_eq!(err.pos, Some(at(3, 1)));
    }

    #[test]
    fn long_strings_are_shortened_in_descriptions() {
        let long = "x".repeat(100);
        let described = Value::Str(long).describe();
        assert!(described.len() < 60, "{described}");
        assert_eq!(Value::Str("many".into()).describe(), "string \"many\"");
    }
}
