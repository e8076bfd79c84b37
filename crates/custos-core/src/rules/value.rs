//! Runtime values and static types of the rules language.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The static type of an expression, known when a rule is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Bool,
    Int,
    Float,
    /// Seconds; written `7d`, `12h`, `30m`.
    Duration,
    String,
    Ip,
    /// A string with a fixed set of values, e.g. `event.type`: comparing it
    /// with a literal outside the set is a load-time error.
    Enum(&'static [&'static str]),
    /// Known only at run time: custom event attributes.
    Dyn,
}

impl Type {
    pub fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float)
    }

    pub fn is_stringy(self) -> bool {
        matches!(self, Type::String | Type::Enum(_))
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Float => "float",
            Type::Duration => "duration",
            Type::String | Type::Enum(_) => "string",
            Type::Ip => "ip",
            Type::Dyn => "dyn",
        })
    }
}

/// A string value: borrowed from the event, shared with the compiled rule,
/// or built while evaluating.
#[derive(Debug, Clone)]
pub enum Str<'a> {
    Borrowed(&'a str),
    Shared(Arc<str>),
    Owned(String),
}

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Str::Borrowed(s) => s,
            Str::Shared(s) => s,
            Str::Owned(s) => s,
        }
    }
}

/// A value while evaluating. `Null` stands for an absent field and for an
/// error (overflow, division by zero): it spreads through operators, and a
/// rule whose condition is `Null` does not fire.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Duration(i64),
    Str(Str<'a>),
    Ip(IpAddr),
}

impl<'a> Value<'a> {
    pub fn str(s: &'a str) -> Value<'a> {
        Value::Str(Str::Borrowed(s))
    }

    pub fn opt_str(s: Option<&'a str>) -> Value<'a> {
        s.map_or(Value::Null, Value::str)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Float(n) => Some(*n),
            _ => None,
        }
    }

    /// Equality; `None` when either side is null. Values of different kinds
    /// are unequal (ints and floats compare as numbers).
    pub fn equals(&self, other: &Value<'_>) -> Option<bool> {
        Some(match (self, other) {
            (Value::Null, _) | (_, Value::Null) => return None,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a.as_str() == b.as_str(),
            (Value::Ip(a), Value::Ip(b)) => a == b,
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        })
    }

    /// Ordering for `<` and friends; `None` when null or not comparable.
    pub fn compare(&self, other: &Value<'_>) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
            (Value::Str(a), Value::Str(b)) => Some(a.as_str().cmp(b.as_str())),
            (a, b) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        }
    }

    /// The value as JSON, for explanations.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(n) => (*n).into(),
            Value::Float(n) => serde_json::Number::from_f64(*n)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Duration(secs) => (*secs).into(),
            Value::Str(s) => s.as_str().into(),
            Value::Ip(ip) => ip.to_string().into(),
        }
    }

    /// A custom attribute's JSON value; arrays and objects read as null.
    pub fn from_json(value: &'a serde_json::Value) -> Value<'a> {
        match value {
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => n.as_f64().map_or(Value::Null, Value::Float),
            },
            serde_json::Value::String(s) => Value::str(s),
            _ => Value::Null,
        }
    }
}
