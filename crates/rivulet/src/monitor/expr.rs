//! CloudWatch metric math: parsing and evaluation of the `Expression` of a
//! `GetMetricData` query or of a metric-math alarm.
//!
//! The language follows the "Metric math syntax and functions" section of the
//! CloudWatch User Guide:
//!
//! * Query ids start with a lower-case letter and contain `[a-zA-Z0-9_]`.
//!   Function names are upper-case and case-sensitive (`SUM`, not `sum`).
//! * A value is a scalar, a time series, or an array of time series
//!   ([`Value`]). Arrays are written `[e1, e2, ...]`; an element that is
//!   itself an array (`[METRICS("4xx"), METRICS("5xx")]`) is flattened.
//! * Arithmetic (`+ - * / ^`) between two series is point-wise on the
//!   timestamps both series have: a timestamp missing from either side is
//!   dropped from the result. (The User Guide says missing values are "treated
//!   as 0"; Rivulet drops them instead, and `FILL(x, 0)` gives the zero
//!   behaviour explicitly.) A scalar operand is broadcast to every point, and
//!   an array operand applies the operation to each of its series.
//! * Comparison (`== != < <= > >=`) and logical (`AND`/`&&`, `OR`/`||`)
//!   operators yield 0 or 1. Between two series, a value missing on one side
//!   counts as 0, as the User Guide specifies for these operators.
//! * A non-finite result (division by zero, `LOG(0)`, `(-1)^0.5`, ...) yields
//!   no datapoint at that timestamp, as CloudWatch does.
//!
//! Precedence, loosest first: `OR`, `AND`, comparisons, `+ -`, `* /`,
//! unary `-`, `^` (right-associative). So `-2^2` is `-4` and `2^3^2` is `512`.
//!
//! Supported functions: `ABS AVG CEIL DATAPOINT_COUNT DIFF DIFF_TIME FILL
//! FIRST LAST FLOOR IF LOG LOG10 MAX METRIC_COUNT METRICS MIN PERIOD RATE
//! REMOVE_EMPTY RUNNING_SUM SLICE SORT STDDEV SUM TIME_SERIES` and the time
//! functions `MINUTE HOUR DAY DATE MONTH YEAR EPOCH`. `ANOMALY_DETECTION_BAND`,
//! `SEARCH`, `SERVICE_QUOTA`, `INSIGHT_RULE_METRIC` and `LAMBDA` are recognised
//! but rejected as unsupported.
//!
//! Errors are plain `String`s meant to be returned to the client; syntax errors
//! carry the 1-based character position of the offending token.

use std::collections::BTreeMap;
use std::fmt;

/// Longest accepted expression, in characters.
const MAX_LEN: usize = 2048;
/// Deepest accepted nesting of parentheses, arrays, calls, unary minus and `^`.
const MAX_DEPTH: usize = 64;

/// One time series: parallel vectors of ascending timestamps (epoch seconds)
/// and values.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeSeries {
    pub label: String,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

/// The value of an expression or sub-expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Series(TimeSeries),
    Array(Vec<TimeSeries>),
}

/// What an expression can see while it is evaluated.
pub trait Env {
    /// The result of the query with this id (a MetricStat or another
    /// expression), `None` if unknown.
    fn series(&self, id: &str) -> Option<Value>;
    /// Ids of the MetricStat queries, in request order (for `METRICS()`).
    fn metric_ids(&self) -> Vec<String>;
    /// The timestamps of the requested grid (start..end by period), for `FILL`
    /// and the other functions that produce non-sparse series.
    fn grid(&self) -> Vec<i64>;
    /// The period of the request, for `PERIOD()`.
    fn period_seconds(&self) -> i64;
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    root: Node,
}

impl Expr {
    /// The query ids the expression references directly (not through
    /// `METRICS()`), without duplicates, in order of first appearance.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        self.root.visit(&mut |node| {
            if let Node::Id(id) = node
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        });
        ids
    }

    /// Whether the expression calls `METRICS`, i.e. depends on every MetricStat
    /// query of the request.
    pub fn uses_metrics_fn(&self) -> bool {
        let mut found = false;
        self.root.visit(&mut |node| {
            if let Node::Call(name, _) = node {
                found |= name == "METRICS";
            }
        });
        found
    }
}

// ---------------------------------------------------------------------------
// Syntax tree
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    fn apply(self, a: f64, b: f64) -> f64 {
        let truth = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Pow => a.powf(b),
            BinOp::Eq => truth(a == b),
            BinOp::Ne => truth(a != b),
            BinOp::Lt => truth(a < b),
            BinOp::Le => truth(a <= b),
            BinOp::Gt => truth(a > b),
            BinOp::Ge => truth(a >= b),
            BinOp::And => truth(is_true(a) && is_true(b)),
            BinOp::Or => truth(is_true(a) || is_true(b)),
        }
    }

    /// Arithmetic keeps only the timestamps both series have; comparison and
    /// logical operators count a missing value as 0.
    fn missing_is_zero(self) -> bool {
        !matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Pow
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Num(f64),
    /// A string literal and its position; only valid as the argument of
    /// `METRICS`.
    Str(String, usize),
    Id(String),
    /// A bare upper-case word (`REPEAT`, `ASC`, ...) and its position; only
    /// valid in specific argument slots of `FILL` and `SORT`.
    Keyword(String, usize),
    Neg(Box<Node>),
    /// A left-associative chain `first op1 x1 op2 x2 ...` of operators of one
    /// precedence level. Kept flat rather than as nested binary nodes so that
    /// the depth of the tree (and of every recursion over it, including the
    /// derived `Clone` and `Drop`) is bounded by the parser's nesting limit,
    /// however long the chain.
    Chain(Box<Node>, Vec<(BinOp, Node)>),
    /// `base ^ exponent` (right-associative, so nested on the right).
    Pow(Box<Node>, Box<Node>),
    Array(Vec<Node>),
    Call(String, Vec<Node>),
}

impl Node {
    /// Calls `f` on this node and every node below it, in pre-order.
    fn visit(&self, f: &mut dyn FnMut(&Node)) {
        f(self);
        for child in self.children() {
            child.visit(f);
        }
    }

    /// The direct sub-expressions, left to right.
    fn children(&self) -> Vec<&Node> {
        match self {
            Node::Neg(x) => vec![x],
            Node::Chain(first, rest) => std::iter::once(first.as_ref())
                .chain(rest.iter().map(|(_, x)| x))
                .collect(),
            Node::Pow(base, exponent) => vec![base, exponent],
            Node::Array(items) | Node::Call(_, items) => items.iter().collect(),
            Node::Num(_) | Node::Str(..) | Node::Id(_) | Node::Keyword(..) => vec![],
        }
    }
}

/// Supported functions with their minimum and maximum number of arguments.
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("ABS", 1, 1),
    ("AVG", 1, 1),
    ("CEIL", 1, 1),
    ("DATAPOINT_COUNT", 1, 1),
    ("DATE", 1, 1),
    ("DAY", 1, 1),
    ("DIFF", 1, 1),
    ("DIFF_TIME", 1, 1),
    ("EPOCH", 1, 1),
    ("FILL", 2, 2),
    ("FIRST", 1, 1),
    ("FLOOR", 1, 1),
    ("HOUR", 1, 1),
    ("IF", 2, 3),
    ("LAST", 1, 1),
    ("LOG", 1, 1),
    ("LOG10", 1, 1),
    ("MAX", 1, 1),
    ("METRICS", 0, 1),
    ("METRIC_COUNT", 1, 1),
    ("MIN", 1, 1),
    ("MINUTE", 1, 1),
    ("MONTH", 1, 1),
    ("PERIOD", 1, 1),
    ("RATE", 1, 1),
    ("REMOVE_EMPTY", 1, 1),
    ("RUNNING_SUM", 1, 1),
    ("SLICE", 2, 3),
    ("SORT", 3, 4),
    ("STDDEV", 1, 1),
    ("SUM", 1, 1),
    ("TIME_SERIES", 1, 1),
    ("YEAR", 1, 1),
];

/// CloudWatch functions Rivulet recognises but does not implement.
const UNSUPPORTED: &[&str] = &[
    "ANOMALY_DETECTION_BAND",
    "INSIGHT_RULE_METRIC",
    "LAMBDA",
    "SEARCH",
    "SERVICE_QUOTA",
];

/// Bare words accepted by the parser (validated by position afterwards).
const KEYWORDS: &[&str] = &[
    "REPEAT", "LINEAR", "ASC", "DESC", "AVG", "MIN", "MAX", "SUM",
];

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    /// Identifier starting with a lower-case letter: a query id.
    Id(String),
    /// Identifier starting with an upper-case letter: a function or keyword.
    Name(String),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let symbol = match self {
            Tok::Num(n) => return write!(f, "number {n}"),
            Tok::Id(s) | Tok::Name(s) => return write!(f, "'{s}'"),
            Tok::Str(_) => return f.write_str("string literal"),
            Tok::End => return f.write_str("end of expression"),
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::Comma => ",",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Caret => "^",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::And => "AND",
            Tok::Or => "OR",
        };
        write!(f, "'{symbol}'")
    }
}

struct Token {
    tok: Tok,
    /// 1-based character position in the expression.
    pos: usize,
}

fn syntax_error(pos: usize, msg: impl fmt::Display) -> String {
    format!("syntax error at position {pos}: {msg}")
}

