//! Choosing which scenarios run: pytest-style `-k` expressions over names and tags, and
//! nextest-style `--partition` shards for spreading a suite over CI machines.
//!
//! Selection happens after loading (so a bad file is reported even when filtered out) and before
//! anything runs; `-k` applies first, then the partition, so every shard of a filtered run
//! agrees on what the whole run is.

use std::fmt;

use crate::scenario::Scenario;

/// A parsed `-k` expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// A word: matches when it is a substring of the name or equals a tag (case-insensitive).
    Word(String),
    /// `not X`.
    Not(Box<Expr>),
    /// `X and Y`.
    And(Box<Expr>, Box<Expr>),
    /// `X or Y`.
    Or(Box<Expr>, Box<Expr>),
}

/// A `-k` expression that could not be parsed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid -k expression `{expression}`: {problem}")]
pub struct ExprError {
    expression: String,
    problem: String,
}

/// Most words, operators and parentheses in one `-k` expression. Matching (and dropping) the
/// parsed tree recurses once per operator, so a bound on its size keeps a pasted or generated
/// expression from overflowing the stack; real filters have a few dozen.
pub const MAX_TOKENS: usize = 1000;

/// Most `(` and `not` one inside the other, which the parser itself recurses through.
pub const MAX_NESTING: usize = 100;

impl Expr {
    /// Parses `word`, `not x`, `a and b`, `a or b`, with parentheses; `not` binds tighter than
    /// `and`, which binds tighter than `or`, as in pytest.
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let tokens = tokenize(text);
        let error = |problem: String| {
            // A runaway expression is quoted by its start only.
            let mut expression: String = text.chars().take(80).collect();
            if expression.len() < text.len() {
                expression.push('…');
            }
            ExprError {
                expression,
                problem,
            }
        };
        if tokens.is_empty() {
            return Err(error("it is empty".to_string()));
        }
        if tokens.len() > MAX_TOKENS {
            return Err(error(format!(
                "it has {} words, operators and parentheses, and at most {MAX_TOKENS} are \
                 allowed",
                tokens.len()
            )));
        }
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
        };
        let expr = parser.or().map_err(error)?;
        match parser.tokens.get(parser.at) {
            None => Ok(expr),
            Some(token) => Err(error(format!("unexpected `{token}`"))),
        }
    }

    /// Whether a scenario with this name and these tags is selected.
    pub fn matches(&self, name: &str, tags: &[String]) -> bool {
        match self {
            Expr::Word(word) => {
                let word = word.to_lowercase();
                name.to_lowercase().contains(&word) || tags.iter().any(|t| t.to_lowercase() == word)
            }
            Expr::Not(inner) => !inner.matches(name, tags),
            Expr::And(a, b) => a.matches(name, tags) && b.matches(name, tags),
            Expr::Or(a, b) => a.matches(name, tags) || b.matches(name, tags),
        }
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_whitespace() || c == '(' || c == ')' {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if c != ' ' && !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    tokens
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
    /// `(` and `not` open around the token at `at`.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    /// Enters one more `(` or `not`, refusing more than [`MAX_NESTING`].
    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!(
                "`(` and `not` are nested more than {MAX_NESTING} deep"
            ));
        }
        self.at += 1;
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.peek() == Some("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.peek() == Some("not") {
            self.nest()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.peek() {
            None => Err("it ends where a name or tag was expected".to_string()),
            Some("(") => {
                self.nest()?;
                let inner = self.or()?;
                if self.peek() != Some(")") {
                    return Err("a `(` is not closed".to_string());
                }
                self.at += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some(token @ (")" | "and" | "or")) => {
                Err(format!("`{token}` where a name or tag was expected"))
            }
            Some(word) => {
                let word = word.to_string();
                self.at += 1;
                Ok(Expr::Word(word))
            }
        }
    }
}

/// `--partition`: which shard of the selected scenarios this run takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    /// `count:K/N`: every N-th scenario in run order, starting with the K-th. Even shard sizes;
    /// shards move when scenarios are added.
    Count { shard: u64, total: u64 },
    /// `hash:K/N`: by a hash of the scenario name. A scenario stays in its shard when others are
    /// added or removed; sizes are only even on average.
    Hash { shard: u64, total: u64 },
}

impl Partition {
    /// Parses `count:K/N` or `hash:K/N` with 1 ≤ K ≤ N.
    pub fn parse(text: &str) -> Result<Partition, String> {
        let bad =
            || format!("`{text}` is not a partition: write count:K/N or hash:K/N, e.g. hash:1/3");
        let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
        let (k, n) = rest.split_once('/').ok_or_else(bad)?;
        let shard: u64 = k.trim().parse().map_err(|_| bad())?;
        let total: u64 = n.trim().parse().map_err(|_| bad())?;
        if total == 0 || shard == 0 || shard > total {
            return Err(format!("`{text}`: the shard K must be between 1 and N"));
        }
        match kind {
            "count" => Ok(Partition::Count { shard, total }),
            "hash" => Ok(Partition::Hash { shard, total }),
            _ => Err(bad()),
        }
    }

