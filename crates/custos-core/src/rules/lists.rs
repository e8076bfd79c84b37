//! Named lists: sets of addresses, ASNs, institutions, destinations,
//! devices or accounts that rules test with `x in lists.name`.
//!
//! A list belongs to a rule-set version: editing one through the API builds
//! and swaps in a new version, so a decision always names the exact lists it
//! saw.

use std::collections::HashSet;
use std::net::IpAddr;

use foldhash::fast::RandomState;
use serde::{Deserialize, Serialize};

use super::value::{Type, Value};

/// What a list holds, which fixes how entries are read and what they match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// Addresses and CIDR ranges, e.g. `185.220.101.0/24`.
    Ip,
    /// Autonomous system numbers, `13335` or `AS13335`.
    Asn,
    /// Institution ids (sort codes, routing numbers, BICs), compared
    /// without spaces or dashes and in upper case, as events store them.
    Institution,
    /// Destination account tokens, as events and the API show them.
    Destination,
    Device,
    Account,
    /// Any other strings, compared exactly.
    String,
}

impl ListKind {
    /// The type a value must have to be tested against the list.
    pub fn element_type(self) -> Type {
        match self {
            ListKind::Ip => Type::Ip,
            ListKind::Asn => Type::Int,
            _ => Type::String,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Ip => "ip",
            ListKind::Asn => "asn",
            ListKind::Institution => "institution",
            ListKind::Destination => "destination",
            ListKind::Device => "device",
            ListKind::Account => "account",
            ListKind::String => "string",
        }
    }
}

/// An address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    bits: u128,
    prefix: u8,
    v4: bool,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::/n` or a bare address.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR range"))?;
        let (bits, max, v4) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32, true),
            IpAddr::V6(v6) => (u128::from(v6), 128, false),
        };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("`{text}` has a prefix length above {max}")),
            },
        };
        Ok(Cidr {
            bits: bits & mask(prefix, max),
            prefix,
            v4,
        })
    }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) counts as its IPv4
    /// address, so that it cannot slip past an IPv4 range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) if self.v4 => {
                u128::from(u32::from(v4)) & mask(self.prefix, 32) == self.bits
            }
            IpAddr::V6(v6) if !self.v4 => u128::from(v6) & mask(self.prefix, 128) == self.bits,
            _ => false,
        }
    }
}

fn mask(prefix: u8, max: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        let width = u32::from(max);
        let ones = (u128::MAX >> (128 - width)) & !((1u128 << (width - u32::from(prefix))) - 1);
        if width == 128 && prefix == 128 {
            u128::MAX
        } else {
            ones
        }
    }
}

/// A compiled list.
#[derive(Debug, Clone)]
pub struct NamedList {
    pub kind: ListKind,
    strings: HashSet<Box<str>, RandomState>,
    ints: HashSet<i64, RandomState>,
    cidrs: Vec<Cidr>,
    len: usize,
}

impl NamedList {
    /// Reads entries; blank ones are skipped. Errors name the entry.
    pub fn build<'e>(
        kind: ListKind,
        entries: impl IntoIterator<Item = &'e str>,
    ) -> Result<NamedList, String> {
        let mut list = NamedList {
            kind,
            strings: HashSet::default(),
            ints: HashSet::default(),
            cidrs: Vec::new(),
            len: 0,
        };
        for raw in entries {
            let entry = raw.trim();
            if entry.is_empty() {
                continue;
            }
            match kind {
                ListKind::Ip => list.cidrs.push(Cidr::parse(entry)?),
                ListKind::Asn => {
                    let digits = entry
                        .strip_prefix("AS")
                        .or_else(|| entry.strip_prefix("as"))
                        .unwrap_or(entry);
                    let asn = digits
                        .parse::<u32>()
                        .map_err(|_| format!("`{entry}` is not an ASN"))?;
                    list.ints.insert(i64::from(asn));
                }
                ListKind::Institution => {
                    list.strings
                        .insert(crate::parse::compact_code(entry).into_boxed_str());
                }
                _ => {
                    list.strings.insert(entry.into());
                }
            }
            list.len += 1;
        }
        Ok(list)
    }

    /// Number of entries read.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Membership; `None` for a null or mismatched value.
    pub fn contains(&self, value: &Value<'_>) -> Option<bool> {
        match value {
            Value::Ip(ip) => Some(self.cidrs.iter().any(|c| c.contains(*ip))),
            Value::Int(n) => Some(self.ints.contains(n)),
            Value::Str(s) => Some(self.strings.contains(s.as_str())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_match_their_range_only() {
        let c = Cidr::parse("185.220.101.0/24").unwrap();
        assert!(c.contains("185.220.101.4".parse().unwrap()));
        assert!(!c.contains("185.220.102.4".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let one = Cidr::parse("2001:db8::1").unwrap();
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn entries_are_normalized_by_kind() {
        let asns = NamedList::build(ListKind::Asn, ["AS13335", " 9009 ", ""]).unwrap();
        assert_eq!(asns.len(), 2);
        assert_eq!(asns.contains(&Value::Int(13335)), Some(true));
        let banks = NamedList::build(ListKind::Institution, ["60-83-71"]).unwrap();
        assert_eq!(banks.contains(&Value::str("608371")), Some(true));
        assert!(NamedList::build(ListKind::Asn, ["AS-x"]).is_err());
    }
}
