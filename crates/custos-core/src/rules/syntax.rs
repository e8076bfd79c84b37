//! Lexer and parser: source text to an [`Expr`] tree with byte spans.
//!
//! Recursive descent, one function per precedence level (see the grammar in
//! the module docs of [`crate::rules`]). Nesting is limited to
//! [`MAX_DEPTH`] so that no input can overflow the stack, and sources to
//! [`MAX_SOURCE_LEN`] bytes.

use std::fmt;

/// Longest accepted expression, in bytes.
pub const MAX_SOURCE_LEN: usize = 16 * 1024;
/// Deepest accepted nesting of parentheses, lists, calls and unary
/// operators: each level costs the recursive-descent parser a dozen frames.
pub const MAX_DEPTH: u32 = 64;
/// Tallest accepted tree: nesting plus the length of operator chains
/// (`a || b || c` is two deep), so that no accepted expression can exhaust
/// the stack when it is compiled or evaluated.
pub const MAX_HEIGHT: u32 = 256;

/// A byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// A syntax or type error at a place in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceError {
    pub message: String,
    pub span: Span,
}

impl SourceError {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> SourceError {
        SourceError {
            message: message.into(),
            span,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Seconds.
    Duration(i64),
    /// Dotted identifiers, e.g. `login.risk`, `lists.deny`.
    Path(Vec<String>),
    List(Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    /// A global function, e.g. `has(x)`.
    Call(String, Vec<Expr>),
    /// A method on a receiver, e.g. `s.startsWith("x")`.
    Method(Box<Expr>, String, Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Coalesce,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Coalesce => "??",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

impl fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    /// `9223372036854775808`: valid only right after a unary minus.
    MinIntMagnitude,
    Float(f64),
    Str(String),
    Duration(i64),
    Ident(String),
    Punct(&'static str),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Int(n) => format!("number `{n}`"),
            Tok::MinIntMagnitude => "number `9223372036854775808`".into(),
            Tok::Float(n) => format!("number `{n}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Duration(_) => "a duration".into(),
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "the end of the expression".into(),
        }
    }
}

const PUNCTS: &[&str] = &[
    "??", "==", "!=", "<=", ">=", "&&", "||", "(", ")", "[", "]", ",", ".", "!", "-", "+", "*",
    "/", "%", "<", ">", "?", ":",
];

/// Seconds per duration unit.
fn unit_seconds(unit: &str) -> Option<i64> {
    Some(match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    })
}

/// Why a duration literal is not a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DurationError {
    /// Not digits followed by a unit (s, m, h, d, w), repeated.
    Malformed,
    /// Well formed, but more seconds than an i64 holds.
    OutOfRange,
}

/// Parses a duration such as `7d`, `1h30m` or `90s` into seconds.
fn duration_seconds(text: &str) -> Result<i64, DurationError> {
    let mut total: Option<i64> = Some(0);
    let mut rest = text;
    if rest.is_empty() {
        return Err(DurationError::Malformed);
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let units = rest[digits..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let unit = (digits > 0 && units > 0)
            .then(|| unit_seconds(&rest[digits..digits + units]))
            .flatten()
            .ok_or(DurationError::Malformed)?;
        // Keep scanning after an overflow: a later bad unit is the better error.
        total = total
            .zip(rest[..digits].parse::<i64>().ok())
            .and_then(|(t, n)| t.checked_add(n.checked_mul(unit)?));
        rest = &rest[digits + units..];
    }
    total.ok_or(DurationError::OutOfRange)
}

/// Parses a duration such as `7d`, `1h30m` or `90s` into seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    duration_seconds(text).ok()
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn tokens(src: &'s str) -> Result<Vec<(Tok, Span)>, SourceError> {
        let mut lexer = Lexer { src, pos: 0 };
        let mut out = Vec::new();
        loop {
            let (tok, span) = lexer.next()?;
            let end = tok == Tok::Eof;
            out.push((tok, span));
            if end {
                return Ok(out);
            }
        }
    }

    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn span(&self, start: usize) -> Span {
        Span {
            start,
            end: self.pos,
        }
    }

    fn next(&mut self) -> Result<(Tok, Span), SourceError> {
        // Whitespace and `//` comments.
        loop {
            let trimmed = self.rest().trim_start();
            self.pos = self.src.len() - trimmed.len();
            if trimmed.starts_with("//") {
                let line = trimmed.find('\n').unwrap_or(trimmed.len());
                self.pos += line;
            } else {
                break;
            }
        }
        let start = self.pos;
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return Ok((Tok::Eof, self.span(start)));
        };
        if c.is_ascii_digit() {
            return self.number(start);
        }
        if c == '"' || c == '\'' {
            return self.string(start, false);
        }
        if (c == 'r' || c == 'R') && rest[1..].starts_with(['"', '\'']) {
            self.pos += 1;
            return self.string(start, true);
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            self.pos += len;
            return Ok((Tok::Ident(rest[..len].to_string()), self.span(start)));
        }
        for p in PUNCTS {
            if rest.starts_with(p) {
                self.pos += p.len();
                return Ok((Tok::Punct(p), self.span(start)));
            }
        }
        self.pos += c.len_utf8();
        let hint = match c {
            '=' => " (use `==` to compare)",
            '&' => " (use `&&`)",
            '|' => " (use `||`)",
            _ => "",
        };
        Err(SourceError::new(
            self.span(start),
            format!("unexpected character `{c}`{hint}"),
        ))
    }

