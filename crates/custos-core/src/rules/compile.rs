//! Type checking and compilation in one pass: every [`Expr`] node becomes a
//! closure that reads its inputs by slot (features) or by a field function
//! (event fields), with its static [`Type`] checked on the way.
//!
//! Regular expressions, CIDR ranges, list literals and durations are all
//! built here, at load time; evaluating a rule allocates only when it builds
//! a string (`lower()`, `+` on strings).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::features::FeatureSet;

use super::lists::{Cidr, NamedList};
use super::schema::{self, ATTRIBUTES_PREFIX, EvalContext, LISTS_PREFIX, Source};
use super::syntax::{BinaryOp, Expr, ExprKind, SourceError, Span, UnaryOp, parse_duration};
use super::value::{Str, Type, Value};

/// A compiled expression.
pub type Node = Box<dyn for<'a> Fn(&EvalContext<'a>) -> Value<'a> + Send + Sync>;

fn node<F>(f: F) -> Node
where
    F: for<'a> Fn(&EvalContext<'a>) -> Value<'a> + Send + Sync + 'static,
{
    Box::new(f)
}

/// A value known at load time.
#[derive(Debug, Clone)]
enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Duration(i64),
}

impl Literal {
    fn value(&self) -> Value<'static> {
        match self {
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(n) => Value::Int(*n),
            Literal::Float(n) => Value::Float(*n),
            Literal::Str(s) => Value::Str(Str::Shared(s.clone())),
            Literal::Duration(n) => Value::Duration(*n),
        }
    }
}

struct Compiled {
    node: Node,
    ty: Type,
    literal: Option<Literal>,
}

impl Compiled {
    fn of(ty: Type, node: Node) -> Compiled {
        Compiled {
            node,
            ty,
            literal: None,
        }
    }

    fn literal(literal: Literal, ty: Type) -> Compiled {
        let value = literal.clone();
        Compiled {
            node: node(move |_| value.value()),
            ty,
            literal: Some(literal),
        }
    }
}

/// A path a rule reads, kept to show its value when the rule fires.
pub struct Read {
    pub path: String,
    pub node: Node,
}

/// The result of compiling one rule condition.
pub struct CompiledExpr {
    pub node: Node,
    /// Features the condition reads: only these need computing.
    pub features: FeatureSet,
    /// Every path read, in order of first use.
    pub reads: Vec<Read>,
    /// Named lists used.
    pub lists: Vec<String>,
}

/// Compiles a boolean rule condition against the schema and the named lists.
pub fn compile_condition(
    src: &str,
    lists: &BTreeMap<String, Arc<NamedList>>,
) -> Result<CompiledExpr, SourceError> {
    let expr = super::syntax::parse(src)?;
    let mut compiler = Compiler {
        lists,
        features: FeatureSet::EMPTY,
        reads: Vec::new(),
        lists_used: Vec::new(),
    };
    let compiled = compiler.compile(&expr)?;
    if !matches!(compiled.ty, Type::Bool | Type::Dyn) {
        return Err(SourceError::new(
            expr.span,
            format!(
                "a rule condition must be a bool, this is {}",
                type_name(compiled.ty)
            ),
        ));
    }
    Ok(CompiledExpr {
        node: compiled.node,
        features: compiler.features,
        reads: compiler.reads,
        lists: compiler.lists_used,
    })
}

fn type_name(ty: Type) -> String {
    match ty {
        Type::Enum(values) => format!("a string (one of {})", values.join(", ")),
        Type::Int => "an int".into(),
        Type::Ip => "an ip".into(),
        other => format!("a {other}"),
    }
}

const FUNCTIONS: &str = "has, size, int, double, duration, matches";

struct Compiler<'l> {
    lists: &'l BTreeMap<String, Arc<NamedList>>,
    features: FeatureSet,
    reads: Vec<Read>,
    lists_used: Vec<String>,
}

/// Strings of enum type must name a value of the enum.
fn check_enum(ty: Type, other: &Compiled, span: Span) -> Result<(), SourceError> {
    if let (Type::Enum(values), Some(Literal::Str(s))) = (ty, &other.literal)
        && !values.contains(&s.as_ref())
    {
        return Err(SourceError::new(
            span,
            format!(
                "\"{s}\" is never a value here: expected one of {}",
                values.join(", ")
            ),
        ));
    }
    Ok(())
}

