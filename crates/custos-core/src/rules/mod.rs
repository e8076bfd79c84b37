//! The rules language: small, typed, compiled conditions over an event, its
//! enrichment and its features.
//!
//! A rule reads like a CEL expression:
//!
//! ```text
//! session.risky && destination.age < 7d && event.amount >= 100000
//! event.ip in lists.blocked_ips || network.asn in [9009, 60068]
//! client.browser.startsWith("Headless") && !has(event.device_id)
//! ```
//!
//! There are no loops, no user functions and no recursion, so the cost of a
//! rule is bounded by its length. Rules are parsed and type-checked when they
//! are loaded: an unknown field, a type mismatch, an enum value that cannot
//! occur (`event.type == "payot"`), a bad regular expression or a bad CIDR
//! is an error with a line, a column and a caret, and the rule set is not
//! loaded. A loaded rule is a tree of closures that read features by slot.
//!
//! # Grammar
//!
//! ```text
//! expr       ::= coalesce ( "?" expr ":" expr )?
//! coalesce   ::= or ( "??" or )*
//! or         ::= and ( "||" and )*
//! and        ::= compare ( "&&" compare )*
//! compare    ::= sum ( compare_op sum )?
//! compare_op ::= "==" | "!=" | "<" | "<=" | ">" | ">=" | "in"
//! sum        ::= product ( ( "+" | "-" ) product )*
//! product    ::= unary ( ( "*" | "/" | "%" ) unary )*
//! unary      ::= ( "!" | "-" ) unary | postfix
//! postfix    ::= primary ( "." name ( "(" args? ")" )? )*
//! primary    ::= literal | name "(" args? ")" | name | "(" expr ")" | "[" args? "]"
//! args       ::= expr ( "," expr )* ","?
//! literal    ::= int | float | string | duration | "true" | "false"
//! int        ::= digit+
//! float      ::= digit+ "." digit+ ( ( "e" | "E" ) ( "+" | "-" )? digit+ )?
//! duration   ::= ( digit+ ( "s" | "m" | "h" | "d" | "w" ) )+        e.g. 7d, 1h30m
//! string     ::= '"' char* '"' | "'" char* "'" | "r" '"' raw* '"'    escapes: \n \t \r \0 \\ \" \'
//! name       ::= ( letter | "_" ) ( letter | digit | "_" )*
//! ```
//!
//! `//` starts a comment to the end of the line. Comparisons do not chain.
//!
//! # Types and null
//!
//! Values are `bool`, `int`, `float`, `duration`, `string` and `ip`; custom
//! attributes (`event.attributes.<name>`) are `dyn`, checked when read.
//! Ints and floats mix in arithmetic and comparisons. A field the event does
//! not have, and an error (integer overflow, division by zero), is *null*:
//! null spreads through operators, `&&` and `||` use three-valued logic
//! (`false && null` is `false`, `true || null` is `true`), and a rule fires
//! only when its condition is exactly `true`. `has(field)` tests presence;
//! `field ?? default` replaces null.
//!
//! # Functions
//!
//! `has(field)`, `size(s)`, `int(x)`, `double(x)`, `duration("7d")`,
//! `matches(s, "re")`; methods on strings `startsWith`, `endsWith`,
//! `contains`, `matches` (the pattern must be a literal: it is compiled once,
//! and the regex engine runs in linear time), `lower`, `upper`, `size`; on
//! addresses `inCidr("10.0.0.0/8")`. `x in [..]` tests a list literal (for
//! an `ip`, its strings are CIDR ranges); `x in lists.name` a named list.
//!
//! The fields and features rules can read are in [`schema`] and
//! `docs/rules.md`.

pub mod compile;
pub mod lists;
pub mod removal;
pub mod ruleset;
pub mod schema;
pub mod syntax;
pub mod value;

pub use compile::{CompiledExpr, compile_condition};
pub use lists::{ListKind, NamedList};
pub use removal::{Removal, RemovalOverride, RemovalRefused};
pub use ruleset::{
    ListSource, Mode, Position, Rule, RuleError, RuleFiles, RuleSet, RuleSetError, RuleSetSource,
    RuleSource,
};
pub use schema::EvalContext;
pub use value::{Type, Value};

macro_rules! embedded {
    ($($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../../../rules/", $path)))),+]
    };
}

/// The default policy's files (the repository's `rules/` directory), built
/// into the binary so that Custos runs without a rules directory.
pub const DEFAULT_RULE_FILES: &[(&str, &str)] = embedded!(
    "ruleset.toml",
    "login.toml",
    "changes.toml",
    "payouts.toml",
    "sessions.toml",
    "lists/denied_destinations.txt",
    "lists/blocked_ips.txt",
);

/// The default rule set's source.
pub fn default_source() -> RuleSetSource {
    RuleFiles {
        files: DEFAULT_RULE_FILES
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect(),
    }
    .into_source()
    // The embedded files are checked by the tests.
    .unwrap_or_else(|e| panic!("the built-in default rules are invalid: {e}"))
}

/// The default rule set, version 1.
pub fn default_rule_set() -> RuleSet {
    RuleSet::compile(default_source(), 1)
        .unwrap_or_else(|e| panic!("the built-in default rules are invalid: {e}"))
}