    fn number(&mut self, start: usize) -> Result<(Tok, Span), SourceError> {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let mut len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        let mut float = false;
        if bytes.get(len) == Some(&b'.') && bytes.get(len + 1).is_some_and(u8::is_ascii_digit) {
            float = true;
            len += 1;
            len += bytes[len..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
        }
        if matches!(bytes.get(len), Some(b'e' | b'E')) {
            let mut exp = len + 1;
            if matches!(bytes.get(exp), Some(b'+' | b'-')) {
                exp += 1;
            }
            let digits = bytes[exp.min(bytes.len())..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 {
                float = true;
                len = exp + digits;
            }
        }
        // A duration: digits directly followed by a unit, e.g. `7d`, `1h30m`.
        let suffix = bytes[len..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        if suffix > 0 {
            let whole = &rest[..len + suffix];
            self.pos += len + suffix;
            if float {
                return Err(SourceError::new(
                    self.span(start),
                    format!("`{whole}` is not a valid number or duration"),
                ));
            }
            return match duration_seconds(whole) {
                Ok(secs) => Ok((Tok::Duration(secs), self.span(start))),
                Err(DurationError::OutOfRange) => Err(SourceError::new(
                    self.span(start),
                    format!("duration `{whole}` is out of range"),
                )),
                Err(DurationError::Malformed) => Err(SourceError::new(
                    self.span(start),
                    format!(
                        "`{whole}` is not a valid duration: use whole numbers with the units s, m, h, d or w, e.g. `7d` or `1h30m`"
                    ),
                )),
            };
        }
        let text = &rest[..len];
        self.pos += len;
        if float {
            match text.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok((Tok::Float(n), self.span(start))),
                _ => Err(SourceError::new(
                    self.span(start),
                    format!("`{text}` is out of range"),
                )),
            }
        } else {
            match text.parse::<i64>() {
                Ok(n) => Ok((Tok::Int(n), self.span(start))),
                Err(_) if text.trim_start_matches('0') == "9223372036854775808" => {
                    Ok((Tok::MinIntMagnitude, self.span(start)))
                }
                Err(_) => Err(SourceError::new(
                    self.span(start),
                    format!("integer `{text}` is out of range"),
                )),
            }
        }
    }

    fn string(&mut self, start: usize, raw: bool) -> Result<(Tok, Span), SourceError> {
        let rest = self.rest();
        let mut chars = rest.char_indices();
        let Some((_, quote)) = chars.next() else {
            return Err(SourceError::new(self.span(start), "unterminated string"));
        };
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + 1;
                return Ok((Tok::Str(out), self.span(start)));
            }
            if c == '\n' {
                break;
            }
            if c == '\\' && !raw {
                let escaped = match chars.next() {
                    Some((_, 'n')) => '\n',
                    Some((_, 't')) => '\t',
                    Some((_, 'r')) => '\r',
                    Some((_, '0')) => '\0',
                    Some((_, '\\')) => '\\',
                    Some((_, '"')) => '"',
                    Some((_, '\'')) => '\'',
                    None => break,
                    other => {
                        let at = self.pos + i;
                        let len = 1 + other.map_or(0, |(_, c)| c.len_utf8());
                        return Err(SourceError::new(
                            Span {
                                start: at,
                                end: at + len,
                            },
                            "unknown escape: use \\n, \\t, \\r, \\0, \\\\, \\\" or \\'",
                        ));
                    }
                };
                out.push(escaped);
            } else {
                out.push(c);
            }
        }
        self.pos = self.src.len();
        Err(SourceError::new(
            Span {
                start,
                end: start + 1,
            },
            "unterminated string",
        ))
    }
}

/// Parses one expression.
pub fn parse(src: &str) -> Result<Expr, SourceError> {
    if src.len() > MAX_SOURCE_LEN {
        return Err(SourceError::new(
            Span { start: 0, end: 0 },
            format!(
                "expression is {} bytes long, the limit is {MAX_SOURCE_LEN}",
                src.len()
            ),
        ));
    }
    let tokens = Lexer::tokens(src)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        height: 0,
    };
    let expr = parser.expr()?;
    let (tok, span) = parser.peek();
    let hint = match tok {
        Tok::Eof => return Ok(expr),
        Tok::Ident(word) if word == "and" => " (write `&&`)",
        Tok::Ident(word) if word == "or" => " (write `||`)",
        _ => "",
    };
    Err(SourceError::new(
        span,
        format!(
            "expected an operator or the end, found {}{hint}",
            tok.describe()
        ),
    ))
}

