//! User agent → browser, OS and device type, with the uap-core rules and a
//! cache.
//!
//! The rules are uap-core's `regexes.yaml` (the data every ua-parser port
//! shares), converted to JSON in `data/` and compiled into the binary, and
//! run by the `ua-parser` crate, which prefilters the ~1,200 regexes with
//! literal matching. Family names are uap-core's as they are (`Chrome`,
//! `Chrome Mobile`, `Mobile Safari`, `Mac OS X`, `iOS`...), versions are
//! the major part only.
//!
//! uap-core has no device *type*, so [`device_type`] derives one from what
//! it does report plus two long-standing conventions: Android browsers
//! without `Mobile` in their user agent are tablets, and `Mobi` marks a
//! phone. Bots are uap-core spiders plus scripted HTTP clients and headless
//! browsers, which no person logs in with.
//!
//! Matching a new string costs tens of microseconds, several times the
//! budget of a whole login score, while the strings themselves repeat
//! heavily (a few browser versions per platform). So results are cached per
//! string ([`BoundedCache`], 16,384 strings: a few MB for real ones, at
//! most about 20 MB). Strings are cut to [`MAX_USER_AGENT_BYTES`] before
//! matching, which bounds the cost of a hostile one and the cache's memory.

use std::sync::OnceLock;

use custos_core::enrich::{ClientInfo, DeviceType};
use ua_parser::{Extractor, Regexes, device, os, user_agent};

use crate::EnrichError;
use crate::cache::BoundedCache;

/// Longest prefix of a user agent that is matched and cached. Real ones are
/// well under this (400 bytes is a long one).
pub(crate) const MAX_USER_AGENT_BYTES: usize = 1024;
/// Distinct user agents whose results are kept.
const CACHE_CAPACITY: usize = 16 * 1024;

/// uap-core's rules, see `data/README.md`.
const UAP_CORE_REGEXES: &str = include_str!("../data/uap-core-regexes.json");

/// The compiled rules, shared by every parser in the process: they are
/// constant, and compiling them takes a fifth of a second.
static RULES: OnceLock<Result<Extractor<'static>, String>> = OnceLock::new();

fn rules() -> Result<&'static Extractor<'static>, EnrichError> {
    RULES
        .get_or_init(|| {
            let regexes: Regexes<'static> =
                serde_json::from_str(UAP_CORE_REGEXES).map_err(|e| format!("cannot parse: {e}"))?;
            Extractor::try_from(regexes).map_err(|e| format!("cannot compile: {e}"))
        })
        .as_ref()
        .map_err(|message| EnrichError::UserAgentRules(message.clone()))
}

/// Parses user agents into [`ClientInfo`], caching the results.
pub(crate) struct UserAgentParser {
    rules: &'static Extractor<'static>,
    cache: BoundedCache<Box<str>, ClientInfo>,
}

impl UserAgentParser {
    pub(crate) fn new() -> Result<Self, EnrichError> {
        Ok(UserAgentParser {
            rules: rules()?,
            cache: BoundedCache::new(CACHE_CAPACITY),
        })
    }