fn lex(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let at = |i: usize| chars.get(i).copied();
    let is_digit = |i: usize| at(i).is_some_and(|c| c.is_ascii_digit());
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        let pos = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = if c.is_ascii_digit() || (c == '.' && is_digit(i + 1)) {
            // digits [. digits] [(e|E) [+|-] digits]
            let start = i;
            while is_digit(i) {
                i += 1;
            }
            if at(i) == Some('.') {
                i += 1;
                while is_digit(i) {
                    i += 1;
                }
            }
            if matches!(at(i), Some('e' | 'E')) {
                let sign = usize::from(matches!(at(i + 1), Some('+' | '-')));
                if is_digit(i + 1 + sign) {
                    i += 1 + sign;
                    while is_digit(i) {
                        i += 1;
                    }
                }
            }
            // `2m1` or `1.2.3` is one malformed token, not two valid ones.
            while at(i).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Tok::Num(v),
                Ok(_) => return Err(syntax_error(pos, format!("number '{s}' is out of range"))),
                Err(_) => return Err(syntax_error(pos, format!("invalid number '{s}'"))),
            }
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while at(i).is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if c.is_ascii_lowercase() {
                Tok::Id(word)
            } else {
                match word.as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    _ => Tok::Name(word),
                }
            }
        } else if c == '"' || c == '\u{201C}' {
            // Straight or curly quotes (the User Guide itself shows both). No
            // escapes: the literal ends at the next closing quote.
            let start = i + 1;
            let len = chars[start..]
                .iter()
                .position(|&q| q == '"' || q == '\u{201D}')
                .ok_or_else(|| syntax_error(pos, "unterminated string literal"))?;
            i = start + len + 1;
            Tok::Str(chars[start..start + len].iter().collect())
        } else {
            let next = at(i + 1);
            let (tok, len) = match (c, next) {
                ('=', Some('=')) => (Tok::Eq, 2),
                ('!', Some('=')) => (Tok::Ne, 2),
                ('<', Some('=')) => (Tok::Le, 2),
                ('>', Some('=')) => (Tok::Ge, 2),
                ('&', Some('&')) => (Tok::And, 2),
                ('|', Some('|')) => (Tok::Or, 2),
                ('<', _) => (Tok::Lt, 1),
                ('>', _) => (Tok::Gt, 1),
                ('(', _) => (Tok::LParen, 1),
                (')', _) => (Tok::RParen, 1),
                ('[', _) => (Tok::LBracket, 1),
                (']', _) => (Tok::RBracket, 1),
                (',', _) => (Tok::Comma, 1),
                ('+', _) => (Tok::Plus, 1),
                ('-', _) => (Tok::Minus, 1),
                ('*', _) => (Tok::Star, 1),
                ('/', _) => (Tok::Slash, 1),
                ('^', _) => (Tok::Caret, 1),
                ('=', _) => return Err(syntax_error(pos, "unexpected '=' (did you mean '=='?)")),
                _ => return Err(syntax_error(pos, format!("unexpected character '{c}'"))),
            };
            i += len;
            tok
        };
        tokens.push(Token { tok, pos });
    }
    tokens.push(Token {
        tok: Tok::End,
        pos: n + 1,
    });
    Ok(tokens)
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// Parses a metric math expression.
pub fn parse(text: &str) -> Result<Expr, String> {
    let len = text.chars().count();
    if len > MAX_LEN {
        return Err(format!(
            "expression is too long ({len} characters; the maximum is {MAX_LEN})"
        ));
    }
    if text.trim().is_empty() {
        return Err("expression is empty".to_string());
    }
    let mut parser = Parser {
        tokens: lex(text)?,
        next: 0,
        depth: 0,
    };
    let root = parser.parse_or()?;
    if parser.peek() != &Tok::End {
        return Err(parser.unexpected("an operator"));
    }
    check_placement(&root)?;
    Ok(Expr { root })
}

struct Parser {
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.next].tok
    }

    fn pos(&self) -> usize {
        self.tokens[self.next].pos
    }

    fn bump(&mut self) -> Tok {
        let tok = self.tokens[self.next].tok.clone();
        if tok != Tok::End {
            self.next += 1;
        }
        tok
    }

    fn unexpected(&self, wanted: &str) -> String {
        syntax_error(
            self.pos(),
            format!("expected {wanted}, found {}", self.peek()),
        )
    }

    fn expect(&mut self, tok: Tok) -> Result<(), String> {
        if *self.peek() == tok {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(&tok.to_string()))
        }
    }

    /// Runs `f` one nesting level deeper, failing past [`MAX_DEPTH`]. This
    /// bounds the recursion of the parser (and of everything that later walks
    /// the tree) for parentheses, arrays, calls, unary minus and `^`.
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        if self.depth >= MAX_DEPTH {
            return Err(syntax_error(
                self.pos(),
                format!("expression is nested too deeply (the maximum depth is {MAX_DEPTH})"),
            ));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    /// Parses a left-associative chain of the operators `ops` over operands
    /// parsed by `operand`.
    fn binary_chain(
        &mut self,
        ops: &[(Tok, BinOp)],
        operand: fn(&mut Self) -> Result<Node, String>,
    ) -> Result<Node, String> {
        let first = operand(self)?;
        let mut rest = Vec::new();
        while let Some(&(_, op)) = ops.iter().find(|(tok, _)| tok == self.peek()) {
            self.bump();
            rest.push((op, operand(self)?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Node::Chain(Box::new(first), rest)
        })
    }

    fn parse_or(&mut self) -> Result<Node, String> {
        self.binary_chain(&[(Tok::Or, BinOp::Or)], Self::parse_and)
    }

    fn parse_and(&mut self) -> Result<Node, String> {
        self.binary_chain(&[(Tok::And, BinOp::And)], Self::parse_comparison)
    }

    fn parse_comparison(&mut self) -> Result<Node, String> {
        let ops = [
            (Tok::Eq, BinOp::Eq),
            (Tok::Ne, BinOp::Ne),
            (Tok::Lt, BinOp::Lt),
            (Tok::Le, BinOp::Le),
            (Tok::Gt, BinOp::Gt),
            (Tok::Ge, BinOp::Ge),
        ];
        self.binary_chain(&ops, Self::parse_additive)
    }

    fn parse_additive(&mut self) -> Result<Node, String> {
        self.binary_chain(
            &[(Tok::Plus, BinOp::Add), (Tok::Minus, BinOp::Sub)],
            Self::parse_term,
        )
    }

    fn parse_term(&mut self) -> Result<Node, String> {
        self.binary_chain(
            &[(Tok::Star, BinOp::Mul), (Tok::Slash, BinOp::Div)],
            Self::parse_unary,
        )
    }

    fn parse_unary(&mut self) -> Result<Node, String> {
        if *self.peek() == Tok::Minus {
            self.bump();
            let operand = self.nested(Self::parse_unary)?;
            // Fold negative literals so that `-5` stays a plain number.
            return Ok(match operand {
                Node::Num(v) => Node::Num(-v),
                other => Node::Neg(Box::new(other)),
            });
        }
        self.parse_power()
    }

    fn parse_power(&mut self) -> Result<Node, String> {
        let base = self.parse_primary()?;
        if *self.peek() != Tok::Caret {
            return Ok(base);
        }
        self.bump();
        // Right-associative, and the exponent may carry a unary minus: `2^-1`.
        let exponent = self.nested(Self::parse_unary)?;
        Ok(Node::Pow(Box::new(base), Box::new(exponent)))
    }

    fn parse_primary(&mut self) -> Result<Node, String> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Num(v) => {
                self.bump();
                Ok(Node::Num(v))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Node::Str(s, pos))
            }
            Tok::Id(id) => {
                self.bump();
                if *self.peek() == Tok::LParen {
                    return Err(syntax_error(
                        pos,
                        format!("unknown function '{id}' (function names are upper-case)"),
                    ));
                }
                Ok(Node::Id(id))
            }
            Tok::Name(name) => {
                self.bump();
                if *self.peek() == Tok::LParen {
                    self.parse_call(name, pos)
                } else if KEYWORDS.contains(&name.as_str()) {
                    Ok(Node::Keyword(name, pos))
                } else {
                    Err(syntax_error(
                        pos,
                        format!(
                            "unexpected '{name}': query ids must start with a lower-case letter \
                             and function calls need parentheses"
                        ),
                    ))
                }
            }
            Tok::LParen => {
                self.bump();
                let inner = self.nested(Self::parse_or)?;
                self.expect(Tok::RParen)?;
                Ok(inner)
            }
            Tok::LBracket => {
                self.bump();
                if *self.peek() == Tok::RBracket {
                    return Err(syntax_error(pos, "an array needs at least one element"));
                }
                let items = self.nested(|p| p.parse_list(Tok::RBracket))?;
                Ok(Node::Array(items))
            }
            _ => Err(self.unexpected("a number, a query id, a function call, '(' or '['")),
        }
    }

    /// Parses `e1, e2, ...` up to and including `close`.
    fn parse_list(&mut self, close: Tok) -> Result<Vec<Node>, String> {
        let mut items = Vec::new();
        if *self.peek() == close {
            self.bump();
            return Ok(items);
        }
        loop {
            items.push(self.parse_or()?);
            if *self.peek() == Tok::Comma {
                self.bump();
            } else if *self.peek() == close {
                self.bump();
                return Ok(items);
            } else {
                return Err(self.unexpected(&format!("',' or {close}")));
            }
        }
    }

    /// Parses the argument list of `name` (at `pos`) and checks the function
    /// exists and gets an acceptable number and shape of arguments.
    fn parse_call(&mut self, name: String, pos: usize) -> Result<Node, String> {
        if UNSUPPORTED.contains(&name.as_str()) {
            return Err(syntax_error(
                pos,
                format!("function {name} is not supported"),
            ));
        }
        let Some(&(_, min, max)) = FUNCTIONS.iter().find(|(f, ..)| *f == name) else {
            return Err(syntax_error(pos, format!("unknown function '{name}'")));
        };
        self.expect(Tok::LParen)?;
        let args = self.nested(|p| p.parse_list(Tok::RParen))?;
        if args.len() < min || args.len() > max {
            let expected = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, b) if b == a + 1 => format!("{a} or {b}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(syntax_error(
                pos,
                format!("{name} takes {expected} argument(s), got {}", args.len()),
            ));
        }
        let bad_arg = |msg: &str| Err(syntax_error(pos, format!("{name}: {msg}")));
        match name.as_str() {
            "METRICS" if args.first().is_some_and(|a| !matches!(a, Node::Str(..))) => {
                return bad_arg("the argument must be a string literal, e.g. METRICS(\"errors\")");
            }
            "SORT" if !matches!(&args[1], Node::Keyword(k, _) if is_sort_stat(k)) => {
                return bad_arg("the second argument must be AVG, MIN, MAX or SUM");
            }
            "SORT" if !matches!(&args[2], Node::Keyword(k, _) if k == "ASC" || k == "DESC") => {
                return bad_arg("the third argument must be ASC or DESC");
            }
            _ => {}
        }
        Ok(Node::Call(name, args))
    }
}

fn is_sort_stat(word: &str) -> bool {
    matches!(word, "AVG" | "MIN" | "MAX" | "SUM")
}

/// Whether a string literal or keyword may stand as argument `index` of `func`.
fn literal_allowed(func: &str, index: usize, node: &Node) -> bool {
    match (func, index, node) {
        ("METRICS", 0, Node::Str(..)) => true,
        ("FILL", 1, Node::Keyword(k, _)) => k == "REPEAT" || k == "LINEAR",
        ("SORT", 1, Node::Keyword(k, _)) => is_sort_stat(k),
        ("SORT", 2, Node::Keyword(k, _)) => k == "ASC" || k == "DESC",
        _ => false,
    }
}