struct Parser {
    tokens: Vec<(Tok, Span)>,
    pos: usize,
    depth: u32,
    /// `depth` plus the links of the operator chains being parsed.
    height: u32,
}

impl Parser {
    fn peek(&self) -> (&Tok, Span) {
        let (tok, span) = &self.tokens[self.pos.min(self.tokens.len() - 1)];
        (tok, *span)
    }

    fn bump(&mut self) -> (Tok, Span) {
        let (tok, span) = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        (tok, span)
    }

    fn eat(&mut self, punct: &str) -> Option<Span> {
        match self.peek() {
            (Tok::Punct(p), span) if *p == punct => {
                self.pos += 1;
                Some(span)
            }
            _ => None,
        }
    }

    fn expect(&mut self, punct: &str, context: &str) -> Result<Span, SourceError> {
        if let Some(span) = self.eat(punct) {
            return Ok(span);
        }
        let (tok, span) = self.peek();
        Err(SourceError::new(
            span,
            format!("expected `{punct}` {context}, found {}", tok.describe()),
        ))
    }

    fn enter(&mut self, span: Span) -> Result<(), SourceError> {
        self.depth += 1;
        // The outermost expression is level 0.
        if self.depth > MAX_DEPTH + 1 {
            return Err(SourceError::new(
                span,
                format!("expression nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.grow(span)
    }

    fn leave(&mut self) {
        self.depth -= 1;
        self.height -= 1;
    }

    fn grow(&mut self, span: Span) -> Result<(), SourceError> {
        self.height += 1;
        if self.height > MAX_HEIGHT + 1 {
            return Err(SourceError::new(
                span,
                format!(
                    "expression chains more than {MAX_HEIGHT} operators deep: split the rule, or test many values with `in [...]`"
                ),
            ));
        }
        Ok(())
    }

    /// expr := coalesce ("?" expr ":" expr)?
    fn expr(&mut self) -> Result<Expr, SourceError> {
        let span = self.peek().1;
        self.enter(span)?;
        let cond = self.binary(0)?;
        let result = if self.eat("?").is_some() {
            let then = self.expr()?;
            self.expect(":", "in `condition ? then : otherwise`")?;
            let otherwise = self.expr()?;
            let span = cond.span.to(otherwise.span);
            Expr {
                kind: ExprKind::Ternary(Box::new(cond), Box::new(then), Box::new(otherwise)),
                span,
            }
        } else {
            cond
        };
        self.leave();
        Ok(result)
    }

    /// Binary operators by level, loosest first. Comparisons do not chain.
    fn binary(&mut self, level: usize) -> Result<Expr, SourceError> {
        const LEVELS: &[&[(&str, BinaryOp)]] = &[
            &[("??", BinaryOp::Coalesce)],
            &[("||", BinaryOp::Or)],
            &[("&&", BinaryOp::And)],
            &[
                ("==", BinaryOp::Eq),
                ("!=", BinaryOp::Ne),
                ("<=", BinaryOp::Le),
                (">=", BinaryOp::Ge),
                ("<", BinaryOp::Lt),
                (">", BinaryOp::Gt),
                ("in", BinaryOp::In),
            ],
            &[("+", BinaryOp::Add), ("-", BinaryOp::Sub)],
            &[
                ("*", BinaryOp::Mul),
                ("/", BinaryOp::Div),
                ("%", BinaryOp::Rem),
            ],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let comparison = level == 3;
        let find = |tok: &Tok| match tok {
            Tok::Punct(p) => LEVELS[level].iter().find(|(s, _)| s == p).copied(),
            Tok::Ident(name) if name == "in" => {
                LEVELS[level].iter().find(|(s, _)| *s == "in").copied()
            }
            _ => None,
        };
        let mut lhs = self.binary(level + 1)?;
        // Each link of a chain deepens the (left-leaning) tree by one: the
        // depth stays raised until the chain ends.
        let mut links = 0;
        let result = loop {
            let Some((_, op)) = find(self.peek().0) else {
                break Ok(lhs);
            };
            let (_, op_span) = self.bump();
            links += 1;
            if let Err(e) = self.grow(op_span) {
                break Err(e);
            }
            let rhs = match self.binary(level + 1) {
                Ok(rhs) => rhs,
                Err(e) => break Err(e),
            };
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            };
            if comparison {
                let (tok, span) = self.peek();
                if find(tok).is_some() {
                    break Err(SourceError::new(
                        span,
                        "comparisons do not chain: write `a < b && b < c`",
                    ));
                }
                break Ok(lhs);
            }
        };
        self.height -= links;
        result
    }

    /// unary := ("!" | "-") unary | postfix
    fn unary(&mut self) -> Result<Expr, SourceError> {
        let op = if let Some(span) = self.eat("!") {
            Some((UnaryOp::Not, span))
        } else {
            self.eat("-").map(|span| (UnaryOp::Neg, span))
        };
        let Some((op, span)) = op else {
            return self.postfix();
        };
        if op == UnaryOp::Neg
            && let (Tok::MinIntMagnitude, literal) = self.peek()
        {
            self.pos += 1;
            return Ok(Expr {
                kind: ExprKind::Int(i64::MIN),
                span: span.to(literal),
            });
        }
        self.enter(span)?;
        let operand = self.unary()?;
        self.leave();
        // Fold a negated literal so that `-9223372036854775808` stays an int.
        if op == UnaryOp::Neg {
            match &operand.kind {
                // `-(i64::MIN)` does not fold: it stays a negation, which
                // is null (overflow) when evaluated.
                ExprKind::Int(n) if n.checked_neg().is_some() => {
                    return Ok(Expr {
                        kind: ExprKind::Int(-n),
                        span: span.to(operand.span),
                    });
                }
                ExprKind::Float(n) => {
                    return Ok(Expr {
                        kind: ExprKind::Float(-n),
                        span: span.to(operand.span),
                    });
                }
                _ => {}
            }
        }
        let full = span.to(operand.span);
        Ok(Expr {
            kind: ExprKind::Unary(op, Box::new(operand)),
            span: full,
        })
    }

    /// postfix := primary ("." ident ("(" args ")")?)*
    fn postfix(&mut self) -> Result<Expr, SourceError> {
        let expr = self.primary()?;
        // Each method call deepens the tree by one, like a chain link.
        let mut links = 0;
        let result = self.postfix_links(expr, &mut links);
        self.height -= links;
        result
    }

    fn postfix_links(&mut self, mut expr: Expr, links: &mut u32) -> Result<Expr, SourceError> {
        while self.eat(".").is_some() {
            let (tok, name_span) = self.bump();
            let Tok::Ident(name) = tok else {
                return Err(SourceError::new(
                    name_span,
                    format!("expected a name after `.`, found {}", tok.describe()),
                ));
            };
            if self.eat("(").is_some() {
                *links += 1;
                self.grow(name_span)?;
                let args = self.args(")")?;
                let close = self.tokens[self.pos - 1].1;
                let span = expr.span.to(close);
                expr = Expr {
                    kind: ExprKind::Method(Box::new(expr), name, args),
                    span,
                };
            } else if let ExprKind::Path(parts) = &mut expr.kind {
                parts.push(name);
                expr.span = expr.span.to(name_span);
            } else {
                return Err(SourceError::new(
                    name_span,
                    format!("`.{name}` can only follow a field name or be a method call"),
                ));
            }
        }
        Ok(expr)
    }

    /// Comma-separated expressions up to `close` (consumed); a trailing
    /// comma is allowed.
    fn args(&mut self, close: &str) -> Result<Vec<Expr>, SourceError> {
        let mut args = Vec::new();
        loop {
            if self.eat(close).is_some() {
                return Ok(args);
            }
            args.push(self.expr()?);
            if self.eat(",").is_none() {
                self.expect(close, "or `,`")?;
                return Ok(args);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, SourceError> {
        let (tok, span) = self.bump();
        let kind = match tok {
            Tok::Int(n) => ExprKind::Int(n),
            Tok::Float(n) => ExprKind::Float(n),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Duration(n) => ExprKind::Duration(n),
            Tok::MinIntMagnitude => {
                return Err(SourceError::new(
                    span,
                    "integer `9223372036854775808` is out of range",
                ));
            }
            Tok::Ident(name) => match name.as_str() {
                "not" if matches!(self.peek().0, Tok::Ident(_) | Tok::Punct("(")) => {
                    return Err(SourceError::new(span, "there is no `not`: write `!`"));
                }
                "true" => ExprKind::Bool(true),
                "false" => ExprKind::Bool(false),
                "in" => {
                    return Err(SourceError::new(span, "expected a value, found `in`"));
                }
                "null" => {
                    return Err(SourceError::new(
                        span,
                        "there is no `null` literal: test `has(field)`, or give a default with `field ?? value`",
                    ));
                }
                _ if self.eat("(").is_some() => {
                    self.enter(span)?;
                    let args = self.args(")")?;
                    self.leave();
                    let close = self.tokens[self.pos - 1].1;
                    return Ok(Expr {
                        kind: ExprKind::Call(name, args),
                        span: span.to(close),
                    });
                }
                _ => ExprKind::Path(vec![name]),
            },
            Tok::Punct("(") => {
                let inner = self.expr()?;
                self.expect(")", "to close `(`")?;
                return Ok(inner);
            }
            Tok::Punct("[") => {
                self.enter(span)?;
                let items = self.args("]")?;
                self.leave();
                let close = self.tokens[self.pos - 1].1;
                return Ok(Expr {
                    kind: ExprKind::List(items),
                    span: span.to(close),
                });
            }
            other => {
                return Err(SourceError::new(
                    span,
                    format!("expected a value, found {}", other.describe()),
                ));
            }
        };
        Ok(Expr { kind, span })
    }
}