    pub(crate) fn parse(&self, user_agent: &str) -> ClientInfo {
        let user_agent = truncate(user_agent.trim(), MAX_USER_AGENT_BYTES);
        if user_agent.is_empty() {
            return ClientInfo::default();
        }
        if let Some(client) = self.cache.get(user_agent) {
            return client;
        }
        let client = parse_uncached(self.rules, user_agent);
        self.cache.insert(user_agent.into(), client.clone());
        client
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn parse_uncached(rules: &Extractor<'_>, user_agent: &str) -> ClientInfo {
    let browser = rules.ua.extract(user_agent);
    let os = rules.os.extract(user_agent);
    let device = rules.dev.extract(user_agent);
    let device_type = device_type(user_agent, browser.as_ref(), os.as_ref(), device.as_ref());
    ClientInfo {
        browser_version: browser.as_ref().and_then(|b| version(b.major)),
        browser: browser.and_then(|b| family(&b.family)),
        os_version: os.as_ref().and_then(|o| version(o.major.as_deref())),
        os: os.and_then(|o| family(&o.os)),
        device_type,
    }
}

/// uap-core says `Other` for a family it does not know.
fn family(name: &str) -> Option<String> {
    (!name.is_empty() && name != "Other").then(|| name.to_string())
}

fn version(major: Option<&str>) -> Option<String> {
    major.filter(|v| !v.is_empty()).map(str::to_string)
}

/// Scripted HTTP clients and headless browsers (uap-core families): bots as
/// far as a login is concerned. Mobile-app HTTP stacks (okhttp, CFNetwork,
/// Dalvik) are left out on purpose: a platform's own app sends those.
const AUTOMATION_FAMILIES: &[&str] = &[
    "curl",
    "libcurl-agent",
    "PycURL",
    "Wget",
    "wget2",
    "HTTPie",
    "Python Requests",
    "Python-urllib",
    "Python aiohttp",
    "Go-http-client",
    "go-resty",
    "Apache-HttpClient",
    "Google-HTTP-Java-Client",
    "PostmanRuntime",
    "insomnia",
    "axios",
    "reqwest",
    "libwww-perl",
    "HeadlessChrome",
    "PhantomJS",
];

const MOBILE_OS: &[&str] = &[
    "iOS",
    "Android",
    "Windows Phone",
    "BlackBerry OS",
    "KaiOS",
    "Symbian OS",
    "Firefox OS",
];

const DESKTOP_OS: &[&str] = &[
    "Windows",
    "Mac OS X",
    "Chrome OS",
    "Linux",
    "Ubuntu",
    "Debian",
    "Fedora",
    "FreeBSD",
];

/// Tokens that only desktop platforms put in their user agents.
const DESKTOP_TOKENS: &[&str] = &["Windows NT", "Macintosh", "X11", "CrOS"];

fn device_type(
    raw: &str,
    browser: Option<&user_agent::ValueRef<'_>>,
    os: Option<&os::ValueRef<'_>>,
    device: Option<&device::ValueRef<'_>>,
) -> DeviceType {
    let browser_family = browser.map_or("", |b| &b.family);
    let os_family = os.map_or("", |o| &o.os);
    let device_family = device.map_or("", |d| &d.device);
    let device_brand = device.and_then(|d| d.brand.as_deref()).unwrap_or("");

    if device_family == "Spider" || AUTOMATION_FAMILIES.contains(&browser_family) {
        return DeviceType::Bot;
    }
    // Before phones: iPad and Android tablet user agents also say `Mobile`
    // or name a mobile OS.
    if device_family == "iPad"
        || device_family.starts_with("Kindle")
        || device_family.contains("Tablet")
        || device_brand.contains("Tablet")
        || (os_family == "Android" && raw.starts_with("Mozilla/") && !raw.contains("Mobile"))
    {
        return DeviceType::Tablet;
    }
    if matches!(
        device_family,
        "iPhone" | "iPod" | "Generic Smartphone" | "Generic Feature Phone"
    ) || MOBILE_OS.contains(&os_family)
        || raw.contains("Mobi")
    {
        return DeviceType::Mobile;
    }
    if DESKTOP_OS.contains(&os_family)
        || (os.is_some() && DESKTOP_TOKENS.iter().any(|t| raw.contains(t)))
    {
        return DeviceType::Desktop;
    }
    if browser.is_some() || os.is_some() || device.is_some() {
        DeviceType::Other
    } else {
        DeviceType::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_rules_compile() {
        let rules = rules().expect("the embedded uap-core rules compile");
        let chrome = rules
            .ua
            .extract("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")
            .expect("chrome matches");
        assert_eq!(chrome.family, "Chrome");
    }

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        // 'ö' is two bytes: cutting at 2 would split it.
        assert_eq!(truncate("aöb", 2), "a");
        assert_eq!(truncate("aöb", 3), "aö");
    }

    #[test]
    fn long_user_agents_are_matched_on_their_prefix() {
        let parser = UserAgentParser::new().expect("rules compile");
        let firefox =
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
        // Two-byte characters from an odd offset: the cut falls inside one.
        let padded = format!("{firefox} {}", "ö".repeat(MAX_USER_AGENT_BYTES));
        assert_eq!((firefox.len() + 1) % 2, 1);
        assert_eq!(parser.parse(&padded), parser.parse(firefox));
        assert_eq!(parser.parse(&padded).browser.as_deref(), Some("Firefox"));
    }
}