/// Rejects string literals and keywords outside the argument slots that
/// accept them.
fn check_placement(node: &Node) -> Result<(), String> {
    match node {
        Node::Str(_, pos) => Err(syntax_error(
            *pos,
            "a string literal is only valid as the argument of METRICS",
        )),
        Node::Keyword(word, pos) => {
            let msg = match word.as_str() {
                "REPEAT" | "LINEAR" => {
                    format!("{word} is only valid as the second argument of FILL")
                }
                "ASC" | "DESC" => format!("{word} is only valid as the third argument of SORT"),
                _ => format!("{word} needs an argument list, e.g. {word}(m1)"),
            };
            Err(syntax_error(*pos, msg))
        }
        Node::Call(name, args) => args
            .iter()
            .enumerate()
            .filter(|(i, arg)| !literal_allowed(name, *i, arg))
            .try_for_each(|(_, arg)| check_placement(arg)),
        _ => node.children().into_iter().try_for_each(check_placement),
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

/// Evaluates a parsed expression against `env`.
pub fn eval(expr: &Expr, env: &dyn Env) -> Result<Value, String> {
    eval_node(&expr.root, env)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Scalar(_) => "a scalar",
        Value::Series(_) => "a time series",
        Value::Array(_) => "an array of time series",
    }
}

/// CloudWatch truthiness: any value other than 0 is true. NaN (e.g. the
/// average of an empty series) is treated as false.
fn is_true(v: f64) -> bool {
    v != 0.0 && !v.is_nan()
}

fn eval_node(node: &Node, env: &dyn Env) -> Result<Value, String> {
    match node {
        Node::Num(v) => Ok(Value::Scalar(*v)),
        Node::Id(id) => lookup(id, env),
        // `check_placement` keeps these out of evaluated positions.
        Node::Str(..) => Err("a string literal is only valid as the argument of METRICS".into()),
        Node::Keyword(word, _) => Err(format!("{word} is not valid here")),
        Node::Neg(x) => Ok(map_values(eval_node(x, env)?, |v| -v)),
        Node::Chain(first, rest) => {
            let mut acc = eval_node(first, env)?;
            for (op, operand) in rest {
                acc = combine(*op, acc, eval_node(operand, env)?)?;
            }
            Ok(acc)
        }
        Node::Pow(base, exponent) => {
            combine(BinOp::Pow, eval_node(base, env)?, eval_node(exponent, env)?)
        }
        Node::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match eval_node(item, env)? {
                    Value::Series(s) => out.push(s),
                    Value::Array(xs) => out.extend(xs),
                    Value::Scalar(_) => {
                        return Err("array elements must be time series, got a scalar".into());
                    }
                }
            }
            Ok(Value::Array(out))
        }
        Node::Call(name, args) => call(name, args, env),
    }
}

/// The value of query `id`, with its series normalised.
fn lookup(id: &str, env: &dyn Env) -> Result<Value, String> {
    match env.series(id) {
        None => Err(format!("unknown id '{id}'")),
        Some(Value::Series(s)) => Ok(Value::Series(normalize(s))),
        Some(Value::Array(xs)) => Ok(Value::Array(xs.into_iter().map(normalize).collect())),
        Some(scalar) => Ok(scalar),
    }
}

/// Makes a series safe for the merge loops below: equal-length vectors,
/// timestamps ascending.
fn normalize(mut s: TimeSeries) -> TimeSeries {
    let n = s.timestamps.len().min(s.values.len());
    s.timestamps.truncate(n);
    s.values.truncate(n);
    if !s.timestamps.is_sorted() {
        let mut points: Vec<(i64, f64)> = s.timestamps.iter().copied().zip(s.values).collect();
        points.sort_by_key(|&(t, _)| t);
        (s.timestamps, s.values) = points.into_iter().unzip();
    }
    s
}

/// Builds a series from points, dropping non-finite values.
fn collect_series(label: &str, points: impl IntoIterator<Item = (i64, f64)>) -> TimeSeries {
    let (timestamps, values) = points.into_iter().filter(|(_, v)| v.is_finite()).unzip();
    TimeSeries {
        label: label.to_string(),
        timestamps,
        values,
    }
}

fn points(s: &TimeSeries) -> impl Iterator<Item = (i64, f64)> + '_ {
    s.timestamps.iter().copied().zip(s.values.iter().copied())
}

/// The value of `s` at `t`, if it has one.
fn value_at(s: &TimeSeries, t: i64) -> Option<f64> {
    s.timestamps.binary_search(&t).ok().map(|i| s.values[i])
}

/// Applies `f` to a scalar or to every point of a series or array.
fn map_values(value: Value, f: impl Fn(f64) -> f64) -> Value {
    let map = |s: &TimeSeries| collect_series(&s.label, points(s).map(|(t, v)| (t, f(v))));
    match value {
        Value::Scalar(v) => Value::Scalar(f(v)),
        Value::Series(s) => Value::Series(map(&s)),
        Value::Array(xs) => Value::Array(xs.iter().map(map).collect()),
    }
}

/// Applies a series transformation to a series or to each series of an
/// array; scalars are rejected.
fn map_series(
    name: &str,
    value: Value,
    f: impl Fn(&TimeSeries) -> TimeSeries,
) -> Result<Value, String> {
    match value {
        Value::Series(s) => Ok(Value::Series(f(&s))),
        Value::Array(xs) => Ok(Value::Array(xs.iter().map(f).collect())),
        Value::Scalar(_) => Err(format!(
            "{name}: expected a time series or an array of time series, got a scalar"
        )),
    }
}

/// A series or array as a list of series (a single series is an array of
/// one), for the functions that work on arrays.
fn as_array(name: &str, value: Value) -> Result<Vec<TimeSeries>, String> {
    match value {
        Value::Array(xs) => Ok(xs),
        Value::Series(s) => Ok(vec![s]),
        Value::Scalar(_) => Err(format!(
            "{name}: expected an array of time series, got a scalar"
        )),
    }
}

fn expect_scalar(name: &str, value: Value) -> Result<f64, String> {
    match value {
        Value::Scalar(v) => Ok(v),
        other => Err(format!("{name}: expected a scalar, got {}", kind(&other))),
    }
}

/// `op` between a series and a scalar; `scalar_first` tells the operand order.
fn series_scalar(op: BinOp, s: &TimeSeries, k: f64, scalar_first: bool) -> TimeSeries {
    let f = |v: f64| {
        if scalar_first {
            op.apply(k, v)
        } else {
            op.apply(v, k)
        }
    };
    collect_series(&s.label, points(s).map(|(t, v)| (t, f(v))))
}