    /// Whether the scenario at `index` (in run order) with this name belongs to this shard.
    pub fn contains(&self, index: usize, name: &str) -> bool {
        match *self {
            Partition::Count { shard, total } => index as u64 % total == shard - 1,
            Partition::Hash { shard, total } => fnv1a(name.as_bytes()) % total == shard - 1,
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::Count { shard, total } => write!(f, "count:{shard}/{total}"),
            Partition::Hash { shard, total } => write!(f, "hash:{shard}/{total}"),
        }
    }
}

/// 64-bit FNV-1a: stable across platforms, versions and runs (unlike std's hasher), which is
/// what a shard assignment shared by CI machines needs.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Applies `-k` then the partition, keeping run order.
pub fn select(
    scenarios: Vec<Scenario>,
    expr: Option<&Expr>,
    partition: Option<Partition>,
) -> Vec<Scenario> {
    let filtered = scenarios
        .into_iter()
        .filter(|s| expr.is_none_or(|e| e.matches(&s.name, &s.tags)));
    match partition {
        None => filtered.collect(),
        Some(p) => filtered
            .enumerate()
            .filter(|(index, s)| p.contains(*index, &s.name))
            .map(|(_, s)| s)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn words_match_name_substrings_and_whole_tags() {
        let e = Expr::parse("cache").unwrap();
        assert!(e.matches("lru-cache-bounded", &[]));
        assert!(e.matches("other", &tags(&["cache"])));
        assert!(!e.matches("other", &tags(&["caches"])));
        assert!(Expr::parse("LRU").unwrap().matches("lru-cache", &[]));
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let e = Expr::parse("a or b and not c").unwrap();
        assert_eq!(
            e,
            Expr::Or(
                Box::new(Expr::Word("a".into())),
                Box::new(Expr::And(
                    Box::new(Expr::Word("b".into())),
                    Box::new(Expr::Not(Box::new(Expr::Word("c".into()))))
                ))
            )
        );
        let e = Expr::parse("(cache or logging) and not clean").unwrap();
        assert!(e.matches("lru-cache-unbounded", &tags(&["cache"])));
        assert!(!e.matches("lru-cache-bounded", &tags(&["cache", "clean"])));
        assert!(e.matches("x", &tags(&["logging"])));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (text, problem) in [
            ("", "empty"),
            ("a and", "ends where"),
            ("(a or b", "not closed"),
            ("a b", "unexpected `b`"),
            ("or a", "`or` where"),
        ] {
            let err = Expr::parse(text).unwrap_err().to_string();
            assert!(err.contains(problem), "{text:?}: {err}");
        }
    }

    #[test]
    fn runaway_expressions_are_refused_before_they_overflow_the_stack() {
        // 20 000 nested parentheses once overflowed the parser's stack (abort, exit 134).
        let deep = format!("{}a{}", "(".repeat(20_000), ")".repeat(20_000));
        let err = Expr::parse(&deep).unwrap_err().to_string();
        assert!(err.contains("at most 1000 are allowed"), "{err}");
        assert!(
            err.len() < 400,
            "the expression is quoted by its start: {err}"
        );
        let nested = format!("{}a{}", "(".repeat(101), ")".repeat(101));
        let err = Expr::parse(&nested).unwrap_err().to_string();
        assert!(err.contains("nested more than 100 deep"), "{err}");
        let nots = format!("{}a", "not ".repeat(101));
        assert!(Expr::parse(&nots).is_err());
        // At the limits, they parse and match.
        let ok = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        assert!(Expr::parse(&ok).unwrap().matches("a", &[]));
        let chain = vec!["a"; 500].join(" or ");
        assert!(Expr::parse(&chain).unwrap().matches("xa", &[]));
    }

    #[test]
    fn partitions_parse_and_split_disjointly_and_completely() {
        assert!(Partition::parse("count:0/3").is_err());
        assert!(Partition::parse("count:4/3").is_err());
        assert!(Partition::parse("mod:1/3").is_err());
        let names: Vec<String> = (0..50).map(|i| format!("scenario-{i}")).collect();
        for kind in ["count", "hash"] {
            let mut seen = vec![0; names.len()];
            for k in 1..=3 {
                let p = Partition::parse(&format!("{kind}:{k}/3")).unwrap();
                for (i, name) in names.iter().enumerate() {
                    if p.contains(i, name) {
                        seen[i] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{kind}: {seen:?}");
        }
        // Hash shards do not depend on position.
        let p = Partition::parse("hash:2/3").unwrap();
        assert_eq!(p.contains(0, "x"), p.contains(17, "x"));
    }
}