fn eq_compatible(a: Type, b: Type) -> bool {
    a == b
        || a == Type::Dyn
        || b == Type::Dyn
        || (a.is_numeric() && b.is_numeric())
        || (a.is_stringy() && b.is_stringy())
}

fn orderable(a: Type, b: Type) -> bool {
    match (a, b) {
        (Type::Dyn, t) | (t, Type::Dyn) => {
            t.is_numeric() || t.is_stringy() || matches!(t, Type::Duration | Type::Dyn)
        }
        _ => {
            (a.is_numeric() && b.is_numeric())
                || (a.is_stringy() && b.is_stringy())
                || (a == Type::Duration && b == Type::Duration)
        }
    }
}

/// The type of `c ? a : b` and `a ?? b`.
fn unify(a: Type, b: Type) -> Option<Type> {
    match (a, b) {
        _ if a == b => Some(a),
        (Type::Dyn, _) | (_, Type::Dyn) => Some(Type::Dyn),
        _ if a.is_numeric() && b.is_numeric() => Some(Type::Float),
        _ if a.is_stringy() && b.is_stringy() => Some(Type::String),
        _ => None,
    }
}

fn bool_of(b: Option<bool>) -> Value<'static> {
    b.map_or(Value::Null, Value::Bool)
}

impl Compiler<'_> {
    fn compile(&mut self, expr: &Expr) -> Result<Compiled, SourceError> {
        let span = expr.span;
        Ok(match &expr.kind {
            ExprKind::Bool(b) => Compiled::literal(Literal::Bool(*b), Type::Bool),
            ExprKind::Int(n) => Compiled::literal(Literal::Int(*n), Type::Int),
            ExprKind::Float(n) => Compiled::literal(Literal::Float(*n), Type::Float),
            ExprKind::Duration(n) => Compiled::literal(Literal::Duration(*n), Type::Duration),
            ExprKind::Str(s) => Compiled::literal(Literal::Str(s.as_str().into()), Type::String),
            ExprKind::Path(parts) => self.path(&parts.join("."), span)?,
            ExprKind::List(_) => {
                return Err(SourceError::new(
                    span,
                    "a list can only stand on the right of `in`, e.g. `x in [\"a\", \"b\"]`",
                ));
            }
            ExprKind::Unary(op, operand) => self.unary(*op, operand, span)?,
            ExprKind::Binary(op, lhs, rhs) => self.binary(*op, lhs, rhs, span)?,
            ExprKind::Ternary(cond, then, otherwise) => {
                let cond_c = self.compile(cond)?;
                if !matches!(cond_c.ty, Type::Bool | Type::Dyn) {
                    return Err(SourceError::new(
                        cond.span,
                        format!(
                            "the condition of `? :` must be a bool, this is {}",
                            type_name(cond_c.ty)
                        ),
                    ));
                }
                let a = self.compile(then)?;
                let b = self.compile(otherwise)?;
                let ty = unify(a.ty, b.ty).ok_or_else(|| {
                    SourceError::new(
                        span,
                        format!(
                            "both branches of `? :` must have one type, found {} and {}",
                            type_name(a.ty),
                            type_name(b.ty)
                        ),
                    )
                })?;
                let (c, a, b) = (cond_c.node, a.node, b.node);
                Compiled::of(
                    ty,
                    node(move |ctx| match c(ctx) {
                        Value::Bool(true) => a(ctx),
                        Value::Bool(false) => b(ctx),
                        _ => Value::Null,
                    }),
                )
            }
            ExprKind::Call(name, args) => self.call(name, args, span)?,
            ExprKind::Method(receiver, name, args) => self.method(receiver, name, args, span)?,
        })
    }

    fn record_read(&mut self, path: &str, make: impl FnOnce() -> Node) {
        if !self.reads.iter().any(|r| r.path == path) {
            self.reads.push(Read {
                path: path.to_string(),
                node: make(),
            });
        }
    }

    fn path(&mut self, path: &str, span: Span) -> Result<Compiled, SourceError> {
        if path.starts_with(LISTS_PREFIX) {
            return Err(SourceError::new(
                span,
                format!("a named list can only stand on the right of `in`, e.g. `x in {path}`"),
            ));
        }
        if path == ATTRIBUTES_PREFIX.trim_end_matches('.') {
            return Err(SourceError::new(
                span,
                "read one custom attribute at a time: `event.attributes.<name>`",
            ));
        }
        if let Some(name) = path.strip_prefix(ATTRIBUTES_PREFIX) {
            if name.is_empty() || name.contains('.') {
                return Err(SourceError::new(
                    span,
                    "write a custom attribute as `event.attributes.<name>`",
                ));
            }
            let make = |name: String| -> Node {
                node(move |c| {
                    c.event
                        .attributes
                        .get(&name)
                        .map_or(Value::Null, Value::from_json)
                })
            };
            self.record_read(path, || make(name.to_string()));
            return Ok(Compiled::of(Type::Dyn, make(name.to_string())));
        }
        let Some(def) = schema::resolve(path) else {
            let hint = schema::suggest(path)
                .map(|p| format!(" (did you mean `{p}`?)"))
                .unwrap_or_default();
            return Err(SourceError::new(
                span,
                format!("unknown field `{path}`{hint}"),
            ));
        };
        let make = move || -> Node {
            match def.source {
                Source::Feature(f) => node(move |c| schema::read_feature(c.features, f)),
                Source::Field(read) => node(read),
            }
        };
        if let Source::Feature(f) = def.source {
            self.features = self.features.with(f);
        }
        self.record_read(def.path, make);
        Ok(Compiled::of(def.ty, make()))
    }

    fn unary(&mut self, op: UnaryOp, operand: &Expr, span: Span) -> Result<Compiled, SourceError> {
        let inner = self.compile(operand)?;
        let f = inner.node;
        match op {
            UnaryOp::Not => {
                if !matches!(inner.ty, Type::Bool | Type::Dyn) {
                    return Err(SourceError::new(
                        span,
                        format!("`!` needs a bool, this is {}", type_name(inner.ty)),
                    ));
                }
                Ok(Compiled::of(
                    Type::Bool,
                    node(move |c| match f(c) {
                        Value::Bool(b) => Value::Bool(!b),
                        _ => Value::Null,
                    }),
                ))
            }
            UnaryOp::Neg => {
                if !matches!(
                    inner.ty,
                    Type::Int | Type::Float | Type::Duration | Type::Dyn
                ) {
                    return Err(SourceError::new(
                        span,
                        format!(
                            "`-` needs a number or a duration, this is {}",
                            type_name(inner.ty)
                        ),
                    ));
                }
                Ok(Compiled::of(
                    inner.ty,
                    node(move |c| match f(c) {
                        Value::Int(n) => n.checked_neg().map_or(Value::Null, Value::Int),
                        Value::Float(n) => Value::Float(-n),
                        Value::Duration(n) => n.checked_neg().map_or(Value::Null, Value::Duration),
                        _ => Value::Null,
                    }),
                ))
            }
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        lhs: &Expr,
        rhs: &Expr,
        span: Span,
    ) -> Result<Compiled, SourceError> {
        if op == BinaryOp::In {
            return self.membership(lhs, rhs, span);
        }
        let l = self.compile(lhs)?;
        let r = self.compile(rhs)?;
        let mismatch = |what: &str| {
            SourceError::new(
                span,
                format!(
                    "`{op}` {what}, found {} and {}",
                    type_name(l.ty),
                    type_name(r.ty)
                ),
            )
        };
        match op {
            BinaryOp::And | BinaryOp::Or => {
                if !matches!(l.ty, Type::Bool | Type::Dyn)
                    || !matches!(r.ty, Type::Bool | Type::Dyn)
                {
                    return Err(mismatch("needs bools on both sides"));
                }
                let (a, b) = (l.node, r.node);
                // Three-valued logic: false wins over null in `&&`, true
                // wins over null in `||`, whichever side it is on.
                let and = op == BinaryOp::And;
                Ok(Compiled::of(
                    Type::Bool,
                    node(move |c| {
                        let x = a(c).as_bool();
                        if x == Some(!and) {
                            return Value::Bool(!and);
                        }
                        let y = b(c).as_bool();
                        match (x, y) {
                            (_, Some(v)) if v != and => Value::Bool(!and),
                            (Some(_), Some(_)) => Value::Bool(and),
                            _ => Value::Null,
                        }
                    }),
                ))
            }
            BinaryOp::Coalesce => {
                let ty =
                    unify(l.ty, r.ty).ok_or_else(|| mismatch("needs one type on both sides"))?;
                let (a, b) = (l.node, r.node);
                Ok(Compiled::of(
                    ty,
                    node(move |c| match a(c) {
                        Value::Null => b(c),
                        v => v,
                    }),
                ))
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                if !eq_compatible(l.ty, r.ty) {
                    return Err(mismatch("cannot compare these types"));
                }
                check_enum(l.ty, &r, rhs.span)?;
                check_enum(r.ty, &l, lhs.span)?;
                let negate = op == BinaryOp::Ne;
                let (a, b) = (l.node, r.node);
                Ok(Compiled::of(
                    Type::Bool,
                    node(move |c| bool_of(a(c).equals(&b(c)).map(|eq| eq != negate))),
                ))
            }
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                if !orderable(l.ty, r.ty) {
                    return Err(mismatch(
                        "compares two numbers, two durations or two strings",
                    ));
                }
                let (a, b) = (l.node, r.node);
                use std::cmp::Ordering::*;
                let accept: fn(std::cmp::Ordering) -> bool = match op {
                    BinaryOp::Lt => |o| o == Less,
                    BinaryOp::Le => |o| o != Greater,
                    BinaryOp::Gt => |o| o == Greater,
                    _ => |o| o != Less,
                };
                Ok(Compiled::of(
                    Type::Bool,
                    node(move |c| bool_of(a(c).compare(&b(c)).map(accept))),
                ))
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                self.arithmetic(op, l, r, span)
            }
            BinaryOp::In => unreachable!("handled above"),
        }
    }

    fn arithmetic(
        &mut self,
        op: BinaryOp,
        l: Compiled,
        r: Compiled,
        span: Span,
    ) -> Result<Compiled, SourceError> {
        use Type::*;
        let ty = match (op, l.ty, r.ty) {
            (_, Int, Int) => Int,
            (BinaryOp::Rem, _, _) if l.ty == Dyn || r.ty == Dyn => Dyn,
            (BinaryOp::Rem, _, _) => None.ok_or_else(|| {
                SourceError::new(
                    span,
                    format!(
                        "`%` needs two ints, found {} and {}",
                        type_name(l.ty),
                        type_name(r.ty)
                    ),
                )
            })?,
            (_, a, b) if a.is_numeric() && b.is_numeric() => Float,
            (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Duration,
            (BinaryOp::Add, a, b) if a.is_stringy() && b.is_stringy() => String,
            (_, Dyn, _) | (_, _, Dyn) => Dyn,
            _ => {
                return Err(SourceError::new(
                    span,
                    format!(
                        "`{op}` cannot combine {} and {}",
                        type_name(l.ty),
                        type_name(r.ty)
                    ),
                ));
            }
        };
        let (a, b) = (l.node, r.node);
        Ok(Compiled::of(
            ty,
            node(move |c| arith(op, a(c), b(c)).unwrap_or(Value::Null)),
        ))
    }

    fn membership(&mut self, lhs: &Expr, rhs: &Expr, span: Span) -> Result<Compiled, SourceError> {
        let l = self.compile(lhs)?;
        let f = l.node;
        match &rhs.kind {
            ExprKind::Path(parts) if parts.len() == 2 && parts[0] == "lists" => {
                let name = &parts[1];
                let Some(list) = self.lists.get(name).cloned() else {
                    let known: Vec<&str> = self.lists.keys().map(String::as_str).collect();
                    return Err(SourceError::new(
                        rhs.span,
                        format!(
                            "unknown list `{name}`; the lists are: {}",
                            if known.is_empty() {
                                "(none)".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                };
                let want = list.kind.element_type();
                let fits = l.ty == Type::Dyn
                    || l.ty == want
                    || (want == Type::String && l.ty.is_stringy());
                if !fits {
                    return Err(SourceError::new(
                        span,
                        format!(
                            "list `{name}` holds {} entries ({}), it cannot contain {}",
                            list.kind.as_str(),
                            type_name(want),
                            type_name(l.ty)
                        ),
                    ));
                }
                if !self.lists_used.contains(name) {
                    self.lists_used.push(name.clone());
                }
                Ok(Compiled::of(
                    Type::Bool,
                    node(move |c| bool_of(list.contains(&f(c)))),
                ))
            }
            ExprKind::List(items) => {
                let set = self.literal_set(l.ty, items)?;
                Ok(Compiled::of(
                    Type::Bool,
                    node(move |c| bool_of(set.contains(&f(c)))),
                ))
            }
            _ => Err(SourceError::new(
                rhs.span,
                "the right of `in` must be a list literal such as `[\"a\", \"b\"]` or a named list such as `lists.deny`",
            )),
        }
    }

    fn literal_set(&mut self, ty: Type, items: &[Expr]) -> Result<LiteralSet, SourceError> {
        let mut set = LiteralSet::default();
        for item in items {
            let c = self.compile(item)?;
            let Some(literal) = c.literal.clone() else {
                return Err(SourceError::new(
                    item.span,
                    "list elements must be literal values",
                ));
            };
            if !(eq_compatible(ty, c.ty) || (ty == Type::Ip && c.ty == Type::String)) {
                return Err(SourceError::new(
                    item.span,
                    format!(
                        "{} cannot be in a list tested against {}",
                        type_name(c.ty),
                        type_name(ty)
                    ),
                ));
            }
            check_enum(ty, &c, item.span)?;
            match literal {
                Literal::Str(s) if ty == Type::Ip => set
                    .cidrs
                    .push(Cidr::parse(&s).map_err(|e| SourceError::new(item.span, e))?),
                Literal::Str(s) => {
                    set.strings.insert(s.as_ref().into());
                }
                Literal::Int(n) => set.ints.push(n),
                Literal::Float(n) => set.numbers.push(n),
                Literal::Bool(b) => set.bools[usize::from(b)] = true,
                Literal::Duration(n) => set.durations.push(n),
            }
        }
        Ok(set)
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Result<Compiled, SourceError> {
        let arity = |n: usize| check_arity(name, n, args.len(), span);
        match name {
            "has" => {
                arity(1)?;
                if !matches!(args[0].kind, ExprKind::Path(_)) {
                    return Err(SourceError::new(
                        args[0].span,
                        "`has` takes a field name, e.g. `has(event.device_id)`",
                    ));
                }
                let f = self.compile(&args[0])?.node;
                Ok(Compiled::of(
                    Type::Bool,
                    node(move |c| Value::Bool(!f(c).is_null())),
                ))
            }
            "size" => {
                arity(1)?;
                let arg = self.compile(&args[0])?;
                self.size(arg, span)
            }
            "int" => {
                arity(1)?;
                let arg = self.compile(&args[0])?;
                if !matches!(
                    arg.ty,
                    Type::Int
                        | Type::Float
                        | Type::Duration
                        | Type::String
                        | Type::Enum(_)
                        | Type::Dyn
                ) {
                    return Err(SourceError::new(
                        span,
                        format!("`int` cannot convert {}", type_name(arg.ty)),
                    ));
                }
                let f = arg.node;
                Ok(Compiled::of(
                    Type::Int,
                    node(move |c| match f(c) {
                        Value::Int(n) | Value::Duration(n) => Value::Int(n),
                        Value::Float(x) if x.is_finite() && x.abs() < 9.2e18 => {
                            Value::Int(x.trunc() as i64)
                        }
                        Value::Str(s) => s.as_str().trim().parse().map_or(Value::Null, Value::Int),
                        _ => Value::Null,
                    }),
                ))
            }
            "double" => {
                arity(1)?;
                let arg = self.compile(&args[0])?;
                if !matches!(
                    arg.ty,
                    Type::Int | Type::Float | Type::String | Type::Enum(_) | Type::Dyn
                ) {
                    return Err(SourceError::new(
                        span,
                        format!("`double` cannot convert {}", type_name(arg.ty)),
                    ));
                }
                let f = arg.node;
                Ok(Compiled::of(
                    Type::Float,
                    node(move |c| match f(c) {
                        Value::Int(n) => Value::Float(n as f64),
                        Value::Float(x) => Value::Float(x),
                        Value::Str(s) => {
                            s.as_str().trim().parse().map_or(Value::Null, Value::Float)
                        }
                        _ => Value::Null,
                    }),
                ))
            }
            "duration" => {
                arity(1)?;
                let ExprKind::Str(text) = &args[0].kind else {
                    return Err(SourceError::new(
                        args[0].span,
                        "`duration` takes a literal string such as \"7d\"",
                    ));
                };
                let secs = parse_duration(text).ok_or_else(|| {
                    SourceError::new(
                        args[0].span,
                        format!("\"{text}\" is not a duration: use s, m, h, d or w, e.g. \"7d\""),
                    )
                })?;
                Ok(Compiled::literal(Literal::Duration(secs), Type::Duration))
            }
            "matches" => {
                arity(2)?;
                let subject = self.compile(&args[0])?;
                self.matches(subject, &args[1], span)
            }
            _ => Err(SourceError::new(
                span,
                format!("unknown function `{name}`; the functions are: {FUNCTIONS}"),
            )),
        }
    }

    fn size(&mut self, arg: Compiled, span: Span) -> Result<Compiled, SourceError> {
        if !(arg.ty.is_stringy() || arg.ty == Type::Dyn) {
            return Err(SourceError::new(
                span,
                format!("`size` needs a string, this is {}", type_name(arg.ty)),
            ));
        }
        let f = arg.node;
        Ok(Compiled::of(
            Type::Int,
            node(move |c| match f(c) {
                Value::Str(s) => Value::Int(s.as_str().chars().count() as i64),
                _ => Value::Null,
            }),
        ))
    }

    fn matches(
        &mut self,
        subject: Compiled,
        pattern: &Expr,
        span: Span,
    ) -> Result<Compiled, SourceError> {
        if !(subject.ty.is_stringy() || subject.ty == Type::Dyn) {
            return Err(SourceError::new(
                span,
                format!(
                    "`matches` needs a string, this is {}",
                    type_name(subject.ty)
                ),
            ));
        }
        let ExprKind::Str(text) = &pattern.kind else {
            return Err(SourceError::new(
                pattern.span,
                "the pattern of `matches` must be a literal string, so that it is compiled once when the rule loads",
            ));
        };
        let regex = regex::RegexBuilder::new(text)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                SourceError::new(
                    pattern.span,
                    format!("invalid regular expression: {}", first_line(&e.to_string())),
                )
            })?;
        let f = subject.node;
        Ok(Compiled::of(
            Type::Bool,
            node(move |c| match f(c) {
                Value::Str(s) => Value::Bool(regex.is_match(s.as_str())),
                _ => Value::Null,
            }),
        ))
    }

    fn method(
        &mut self,
        receiver: &Expr,
        name: &str,
        args: &[Expr],
        span: Span,
    ) -> Result<Compiled, SourceError> {
        let recv = self.compile(receiver)?;
        let stringy = recv.ty.is_stringy() || recv.ty == Type::Dyn;
        let arity = |n: usize| check_arity(name, n, args.len(), span);
        match name {
            "startsWith" | "endsWith" | "contains" if stringy => {
                arity(1)?;
                let arg = self.compile(&args[0])?;
                if !(arg.ty.is_stringy() || arg.ty == Type::Dyn) {
                    return Err(SourceError::new(
                        args[0].span,
                        format!("`{name}` takes a string, this is {}", type_name(arg.ty)),
                    ));
                }
                let test: fn(&str, &str) -> bool = match name {
                    "startsWith" => |s, p| s.starts_with(p),
                    "endsWith" => |s, p| s.ends_with(p),
                    _ => |s, p| s.contains(p),
                };
                let (f, g) = (recv.node, arg.node);
                Ok(Compiled::of(
                    Type::Bool,
                    node(move |c| match (f(c), g(c)) {
                        (Value::Str(s), Value::Str(p)) => Value::Bool(test(s.as_str(), p.as_str())),
                        _ => Value::Null,
                    }),
                ))
            }
            "matches" if stringy => {
                arity(1)?;
                self.matches(recv, &args[0], span)
            }
            "lower" | "upper" if stringy => {
                arity(0)?;
                let upper = name == "upper";
                let f = recv.node;
                Ok(Compiled::of(
                    Type::String,
                    node(move |c| match f(c) {
                        Value::Str(s) if upper => Value::Str(Str::Owned(s.as_str().to_uppercase())),
                        Value::Str(s) => Value::Str(Str::Owned(s.as_str().to_lowercase())),
                        _ => Value::Null,
                    }),
                ))
            }
            "size" if stringy => {
                arity(0)?;
                self.size(recv, span)
            }
            "inCidr" if matches!(recv.ty, Type::Ip | Type::Dyn) => {
                arity(1)?;
                let ExprKind::Str(text) = &args[0].kind else {
                    return Err(SourceError::new(
                        args[0].span,
                        "`inCidr` takes a literal range such as \"10.0.0.0/8\"",
                    ));
                };
                let cidr = Cidr::parse(text).map_err(|e| SourceError::new(args[0].span, e))?;
                let f = recv.node;
                Ok(Compiled::of(
                    Type::Bool,
                    node(move |c| match f(c) {
                        Value::Ip(ip) => Value::Bool(cidr.contains(ip)),
                        _ => Value::Null,
                    }),
                ))
            }
            _ => {
                let methods = match recv.ty {
                    Type::Ip => "inCidr",
                    t if t.is_stringy() => {
                        "startsWith, endsWith, contains, matches, lower, upper, size"
                    }
                    _ => "(none)",
                };
                Err(SourceError::new(
                    span,
                    format!(
                        "{} has no method `{name}`; its methods are: {methods}",
                        type_name(recv.ty)
                    ),
                ))
            }
        }
    }
}

/// `name` must be called with `n` arguments.
fn check_arity(name: &str, n: usize, found: usize, span: Span) -> Result<(), SourceError> {
    if found == n {
        return Ok(());
    }
    Err(SourceError::new(
        span,
        format!(
            "`{name}` takes {n} argument{}, found {found}",
            if n == 1 { "" } else { "s" }
        ),
    ))
}

/// The regex crate's message: its last line, without the `error: ` prefix.
fn first_line(text: &str) -> &str {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim();
    line.strip_prefix("error: ").unwrap_or(line)
}

/// Arithmetic on values; `None` on null, mismatch, overflow or division by
/// zero (ints), which the rule sees as null.
fn arith<'a>(op: BinaryOp, a: Value<'a>, b: Value<'a>) -> Option<Value<'a>> {
    use Value::*;
    Some(match (a, b) {
        (Int(x), Int(y)) => Int(match op {
            BinaryOp::Add => x.checked_add(y)?,
            BinaryOp::Sub => x.checked_sub(y)?,
            BinaryOp::Mul => x.checked_mul(y)?,
            BinaryOp::Div => x.checked_div(y)?,
            BinaryOp::Rem => x.checked_rem(y)?,
            _ => return None,
        }),
        (Duration(x), Duration(y)) => Duration(match op {
            BinaryOp::Add => x.checked_add(y)?,
            BinaryOp::Sub => x.checked_sub(y)?,
            _ => return None,
        }),
        (Str(x), Str(y)) if op == BinaryOp::Add => Str(super::value::Str::Owned(format!(
            "{}{}",
            x.as_str(),
            y.as_str()
        ))),
        (x, y) => {
            let (x, y) = (as_f64(&x)?, as_f64(&y)?);
            Float(match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                // Null like integer division by zero, not infinity: an
                // infinite ratio would make `x / y > k` fire.
                BinaryOp::Div if y == 0.0 => return None,
                BinaryOp::Div => x / y,
                _ => return None,
            })
        }
    })
}

fn as_f64(v: &Value<'_>) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(n) => Some(*n),
        _ => None,
    }
}

/// The elements of a list literal, by kind.
#[derive(Default)]
struct LiteralSet {
    strings: HashSet<Box<str>, RandomState>,
    /// Ints compare exactly with ints; with floats, as numbers.
    ints: Vec<i64>,
    numbers: Vec<f64>,
    durations: Vec<i64>,
    bools: [bool; 2],
    cidrs: Vec<Cidr>,
}

impl LiteralSet {
    fn contains(&self, value: &Value<'_>) -> Option<bool> {
        Some(match value {
            Value::Null => return None,
            Value::Str(s) => self.strings.contains(s.as_str()),
            Value::Int(n) => self.ints.contains(n) || self.numbers.contains(&(*n as f64)),
            Value::Float(n) => {
                self.numbers.contains(n) || self.ints.iter().any(|i| *i as f64 == *n)
            }
            Value::Duration(n) => self.durations.contains(n),
            Value::Bool(b) => self.bools[usize::from(*b)],
            Value::Ip(ip) => self.cidrs.iter().any(|c| c.contains(*ip)),
        })
    }
}