/// `op` between two series, merged on timestamps. Keeps the label of `a`.
fn series_series(op: BinOp, a: &TimeSeries, b: &TimeSeries) -> TimeSeries {
    let zero_fill = op.missing_is_zero();
    let mut out = Vec::with_capacity(a.timestamps.len().max(b.timestamps.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.timestamps.len() || j < b.timestamps.len() {
        let ta = a.timestamps.get(i).copied().unwrap_or(i64::MAX);
        let tb = b.timestamps.get(j).copied().unwrap_or(i64::MAX);
        // Either both sides have the earliest pending timestamp, or only one
        // does and the other's value is missing.
        let (t, va, vb) = if ta == tb {
            i += 1;
            j += 1;
            (ta, Some(a.values[i - 1]), Some(b.values[j - 1]))
        } else if ta < tb {
            i += 1;
            (ta, Some(a.values[i - 1]), None)
        } else {
            j += 1;
            (tb, None, Some(b.values[j - 1]))
        };
        match (va, vb) {
            (Some(x), Some(y)) => out.push((t, op.apply(x, y))),
            (x, y) if zero_fill => out.push((t, op.apply(x.unwrap_or(0.0), y.unwrap_or(0.0)))),
            _ => {}
        }
    }
    collect_series(&a.label, out)
}

fn combine(op: BinOp, left: Value, right: Value) -> Result<Value, String> {
    use Value::{Array, Scalar, Series};
    Ok(match (left, right) {
        (Scalar(a), Scalar(b)) => Scalar(op.apply(a, b)),
        (Series(a), Scalar(b)) => Series(series_scalar(op, &a, b, false)),
        (Scalar(a), Series(b)) => Series(series_scalar(op, &b, a, true)),
        (Series(a), Series(b)) => Series(series_series(op, &a, &b)),
        (Array(xs), Scalar(b)) => {
            Array(xs.iter().map(|x| series_scalar(op, x, b, false)).collect())
        }
        (Scalar(a), Array(ys)) => Array(ys.iter().map(|y| series_scalar(op, y, a, true)).collect()),
        (Array(xs), Series(b)) => Array(xs.iter().map(|x| series_series(op, x, &b)).collect()),
        (Series(a), Array(ys)) => Array(ys.iter().map(|y| series_series(op, &a, y)).collect()),
        (Array(xs), Array(ys)) => {
            if xs.len() != ys.len() {
                return Err(format!(
                    "cannot combine arrays of {} and {} time series",
                    xs.len(),
                    ys.len()
                ));
            }
            Array(
                xs.iter()
                    .zip(&ys)
                    .map(|(x, y)| series_series(op, x, y))
                    .collect(),
            )
        }
    })
}

/// Statistics of `SUM`, `AVG`, `MIN`, `MAX`, `STDDEV` and `DATAPOINT_COUNT`
/// (and the sort keys of `SORT`).
#[derive(Clone, Copy)]
enum Stat {
    Sum,
    Avg,
    Min,
    Max,
    StdDev,
    Count,
}

impl Stat {
    fn from_name(name: &str) -> Option<Stat> {
        Some(match name {
            "SUM" => Stat::Sum,
            "AVG" => Stat::Avg,
            "MIN" => Stat::Min,
            "MAX" => Stat::Max,
            "STDDEV" => Stat::StdDev,
            "DATAPOINT_COUNT" => Stat::Count,
            _ => return None,
        })
    }

    /// The statistic of `values`. Of no values, SUM and DATAPOINT_COUNT are
    /// 0 and the others NaN (so they produce no datapoint when used later).
    fn of(self, values: &[f64]) -> f64 {
        let n = values.len() as f64;
        let sum: f64 = values.iter().sum();
        if values.is_empty() && !matches!(self, Stat::Sum | Stat::Count) {
            return f64::NAN;
        }
        match self {
            Stat::Sum => sum,
            Stat::Count => n,
            Stat::Avg => sum / n,
            Stat::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Stat::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            // Population standard deviation.
            Stat::StdDev => {
                let mean = sum / n;
                (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
            }
        }
    }
}

/// `SUM(x)` and friends: over a single series, a scalar of all its points;
/// over an array, one series holding at each timestamp the statistic of the
/// values the array's series have there. A series without a value at that
/// timestamp does not take part. (The User Guide's entry for `AVG` says
/// missing values are "treated as 0"; Rivulet skips them for every statistic
/// alike, so `AVG`, `MIN` and `MAX` agree on which values exist.)
fn reduce(name: &str, args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let stat = Stat::from_name(name).expect("a statistic function");
    match eval_node(&args[0], env)? {
        Value::Series(s) => Ok(Value::Scalar(stat.of(&s.values))),
        Value::Array(xs) => {
            let mut by_time: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for (t, v) in xs.iter().flat_map(points) {
                by_time.entry(t).or_default().push(v);
            }
            let out = by_time.into_iter().map(|(t, vs)| (t, stat.of(&vs)));
            Ok(Value::Series(collect_series("", out)))
        }
        Value::Scalar(_) => Err(format!(
            "{name}: expected a time series or an array of time series, got a scalar"
        )),
    }
}

/// A series built from each pair of consecutive points (the first point has
/// no predecessor and yields nothing).
fn pairwise(s: &TimeSeries, f: impl Fn((i64, f64), (i64, f64)) -> f64) -> TimeSeries {
    let pts: Vec<(i64, f64)> = points(s).collect();
    collect_series(&s.label, pts.windows(2).map(|w| (w[1].0, f(w[0], w[1]))))
}

fn running_sum(s: &TimeSeries) -> TimeSeries {
    let mut total = 0.0;
    collect_series(
        &s.label,
        points(s).map(|(t, v)| {
            total += v;
            (t, total)
        }),
    )
}

/// The sorted union of two ascending timestamp lists.
fn merge_timestamps(a: &[i64], b: &[i64]) -> Vec<i64> {
    let mut out: Vec<i64> = a.iter().chain(b).copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// How `FILL` fills a missing timestamp.
enum Filler {
    Constant(f64),
    /// The other series' value at that timestamp, if it has one.
    Series(TimeSeries),
    /// The most recent actual value before the gap, if any.
    Repeat,
    /// Linear interpolation between the actual values around the gap; gaps at
    /// either end of the series stay empty.
    Linear,
}

/// The series over the union of its own timestamps and the request grid,
/// with every missing timestamp filled by `filler`.
fn fill(s: &TimeSeries, filler: &Filler, grid: &[i64]) -> TimeSeries {
    let n = s.timestamps.len();
    let mut out = Vec::new();
    // `next` is the index of the first point of `s` not yet emitted; since the
    // loop visits every timestamp of `s` in order, the points before and after
    // a gap are `next - 1` and `next`.
    let mut next = 0;
    for t in merge_timestamps(&s.timestamps, grid) {
        if next < n && s.timestamps[next] == t {
            out.push((t, s.values[next]));
            next += 1;
            continue;
        }
        let filled = match filler {
            Filler::Constant(k) => Some(*k),
            Filler::Series(other) => value_at(other, t),
            Filler::Repeat => next.checked_sub(1).map(|p| s.values[p]),
            Filler::Linear if next > 0 && next < n => {
                let (t0, v0) = (s.timestamps[next - 1], s.values[next - 1]);
                let (t1, v1) = (s.timestamps[next], s.values[next]);
                Some(v0 + (v1 - v0) * (t - t0) as f64 / (t1 - t0) as f64)
            }
            Filler::Linear => None,
        };
        if let Some(v) = filled {
            out.push((t, v));
        }
    }
    collect_series(&s.label, out)
}

/// (year, month, day) of a day count since 1970-01-01 (`clock::civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let (y, m, d) = crate::clock::civil_from_days(days);
    (y, m.into(), d.into())
}

/// The value of the time function `name` (UTC) at epoch second `t`.
fn time_part(name: &str, t: i64) -> f64 {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (year, month, date) = civil_from_days(days);
    (match name {
        "MINUTE" => secs / 60 % 60,
        "HOUR" => secs / 3600,
        // ISO day of week: Monday is 1, Sunday 7; 1970-01-01 was a Thursday.
        "DAY" => (days + 3).rem_euclid(7) + 1,
        "DATE" => date,
        "MONTH" => month,
        "YEAR" => year,
        _ => t, // EPOCH
    }) as f64
}

/// Evaluates a function call. Each family of functions has its own small
/// function, which keeps this frame small: calls nest, and unoptimised builds
/// give a function one stack slot per temporary of every match arm.
fn call(name: &str, args: &[Node], env: &dyn Env) -> Result<Value, String> {
    match name {
        "METRICS" => metrics(args, env),
        "ABS" | "CEIL" | "FLOOR" | "LOG" | "LOG10" => element_wise(name, args, env),
        "SUM" | "AVG" | "MIN" | "MAX" | "STDDEV" | "DATAPOINT_COUNT" => reduce(name, args, env),
        "DIFF" | "DIFF_TIME" | "RATE" | "RUNNING_SUM" => consecutive(name, args, env),
        "FILL" => fill_function(args, env),
        "MINUTE" | "HOUR" | "DAY" | "DATE" | "MONTH" | "YEAR" | "EPOCH" => {
            time_function(name, args, env)
        }
        "PERIOD" => period(args, env),
        "TIME_SERIES" => time_series(args, env),
        "FIRST" | "LAST" | "METRIC_COUNT" | "REMOVE_EMPTY" | "SLICE" => {
            array_function(name, args, env)
        }
        "SORT" => sort(args, env),
        "IF" => if_function(args, env),
        _ => Err(format!("unknown function '{name}'")),
    }
}

/// `METRICS()` and `METRICS("filter")`: the MetricStat queries (whose id
/// contains the filter), in request order.
fn metrics(args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let filter = match args.first() {
        Some(Node::Str(s, _)) => Some(s.as_str()),
        _ => None,
    };
    let mut out = Vec::new();
    for id in env.metric_ids() {
        if filter.is_some_and(|f| !id.contains(f)) {
            continue;
        }
        match lookup(&id, env)? {
            Value::Series(s) => out.push(s),
            Value::Array(xs) => out.extend(xs),
            Value::Scalar(_) => return Err(format!("METRICS: query '{id}' is a scalar")),
        }
    }
    Ok(Value::Array(out))
}

/// `ABS`, `CEIL`, `FLOOR`, `LOG` (natural) and `LOG10`, point by point.
fn element_wise(name: &str, args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let f: fn(f64) -> f64 = match name {
        "ABS" => f64::abs,
        "CEIL" => f64::ceil,
        "FLOOR" => f64::floor,
        "LOG" => f64::ln,
        _ => f64::log10,
    };
    Ok(map_values(eval_node(&args[0], env)?, f))
}

/// `DIFF`, `DIFF_TIME`, `RATE` and `RUNNING_SUM`, which look at consecutive
/// points of each series.
fn consecutive(name: &str, args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let value = eval_node(&args[0], env)?;
    match name {
        "DIFF" => map_series(name, value, |s| pairwise(s, |(_, a), (_, b)| b - a)),
        "DIFF_TIME" => map_series(name, value, |s| {
            pairwise(s, |(ta, _), (tb, _)| (tb - ta) as f64)
        }),
        // Per-second rate of change: (v[i] - v[i-1]) / (t[i] - t[i-1]).
        "RATE" => map_series(name, value, |s| {
            pairwise(s, |(ta, a), (tb, b)| (b - a) / (tb - ta) as f64)
        }),
        _ => map_series(name, value, running_sum),
    }
}

/// `FILL(x, value | REPEAT | LINEAR)`.
fn fill_function(args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let filler = match &args[1] {
        Node::Keyword(k, _) if k == "REPEAT" => Filler::Repeat,
        Node::Keyword(k, _) if k == "LINEAR" => Filler::Linear,
        node => match eval_node(node, env)? {
            Value::Scalar(k) => Filler::Constant(k),
            Value::Series(s) => Filler::Series(s),
            Value::Array(_) => {
                let msg = "FILL: the fill value must be a scalar, a time series, REPEAT or LINEAR";
                return Err(format!("{msg}, got an array of time series"));
            }
        },
    };
    let grid = merge_timestamps(&env.grid(), &[]);
    map_series("FILL", eval_node(&args[0], env)?, |s| {
        fill(s, &filler, &grid)
    })
}

/// `MINUTE`, `HOUR`, `DAY`, `DATE`, `MONTH`, `YEAR` and `EPOCH`: non-sparse
/// series over the request grid (and the series' own timestamps) whose
/// values depend only on the timestamp.
fn time_function(name: &str, args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let grid = merge_timestamps(&env.grid(), &[]);
    map_series(name, eval_node(&args[0], env)?, |s| {
        let stamps = merge_timestamps(&s.timestamps, &grid);
        collect_series(
            &s.label,
            stamps.into_iter().map(|t| (t, time_part(name, t))),
        )
    })
}

/// `PERIOD(x)`: the period of the request, in seconds.
fn period(args: &[Node], env: &dyn Env) -> Result<Value, String> {
    match eval_node(&args[0], env)? {
        Value::Series(_) => Ok(Value::Scalar(env.period_seconds() as f64)),
        other => Err(format!(
            "PERIOD: expected a time series, got {}",
            kind(&other)
        )),
    }
}

/// `TIME_SERIES(s)`: the scalar at every timestamp of the request grid.
fn time_series(args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let k = expect_scalar("TIME_SERIES", eval_node(&args[0], env)?)?;
    Ok(Value::Series(collect_series(
        "",
        env.grid().into_iter().map(|t| (t, k)),
    )))
}

/// `FIRST`, `LAST`, `METRIC_COUNT`, `REMOVE_EMPTY` and `SLICE`.
fn array_function(name: &str, args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let mut xs = as_array(name, eval_node(&args[0], env)?)?;
    Ok(match name {
        // An empty array (e.g. METRICS("x") matching nothing) gives an empty
        // series rather than failing the whole request.
        "FIRST" => Value::Series(
            xs.into_iter()
                .next()
                .unwrap_or_else(|| collect_series("", [])),
        ),
        "LAST" => Value::Series(xs.pop().unwrap_or_else(|| collect_series("", []))),
        "METRIC_COUNT" => Value::Scalar(xs.len() as f64),
        "REMOVE_EMPTY" => Value::Array(
            xs.into_iter()
                .filter(|s| !s.timestamps.is_empty())
                .collect(),
        ),
        _ => {
            // SLICE: zero-based, start inclusive, end exclusive, clamped.
            let index = |node: &Node| -> Result<usize, String> {
                let v = expect_scalar(name, eval_node(node, env)?)?;
                Ok(if v.is_nan() || v < 0.0 {
                    0
                } else {
                    (v as usize).min(xs.len())
                })
            };
            let start = index(&args[1])?;
            let end = args.get(2).map(index).transpose()?.unwrap_or(xs.len());
            xs.truncate(end);
            Value::Array(xs.split_off(start.min(xs.len())))
        }
    })
}

/// `SORT(array, AVG|MIN|MAX|SUM, ASC|DESC[, limit])`. Series whose statistic
/// is undefined (empty series) go last in either order; ties keep their
/// order.
fn sort(args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let keyword = |i: usize| match &args[i] {
        Node::Keyword(k, _) => k.as_str(),
        _ => "",
    };
    let stat = Stat::from_name(keyword(1))
        .ok_or("SORT: the second argument must be AVG, MIN, MAX or SUM")?;
    let descending = keyword(2) == "DESC";
    let xs = as_array("SORT", eval_node(&args[0], env)?)?;
    let mut keyed: Vec<(f64, TimeSeries)> =
        xs.into_iter().map(|s| (stat.of(&s.values), s)).collect();
    keyed.sort_by(|(a, _), (b, _)| match (a.is_nan(), b.is_nan()) {
        (false, false) if descending => b.total_cmp(a),
        (false, false) => a.total_cmp(b),
        (a_nan, b_nan) => a_nan.cmp(&b_nan),
    });
    let mut sorted: Vec<TimeSeries> = keyed.into_iter().map(|(_, s)| s).collect();
    if let Some(limit) = args.get(3) {
        let limit = expect_scalar("SORT", eval_node(limit, env)?)?;
        sorted.truncate(if limit.is_nan() || limit < 0.0 {
            0
        } else {
            limit as usize
        });
    }
    Ok(Value::Array(sorted))
}

/// `IF(condition, true_value[, false_value])`, following the User Guide:
///
/// * a scalar condition picks one of the values whole (no false value gives
///   an empty series);
/// * a series condition yields, at each of its timestamps, the true value
///   (0 if the true series has no point there) or the false value (no point
///   if the false series has none there or it was omitted).
fn if_function(args: &[Node], env: &dyn Env) -> Result<Value, String> {
    let branch = |i: usize| -> Result<Option<Value>, String> {
        match args.get(i).map(|node| eval_node(node, env)).transpose()? {
            Some(Value::Array(_)) => Err(
                "IF: the values must be scalars or time series, got an array of time series".into(),
            ),
            other => Ok(other),
        }
    };
    let condition = eval_node(&args[0], env)?;
    let when_true = branch(1)?.expect("IF has at least two arguments");
    let when_false = branch(2)?;
    match condition {
        Value::Scalar(c) if is_true(c) => Ok(when_true),
        Value::Scalar(_) => Ok(when_false.unwrap_or_else(|| Value::Series(collect_series("", [])))),
        Value::Series(cond) => {
            let label = match (&when_true, &when_false) {
                (Value::Series(s), _) | (_, Some(Value::Series(s))) => s.label.clone(),
                _ => cond.label.clone(),
            };
            let out = points(&cond).filter_map(|(t, c)| {
                let v = if is_true(c) {
                    match &when_true {
                        Value::Series(s) => Some(value_at(s, t).unwrap_or(0.0)),
                        other => Some(scalar_of(other)),
                    }
                } else {
                    match &when_false {
                        Some(Value::Series(s)) => value_at(s, t),
                        Some(other) => Some(scalar_of(other)),
                        None => None,
                    }
                };
                v.map(|v| (t, v))
            });
            Ok(Value::Series(collect_series(&label, out)))
        }
        Value::Array(_) => Err(
            "IF: the condition must be a scalar or a time series, got an array of time series"
                .into(),
        ),
    }
}

/// The number in a value already known to be a scalar.
fn scalar_of(value: &Value) -> f64 {
    match value {
        Value::Scalar(v) => *v,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct TestEnv {
        values: HashMap<String, Value>,
        metrics: Vec<String>,
        grid: Vec<i64>,
        period: i64,
    }

    impl Env for TestEnv {
        fn series(&self, id: &str) -> Option<Value> {
            self.values.get(id).cloned()
        }
        fn metric_ids(&self) -> Vec<String> {
            self.metrics.clone()
        }
        fn grid(&self) -> Vec<i64> {
            self.grid.clone()
        }
        fn period_seconds(&self) -> i64 {
            self.period
        }
    }

    fn ts(label: &str, points: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            label: label.to_string(),
            timestamps: points.iter().map(|p| p.0).collect(),
            values: points.iter().map(|p| p.1).collect(),
        }
    }

    /// A series on the 60 s grid 0, 60, 120, ...: `None` marks a gap.
    fn grid_series(label: &str, values: &[Option<f64>]) -> TimeSeries {
        let points: Vec<(i64, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as i64 * 60, v)))
            .collect();
        ts(label, &points)
    }

    /// m1, m2, m3 are MetricStat queries on a 5-point 60 s grid, with gaps;
    /// `e1` is an expression result; `other` is a metric without an "m".
    fn env() -> TestEnv {
        let mut values = HashMap::new();
        let m1 = grid_series(
            "m1",
            &[Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0)],
        );
        let m2 = grid_series("m2", &[Some(10.0), None, Some(30.0), None, Some(50.0)]);
        let m3 = grid_series("m3", &[None, Some(200.0), Some(300.0), None, None]);
        values.insert("m1".to_string(), Value::Series(m1.clone()));
        values.insert("m2".to_string(), Value::Series(m2));
        values.insert("m3".to_string(), Value::Series(m3));
        values.insert("other".to_string(), Value::Series(ts("other", &[(0, 7.0)])));
        values.insert("e1".to_string(), Value::Series(m1));
        values.insert("scalar_e".to_string(), Value::Scalar(2.5));
        TestEnv {
            values,
            metrics: vec!["m1".into(), "other".into(), "m2".into(), "m3".into()],
            grid: vec![0, 60, 120, 180, 240],
            period: 60,
        }
    }

    fn run_in(env: &TestEnv, text: &str) -> Result<Value, String> {
        eval(&parse(text)?, env)
    }

    fn run(text: &str) -> Value {
        run_in(&env(), text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn scalar(text: &str) -> f64 {
        match run(text) {
            Value::Scalar(v) => v,
            other => panic!("{text}: expected a scalar, got {other:?}"),
        }
    }

    fn series(text: &str) -> TimeSeries {
        match run(text) {
            Value::Series(s) => s,
            other => panic!("{text}: expected a series, got {other:?}"),
        }
    }

    fn array(text: &str) -> Vec<TimeSeries> {
        match run(text) {
            Value::Array(xs) => xs,
            other => panic!("{text}: expected an array, got {other:?}"),
        }
    }

    fn pts(s: &TimeSeries) -> Vec<(i64, f64)> {
        points(s).collect()
    }

    fn err(text: &str) -> String {
        match run_in(&env(), text) {
            Err(e) => e,
            Ok(v) => panic!("{text}: expected an error, got {v:?}"),
        }
    }

    fn assert_close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(scalar("1 + 2 * 3"), 7.0);
        assert_eq!(scalar("(1 + 2) * 3"), 9.0);
        assert_eq!(scalar("10 - 4 - 3"), 3.0);
        assert_eq!(scalar("8 / 4 / 2"), 1.0);
        assert_eq!(scalar("2 ^ 3 ^ 2"), 512.0);
        assert_eq!(scalar("-2 ^ 2"), -4.0);
        assert_eq!(scalar("(-2) ^ 2"), 4.0);
        assert_eq!(scalar("2 ^ -1"), 0.5);
        assert_eq!(scalar("2 * -3"), -6.0);
        assert_eq!(scalar("1 - -1"), 2.0);
        assert_eq!(scalar("--3"), 3.0);
        assert_eq!(scalar("2 * 3 ^ 2"), 18.0);
        assert_eq!(scalar("1 + 2 < 4"), 1.0);
        assert_eq!(scalar("1 < 2 AND 3 < 2 OR 1"), 1.0);
        assert_eq!(scalar("0 OR 1 && 0"), 0.0);
        assert_eq!(scalar("2 == 2"), 1.0);
        assert_eq!(scalar("2 != 2"), 0.0);
        assert_eq!(scalar("3 >= 3 && 3 <= 3 && 4 > 3"), 1.0);
    }

    #[test]
    fn number_literals() {
        assert_eq!(scalar("1.5e2"), 150.0);
        assert_eq!(scalar(".5"), 0.5);
        assert_eq!(scalar("1E-1"), 0.1);
        assert_eq!(scalar("2."), 2.0);
        assert_eq!(scalar("  42  "), 42.0);
    }

    #[test]
    fn series_arithmetic_is_pointwise_on_common_timestamps() {
        let s = series("m1 + m2");
        assert_eq!(pts(&s), vec![(0, 11.0), (120, 33.0), (240, 55.0)]);
        assert_eq!(s.label, "m1");
        assert_eq!(
            pts(&series("m2 - m1")),
            vec![(0, 9.0), (120, 27.0), (240, 45.0)]
        );
        assert_eq!(series("m2 - m1").label, "m2");
        assert!(
            pts(&series("m2 * (m3 - m3 + m2)"))
                .iter()
                .all(|&(t, _)| t % 120 == 0)
        );
    }

    #[test]
    fn scalar_broadcast_and_labels() {
        let s = series("5 * m1");
        assert_eq!(s.values, vec![5.0, 10.0, 15.0, 20.0, 25.0]);
        assert_eq!(s.label, "m1");
        assert_eq!(series("m1 / 2").values, vec![0.5, 1.0, 1.5, 2.0, 2.5]);
        assert_eq!(series("10 - m2").values, vec![0.0, -20.0, -40.0]);
        assert_eq!(series("m1 ^ 2").values, vec![1.0, 4.0, 9.0, 16.0, 25.0]);
        assert_eq!(series("-m1").values, vec![-1.0, -2.0, -3.0, -4.0, -5.0]);
        assert_eq!(
            series("m1 * scalar_e").values,
            vec![2.5, 5.0, 7.5, 10.0, 12.5]
        );
    }

    #[test]
    fn non_finite_results_are_dropped() {
        // m1 - 3 is 0 at t=120: 1/0 has no datapoint there.
        let s = series("1 / (m1 - 3)");
        assert_eq!(s.timestamps, vec![0, 60, 180, 240]);
        assert_eq!(s.values, vec![-0.5, -1.0, 1.0, 0.5]);
        assert!(series("m1 / 0").timestamps.is_empty());
        assert!(series("(m1 - m1) / (m1 - m1)").timestamps.is_empty());
        // A NaN scalar (AVG of an empty series) wipes out every point.
        assert!(series("m1 + AVG(m1 / 0)").timestamps.is_empty());
        assert!(scalar("1 / 0").is_infinite());
    }

    #[test]
    fn array_broadcasting() {
        let xs = array("[m1, m2] * 10");
        assert_eq!(xs.len(), 2);
        assert_eq!(xs[0].values, vec![10.0, 20.0, 30.0, 40.0, 50.0]);
        assert_eq!(pts(&xs[1]), vec![(0, 100.0), (120, 300.0), (240, 500.0)]);
        assert_eq!(xs[1].label, "m2");

        let xs = array("100 / [m1, m2]");
        assert_eq!(xs[0].values, vec![100.0, 50.0, 100.0 / 3.0, 25.0, 20.0]);
        assert_eq!(xs[1].label, "m2");

        // Array op series: each element against the series.
        let xs = array("[m1, m3] + m2");
        assert_eq!(pts(&xs[0]), vec![(0, 11.0), (120, 33.0), (240, 55.0)]);
        assert_eq!(pts(&xs[1]), vec![(120, 330.0)]);
        let xs = array("m2 - [m1, m3]");
        assert_eq!(pts(&xs[0]), vec![(0, 9.0), (120, 27.0), (240, 45.0)]);

        // Arrays of the same length combine pairwise.
        let xs = array("[m1, m2] + [m1, m2]");
        assert_eq!(xs[0].values, vec![2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(xs[1].values, vec![20.0, 60.0, 100.0]);
        assert!(err("[m1, m2] + [m1]").contains("cannot combine arrays of 2 and 1"));

        let xs = array("-[m1, m2]");
        assert_eq!(xs[1].values, vec![-10.0, -30.0, -50.0]);
        assert_eq!(
            pts(&series("SUM(-[m1, m2])")),
            pts(&series("-SUM([m1, m2])"))
        );
        // Nested arrays are flattened.
        assert_eq!(array("[m1, [m2, m3]]").len(), 3);
        assert_eq!(array("[METRICS(\"m1\"), METRICS(\"m3\")]").len(), 2);
        assert_eq!(array("METRICS() / 100").len(), 4);
    }

    #[test]
    fn metrics_function() {
        let all = array("METRICS()");
        let labels: Vec<&str> = all.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, vec!["m1", "other", "m2", "m3"]);
        // Expression ids (e1) are not included; filtering is by substring of
        // the id.
        let labels: Vec<String> = array("METRICS(\"m\")")
            .into_iter()
            .map(|s| s.label)
            .collect();
        assert_eq!(labels, vec!["m1", "m2", "m3"]);
        assert_eq!(array("METRICS(\"th\")")[0].label, "other");
        assert_eq!(array("METRICS(\u{201C}m2\u{201D})")[0].label, "m2");
        assert!(array("METRICS(\"zzz\")").is_empty());
        assert_eq!(array("METRICS(\"\")").len(), 4);
    }

    #[test]
    fn sum_of_metrics_with_gaps() {
        let mut env = env();
        env.metrics = vec!["m1".into(), "m2".into(), "m3".into()];
        let Value::Series(s) = run_in(&env, "SUM(METRICS())").unwrap() else {
            panic!()
        };
        // Each timestamp sums the values present there.
        assert_eq!(
            pts(&s),
            vec![
                (0, 11.0),
                (60, 202.0),
                (120, 333.0),
                (180, 4.0),
                (240, 55.0)
            ]
        );
        assert_eq!(pts(&series("SUM(METRICS(\"m\"))")), pts(&s));
        assert!(series("SUM(METRICS(\"nothing\"))").timestamps.is_empty());
    }

    #[test]
    fn array_reductions() {
        assert_eq!(
            pts(&series("AVG([m1, m2, m3])")),
            vec![(0, 5.5), (60, 101.0), (120, 111.0), (180, 4.0), (240, 27.5)]
        );
        assert_eq!(
            pts(&series("MIN([m1, m2, m3])")),
            vec![(0, 1.0), (60, 2.0), (120, 3.0), (180, 4.0), (240, 5.0)]
        );
        assert_eq!(
            pts(&series("MAX([m1, m2, m3])")),
            vec![
                (0, 10.0),
                (60, 200.0),
                (120, 300.0),
                (180, 4.0),
                (240, 50.0)
            ]
        );
        assert_eq!(
            pts(&series("DATAPOINT_COUNT([m1, m2, m3])")),
            vec![(0, 2.0), (60, 2.0), (120, 3.0), (180, 1.0), (240, 2.0)]
        );
        let sd = series("STDDEV([m1, m2])");
        assert_eq!(sd.timestamps, vec![0, 60, 120, 180, 240]);
        assert_eq!(sd.values, vec![4.5, 0.0, 13.5, 0.0, 22.5]);
        assert_eq!(
            series("SUM(CEIL([m1, m2] / 4))").values,
            vec![4.0, 1.0, 9.0, 1.0, 15.0]
        );
    }

    #[test]
    fn series_reductions_give_scalars() {
        assert_eq!(scalar("SUM(m1)"), 15.0);
        assert_eq!(scalar("AVG(m2)"), 30.0);
        assert_eq!(scalar("MIN(m3)"), 200.0);
        assert_eq!(scalar("MAX(m2)"), 50.0);
        assert_eq!(scalar("DATAPOINT_COUNT(m2)"), 3.0);
        assert_close(scalar("STDDEV(m1)"), 2f64.sqrt());
        assert_eq!(scalar("SUM(m1) / DATAPOINT_COUNT(m1)"), 3.0);
        assert_eq!(
            series("m1 - AVG(m1)").values,
            vec![-2.0, -1.0, 0.0, 1.0, 2.0]
        );
        assert_eq!(series("MAX(m1) / m1").values[4], 1.0);
        assert_eq!(scalar("SUM(m1 / 0)"), 0.0);
        assert!(scalar("AVG(m1 / 0)").is_nan());
        assert!(scalar("MIN(m1 / 0)").is_nan());
        assert!(err("SUM(5)").contains("SUM: expected a time series or an array"));
    }

    #[test]
    fn rate_diff_and_friends() {
        let mut env = env();
        let counter = ts("c", &[(0, 100.0), (60, 160.0), (120, 160.0), (300, 100.0)]);
        env.values.insert("c".into(), Value::Series(counter));
        let get = |text: &str| match run_in(&env, text).unwrap() {
            Value::Series(s) => pts(&s),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            get("RATE(c)"),
            vec![(60, 1.0), (120, 0.0), (300, -60.0 / 180.0)]
        );
        assert_eq!(get("DIFF(c)"), vec![(60, 60.0), (120, 0.0), (300, -60.0)]);
        assert_eq!(
            get("DIFF_TIME(c)"),
            vec![(60, 60.0), (120, 60.0), (300, 180.0)]
        );
        assert_eq!(
            get("RUNNING_SUM(c)"),
            vec![(0, 100.0), (60, 260.0), (120, 420.0), (300, 520.0)]
        );
        // RATE over a series with a gap uses the real time difference.
        assert_eq!(
            pts(&series("RATE(m2)")),
            vec![(120, 20.0 / 120.0), (240, 20.0 / 120.0)]
        );
        let xs = array("RATE(METRICS(\"m\"))");
        assert_eq!(xs.len(), 3);
        assert_eq!(xs[0].values, vec![1.0 / 60.0; 4]);
        assert!(pts(&series("RATE(other)")).is_empty());
        assert!(err("RATE(5)").contains("RATE: expected a time series"));
        assert!(err("DIFF(SUM(m1))").contains("got a scalar"));
    }

    #[test]
    fn element_wise_math() {
        let mut env = env();
        env.values.insert(
            "x".into(),
            Value::Series(ts("x", &[(0, -1.5), (60, 0.0), (120, 100.0), (180, 2.5)])),
        );
        let get = |text: &str| match run_in(&env, text).unwrap() {
            Value::Series(s) => pts(&s),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            get("ABS(x)"),
            vec![(0, 1.5), (60, 0.0), (120, 100.0), (180, 2.5)]
        );
        assert_eq!(
            get("CEIL(x)"),
            vec![(0, -1.0), (60, 0.0), (120, 100.0), (180, 3.0)]
        );
        assert_eq!(
            get("FLOOR(x)"),
            vec![(0, -2.0), (60, 0.0), (120, 100.0), (180, 2.0)]
        );
        // LOG of a negative number or of 0 has no datapoint.
        assert_eq!(get("LOG10(x)"), vec![(120, 2.0), (180, 2.5f64.log10())]);
        assert_eq!(get("LOG(x)"), vec![(120, 100f64.ln()), (180, 2.5f64.ln())]);
        let xs = array("ABS(-[m1, m2])");
        assert_eq!(xs[1].values, vec![10.0, 30.0, 50.0]);
        assert_eq!(scalar("ABS(-3)"), 3.0);
        assert_eq!(scalar("FLOOR(2.7) + CEIL(2.1)"), 5.0);
    }

    #[test]
    fn fill_function() {
        assert_eq!(
            pts(&series("FILL(m2, 0)")),
            vec![(0, 10.0), (60, 0.0), (120, 30.0), (180, 0.0), (240, 50.0)]
        );
        assert_eq!(series("FILL(m2, 0)").label, "m2");
        assert_eq!(
            pts(&series("FILL(m3, MIN(m3))")),
            vec![
                (0, 200.0),
                (60, 200.0),
                (120, 300.0),
                (180, 200.0),
                (240, 200.0)
            ]
        );
        // A series filler supplies its value where it has one.
        assert_eq!(
            pts(&series("FILL(m3, m2)")),
            vec![(0, 10.0), (60, 200.0), (120, 300.0), (240, 50.0)]
        );
        // REPEAT carries the last actual value forward; nothing before the first.
        assert_eq!(
            pts(&series("FILL(m3, REPEAT)")),
            vec![(60, 200.0), (120, 300.0), (180, 300.0), (240, 300.0)]
        );
        // LINEAR interpolates inside gaps; leading and trailing gaps stay.
        assert_eq!(
            pts(&series("FILL(m2, LINEAR)")),
            vec![(0, 10.0), (60, 20.0), (120, 30.0), (180, 40.0), (240, 50.0)]
        );
        assert_eq!(
            pts(&series("FILL(m3, LINEAR)")),
            vec![(60, 200.0), (120, 300.0)]
        );
        // Arrays are filled element-wise; then arithmetic sees every point.
        let xs = array("FILL(METRICS(\"m\"), 0)");
        assert!(
            xs.iter()
                .all(|s| s.timestamps == vec![0, 60, 120, 180, 240])
        );
        assert_eq!(
            series("FILL(m1, 0) + FILL(m3, 0)").values,
            vec![1.0, 202.0, 303.0, 4.0, 5.0]
        );
        assert!(err("FILL(5, 0)").contains("FILL: expected a time series"));
        assert!(err("FILL(m1, METRICS())").contains("got an array"));
    }

    #[test]
    fn fill_keeps_points_outside_the_grid() {
        let mut env = env();
        env.grid = vec![0, 60];
        env.values
            .insert("y".into(), Value::Series(ts("y", &[(60, 1.0), (90, 2.0)])));
        let Value::Series(s) = run_in(&env, "FILL(y, -1)").unwrap() else {
            panic!()
        };
        assert_eq!(pts(&s), vec![(0, -1.0), (60, 1.0), (90, 2.0)]);
    }

    #[test]
    fn period_and_time_series() {
        assert_eq!(scalar("PERIOD(m1)"), 60.0);
        assert_eq!(series("m1 / PERIOD(m1)").values[0], 1.0 / 60.0);
        assert!(err("PERIOD(5)").contains("PERIOD: expected a time series, got a scalar"));
        assert!(err("PERIOD(METRICS())").contains("got an array"));
        let s = series("TIME_SERIES(5 * AVG(m1))");
        assert_eq!(
            pts(&s),
            vec![(0, 15.0), (60, 15.0), (120, 15.0), (180, 15.0), (240, 15.0)]
        );
        assert!(err("TIME_SERIES(m1)").contains("TIME_SERIES: expected a scalar"));
    }

    #[test]
    fn time_functions() {
        let mut env = env();
        // 2024-02-29T13:45:00Z (a Thursday) and 2024-03-03T00:00:00Z (a Sunday).
        let (leap_day, sunday) = (1_709_214_300, 1_709_424_000);
        env.grid = vec![];
        env.values.insert(
            "d".into(),
            Value::Series(ts("d", &[(leap_day, 1.0), (sunday, 1.0)])),
        );
        let get = |text: &str| match run_in(&env, text).unwrap() {
            Value::Series(s) => s.values,
            other => panic!("{other:?}"),
        };
        assert_eq!(get("MINUTE(d)"), vec![45.0, 0.0]);
        assert_eq!(get("HOUR(d)"), vec![13.0, 0.0]);
        assert_eq!(get("DAY(d)"), vec![4.0, 7.0]);
        assert_eq!(get("DATE(d)"), vec![29.0, 3.0]);
        assert_eq!(get("MONTH(d)"), vec![2.0, 3.0]);
        assert_eq!(get("YEAR(d)"), vec![2024.0, 2024.0]);
        assert_eq!(get("EPOCH(d)"), vec![leap_day as f64, sunday as f64]);
        // Non-sparse: every grid timestamp, even where m2 has no data.
        assert_eq!(
            series("EPOCH(m2)").values,
            vec![0.0, 60.0, 120.0, 180.0, 240.0]
        );
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(time_part("DAY", -86_400), 3.0);
    }

    #[test]
    fn comparisons_follow_the_user_guide() {
        // metric1 = [30, 20, 0, 0], metric2 = [20, -, 20, -].
        let mut env = env();
        let m = |label: &str, vals: &[Option<f64>]| Value::Series(grid_series(label, vals));
        env.values.insert(
            "metric1".into(),
            m("metric1", &[Some(30.0), Some(20.0), Some(0.0), Some(0.0)]),
        );
        env.values.insert(
            "metric2".into(),
            m("metric2", &[Some(20.0), None, Some(20.0), None]),
        );
        let get = |text: &str| match run_in(&env, text).unwrap() {
            Value::Series(s) => s.values,
            other => panic!("{other:?}"),
        };
        assert_eq!(get("(metric1 < metric2)"), vec![0.0, 0.0, 1.0, 0.0]);
        assert_eq!(get("(metric1 >= 30)"), vec![1.0, 0.0, 0.0, 0.0]);
        assert_eq!(
            get("(metric1 > 15 AND metric2 > 15)"),
            vec![1.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(
            get("metric1 > 15 || metric2 > 15"),
            vec![1.0, 1.0, 1.0, 0.0]
        );
        assert_eq!(get("metric1 == 0"), vec![0.0, 0.0, 1.0, 1.0]);
        assert_eq!(get("metric1 != metric2"), vec![1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn if_follows_the_user_guide() {
        let mut env = env();
        let m = |label: &str, vals: &[Option<f64>]| Value::Series(grid_series(label, vals));
        env.values.insert(
            "metric1".into(),
            m(
                "metric1",
                &[Some(1.0), Some(1.0), Some(0.0), Some(0.0), None],
            ),
        );
        env.values.insert(
            "metric2".into(),
            m(
                "metric2",
                &[Some(30.0), None, Some(0.0), Some(0.0), Some(30.0)],
            ),
        );
        env.values.insert(
            "metric3".into(),
            m(
                "metric3",
                &[Some(0.0), Some(0.0), Some(20.0), None, Some(20.0)],
            ),
        );
        let get = |text: &str| match run_in(&env, text).unwrap() {
            Value::Series(s) => pts(&s),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            get("IF(metric1, metric2, metric3)"),
            vec![(0, 30.0), (60, 0.0), (120, 20.0)]
        );
        assert_eq!(
            get("IF(metric1, 5, metric3)"),
            vec![(0, 5.0), (60, 5.0), (120, 20.0)]
        );
        assert_eq!(
            get("IF(metric1, metric2, 5)"),
            vec![(0, 30.0), (60, 0.0), (120, 5.0), (180, 5.0)]
        );
        assert_eq!(get("IF(metric1, metric2)"), vec![(0, 30.0), (60, 0.0)]);
        assert_eq!(
            get("IF(metric2 < 20, 1, 0)"),
            vec![(0, 0.0), (120, 1.0), (180, 1.0), (240, 0.0)]
        );
        assert_eq!(
            get("IF(1, metric2, metric3)"),
            pts(&grid_series(
                "",
                &[Some(30.0), None, Some(0.0), Some(0.0), Some(30.0)]
            ))
        );
        assert_eq!(get("IF(0, metric2, metric3)").len(), 4);
        assert!(get("IF(0, metric2)").is_empty());
        assert_eq!(run_in(&env, "IF(2 > 1, 7, 8)").unwrap(), Value::Scalar(7.0));
        assert!(err("IF(METRICS(), 1, 0)").contains("IF: the condition must be"));
        assert!(err("IF(m1, METRICS(), 0)").contains("IF: the values must be"));
    }

    #[test]
    fn array_functions() {
        let names = |xs: Vec<TimeSeries>| xs.into_iter().map(|s| s.label).collect::<Vec<_>>();
        assert_eq!(
            names(array("SORT(METRICS(\"m\"), AVG, DESC)")),
            vec!["m3", "m2", "m1"]
        );
        assert_eq!(
            names(array("SORT(METRICS(\"m\"), MAX, ASC)")),
            vec!["m1", "m2", "m3"]
        );
        assert_eq!(
            names(array("SORT(METRICS(), SUM, DESC, 2)")),
            vec!["m3", "m2"]
        );
        assert_eq!(
            names(array("SORT([m1 / 0, m2, m1], MIN, ASC)")),
            vec!["m1", "m2", "m1"]
        );
        assert_eq!(
            array("SORT([m1 / 0, m2, m1], MIN, ASC)")[2].values,
            Vec::<f64>::new()
        );
        assert_eq!(names(array("SLICE(METRICS(), 1, 3)")), vec!["other", "m2"]);
        assert_eq!(names(array("SLICE(METRICS(), 2)")), vec!["m2", "m3"]);
        assert!(array("SLICE(METRICS(), 3, 1)").is_empty());
        assert!(array("SLICE(METRICS(), 10)").is_empty());
        assert_eq!(series("FIRST(SORT(METRICS(), AVG, DESC))").label, "m3");
        assert_eq!(series("LAST(METRICS())").label, "m3");
        assert!(series("FIRST(METRICS(\"zzz\"))").timestamps.is_empty());
        assert_eq!(scalar("METRIC_COUNT(METRICS())"), 4.0);
        assert_eq!(series("m1 / METRIC_COUNT(METRICS(\"m\"))").values[2], 1.0);
        assert_eq!(names(array("REMOVE_EMPTY([m1 / 0, m2])")), vec!["m2"]);
        assert!(err("FIRST(3)").contains("FIRST: expected an array"));
        assert!(err("SLICE(METRICS(), m1)").contains("SLICE: expected a scalar"));
    }

    #[test]
    fn ids_and_metrics_usage() {
        let e = parse("m1 + SUM([m2, m1]) / e_1 - FILL(m3, REPEAT)").unwrap();
        assert_eq!(e.ids(), vec!["m1", "m2", "e_1", "m3"]);
        assert!(!e.uses_metrics_fn());
        let e = parse("SUM(METRICS(\"errors\")) * 100").unwrap();
        assert!(e.ids().is_empty());
        assert!(e.uses_metrics_fn());
        assert!(parse("ABS(1 + METRICS())").unwrap().uses_metrics_fn());
    }

    #[test]
    fn expression_results_and_scalar_queries() {
        assert_eq!(series("e1 * 2").values, vec![2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(scalar("scalar_e * 2"), 5.0);
        let mut env = env();
        env.values
            .insert("arr".into(), Value::Array(vec![ts("a", &[(0, 1.0)])]));
        // Out-of-order input from the environment is sorted before use.
        env.values
            .insert("u".into(), Value::Series(ts("u", &[(60, 2.0), (0, 1.0)])));
        assert_eq!(
            run_in(&env, "SUM(arr)").unwrap(),
            Value::Series(ts("", &[(0, 1.0)]))
        );
        assert_eq!(
            run_in(&env, "DIFF(u)").unwrap(),
            Value::Series(ts("u", &[(60, 1.0)]))
        );
    }

    #[test]
    fn syntax_errors_report_positions() {
        assert_eq!(
            parse("m1 +").unwrap_err(),
            "syntax error at position 5: expected a number, a query id, a function call, '(' \
             or '[', found end of expression"
        );
        assert_eq!(
            parse("(m1 + m2").unwrap_err(),
            "syntax error at position 9: expected ')', found end of expression"
        );
        assert_eq!(
            parse("m1 m2").unwrap_err(),
            "syntax error at position 4: expected an operator, found 'm2'"
        );
        assert!(
            parse("m1 + $")
                .unwrap_err()
                .starts_with("syntax error at position 6")
        );
        assert!(parse("m1 = 2").unwrap_err().contains("did you mean '=='"));
        assert!(
            parse("SUM(m1, m2")
                .unwrap_err()
                .contains("expected ',' or ')'")
        );
        assert!(
            parse("[m1, m2")
                .unwrap_err()
                .contains("expected ',' or ']'")
        );
        assert!(parse("[]").unwrap_err().contains("at least one element"));
        assert!(
            parse("METRICS(\"abc")
                .unwrap_err()
                .contains("unterminated string")
        );
        assert!(parse("2m1").unwrap_err().contains("invalid number '2m1'"));
        assert!(parse("1.2.3").unwrap_err().contains("invalid number"));
        assert!(parse("1e999").unwrap_err().contains("out of range"));
        assert!(
            parse("_m1")
                .unwrap_err()
                .contains("unexpected character '_'")
        );
        assert!(
            parse("M1 + 1")
                .unwrap_err()
                .contains("must start with a lower-case letter")
        );
        assert_eq!(parse("").unwrap_err(), "expression is empty");
        assert_eq!(parse("   ").unwrap_err(), "expression is empty");
        assert!(
            parse("m1 & m2")
                .unwrap_err()
                .contains("unexpected character '&'")
        );
        assert!(
            parse("*m1")
                .unwrap_err()
                .starts_with("syntax error at position 1")
        );
    }

    #[test]
    fn function_errors() {
        assert_eq!(
            parse("m1 + FOO(m1)").unwrap_err(),
            "syntax error at position 6: unknown function 'FOO'"
        );
        assert!(
            parse("sum(m1)")
                .unwrap_err()
                .contains("unknown function 'sum' (function names")
        );
        assert!(
            parse("SEARCH('{AWS/EC2}', 'Average')")
                .unwrap_err()
                .contains("unexpected character")
        );
        assert!(
            parse("SEARCH(\"x\")")
                .unwrap_err()
                .contains("SEARCH is not supported")
        );
        assert!(
            parse("ANOMALY_DETECTION_BAND(m1)")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(
            parse("ABS(m1, m2)")
                .unwrap_err()
                .contains("ABS takes 1 argument(s), got 2")
        );
        assert!(
            parse("FILL(m1)")
                .unwrap_err()
                .contains("FILL takes 2 argument(s), got 1")
        );
        assert!(
            parse("IF(m1)")
                .unwrap_err()
                .contains("IF takes 2 or 3 argument(s)")
        );
        assert!(parse("SORT(m1)").unwrap_err().contains("SORT takes 3 or 4"));
        assert!(parse("ABS()").unwrap_err().contains("got 0"));
        assert!(
            parse("METRICS(m1)")
                .unwrap_err()
                .contains("must be a string literal")
        );
        assert!(
            parse("SORT(METRICS(), m1, ASC)")
                .unwrap_err()
                .contains("AVG, MIN, MAX or SUM")
        );
        assert!(
            parse("SORT(METRICS(), AVG, UP)")
                .unwrap_err()
                .contains("must start with a lower")
        );
        assert!(
            parse("SORT(METRICS(), AVG, REPEAT)")
                .unwrap_err()
                .contains("ASC or DESC")
        );
        assert!(
            parse("SORT(METRICS(), STDDEV, ASC)")
                .unwrap_err()
                .contains("must start")
        );
        assert!(
            parse("m1 + \"x\"")
                .unwrap_err()
                .contains("only valid as the argument of METRICS")
        );
        assert!(parse("ABS(\"x\")").unwrap_err().contains("position 5"));
        assert!(
            parse("REPEAT + 1")
                .unwrap_err()
                .contains("second argument of FILL")
        );
        assert!(
            parse("FILL(m1, REPEAT + 1)")
                .unwrap_err()
                .contains("second argument of FILL")
        );
        assert!(parse("ASC").unwrap_err().contains("third argument of SORT"));
        assert!(
            parse("AVG + 1")
                .unwrap_err()
                .contains("AVG needs an argument list")
        );
        assert!(
            parse("FILL(LINEAR, m1)")
                .unwrap_err()
                .contains("position 6")
        );
    }

    #[test]
    fn evaluation_errors() {
        assert_eq!(err("m1 + nope"), "unknown id 'nope'");
        let mut env = env();
        env.metrics.push("ghost".into());
        assert_eq!(
            run_in(&env, "SUM(METRICS())").unwrap_err(),
            "unknown id 'ghost'"
        );
        assert!(err("[m1, 5]").contains("array elements must be time series"));
    }

    #[test]
    fn length_and_depth_limits() {
        let long = format!("m1{}", " ".repeat(MAX_LEN - 2));
        assert!(parse(&long).is_ok());
        let too_long = format!("{long} ");
        assert!(
            parse(&too_long)
                .unwrap_err()
                .contains("too long (2049 characters")
        );

        let nested = |n: usize| format!("{}m1{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        assert!(
            parse(&nested(MAX_DEPTH + 1))
                .unwrap_err()
                .contains("nested too deeply")
        );
        let calls = |n: usize| format!("{}m1{}", "ABS(".repeat(n), ")".repeat(n));
        assert!(parse(&calls(MAX_DEPTH / 2)).is_ok());
        assert!(
            parse(&calls(MAX_DEPTH + 1))
                .unwrap_err()
                .contains("nested too deeply")
        );
        assert!(
            parse(&"-".repeat(500))
                .unwrap_err()
                .contains("nested too deeply")
        );
        assert!(
            parse(&"[".repeat(500))
                .unwrap_err()
                .contains("nested too deeply")
        );
        assert!(
            parse(&vec!["2"; 300].join("^"))
                .unwrap_err()
                .contains("nested too deeply")
        );
        // Long flat chains are not nesting.
        let chain = vec!["1"; 1000].join("+");
        assert_eq!(scalar(&chain), 1000.0);
    }

    #[test]
    fn worst_case_inputs_fit_a_small_stack() {
        let deepest = |open: &str, close: &str, levels: usize| {
            format!("{}m1{}", open.repeat(levels), close.repeat(levels))
        };
        let inputs = vec![
            vec!["m1"; MAX_LEN / 3].join("+"),
            vec!["m1"; MAX_DEPTH + 1].join("^"),
            deepest("ABS(", ")", MAX_DEPTH),
            deepest("(m1+", ")", MAX_DEPTH),
            deepest("-(", ")", MAX_DEPTH / 2),
            deepest("[m2,", "]", MAX_DEPTH),
            deepest("SUM([m1, m2, ", "])", MAX_DEPTH / 2),
            deepest("FILL(m1, ", ")", MAX_DEPTH),
            deepest("IF(m1 > 2, m2, ", ")", MAX_DEPTH),
        ];
        // The worst cases must fit well within the 2 MiB stacks of tokio's
        // worker threads, even unoptimised (about 0.8 MiB measured; about
        // 0.25 MiB in release builds).
        let stack_kib = if cfg!(debug_assertions) { 1536 } else { 512 };
        std::thread::Builder::new()
            .stack_size(stack_kib * 1024)
            .spawn(move || {
                for text in inputs {
                    let expr = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                    assert_eq!(expr.clone(), expr);
                    assert!(!format!("{expr:?}").is_empty());
                    assert!(!expr.ids().is_empty());
                    eval(&expr, &env()).unwrap_or_else(|e| panic!("{text}: {e}"));
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn token() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![
                "m1",
                "m2",
                "m3",
                "nope",
                "1",
                "0",
                "2.5",
                "+",
                "-",
                "*",
                "/",
                "^",
                "(",
                ")",
                "[",
                "]",
                ",",
                "SUM(",
                "AVG(",
                "RATE(",
                "FILL(",
                "METRICS(",
                "\"m\"",
                "REPEAT",
                "LINEAR",
                "IF(",
                "SORT(",
                "DESC",
                "ASC",
                ">",
                "==",
                "AND",
                "SLICE(",
                "FIRST(",
                "STDDEV(",
                "LOG(",
                "TIME_SERIES(",
                "DAY(",
                " ",
            ])
        }

        proptest! {
            /// Neither parsing nor evaluation panics, whatever the input.
            #[test]
            fn no_panics_on_token_soup(tokens in prop::collection::vec(token(), 0..40)) {
                let text = tokens.concat();
                if let Ok(expr) = parse(&text) {
                    let _ = eval(&expr, &env());
                }
            }

            #[test]
            fn no_panics_on_arbitrary_text(text in "\\PC{0,80}") {
                if let Ok(expr) = parse(&text) {
                    let _ = eval(&expr, &env());
                }
            }

            /// Series addition keeps exactly the common timestamps, in order,
            /// and agrees with adding the values point by point.
            #[test]
            fn addition_is_pointwise_on_common_timestamps(
                a in prop::collection::btree_map(0i64..50, -1e6f64..1e6, 0..30),
                b in prop::collection::btree_map(0i64..50, -1e6f64..1e6, 0..30),
            ) {
                let mut env = env();
                let to_series = |m: &BTreeMap<i64, f64>, label: &str| {
                    let points: Vec<(i64, f64)> = m.iter().map(|(&t, &v)| (t, v)).collect();
                    Value::Series(ts(label, &points))
                };
                env.values.insert("a".into(), to_series(&a, "a"));
                env.values.insert("b".into(), to_series(&b, "b"));
                let Value::Series(sum) = run_in(&env, "a + b").unwrap() else { panic!() };
                let expected: Vec<(i64, f64)> = a
                    .iter()
                    .filter_map(|(t, va)| b.get(t).map(|vb| (*t, va + vb)))
                    .collect();
                prop_assert_eq!(pts(&sum), expected);
                let Value::Series(total) = run_in(&env, "SUM([a, b])").unwrap() else { panic!() };
                let union: std::collections::BTreeSet<i64> =
                    a.keys().chain(b.keys()).copied().collect();
                prop_assert_eq!(total.timestamps, union.into_iter().collect::<Vec<_>>());
            }
        }
    }
}
