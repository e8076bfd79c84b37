//! Devices and their user agents, with versions that move over time, so
//! every generated user-agent string has known client facts (browser, OS,
//! major versions, device type) without a user-agent parser.
//!
//! # Choices
//!
//! - **Platforms and browsers**: Chrome, Firefox and Edge on Windows;
//!   Safari, Chrome and Firefox on macOS; Chrome and Firefox on Linux; Chrome
//!   on Android phones and tablets; Safari on iPhone and iPad. The strings
//!   are shaped like the real ones of 2018 onwards (full Chrome versions,
//!   `rv:` for Firefox, `Edge/` then `Edg/` for Edge, `Version/` for Safari).
//! - **Release schedules** from day 0 = 2018-01-01: Chrome 64 on day 23 and a
//!   major every 46 days (which brings Chrome 80 to February 2020, as it
//!   was), with patch releases every ~2 weeks that change the full version
//!   in the string; Firefox 58 on day 22 and a major every 7 weeks;
//!   EdgeHTML 16 → 17 → 18 with Windows feature updates, then Chromium Edge
//!   from 2020; macOS, iOS and Safari majors every September.
//! - **Each device trails the schedule by its own lag** (a week or so for
//!   auto-updating browsers, months for some OS updates), so a user's
//!   browser version changes about every six weeks, at a different moment
//!   for each user. Windows and Android versions are fixed at purchase.
//! - **Client facts follow the conventions of common user-agent parsers**,
//!   simplified: browser families `Chrome`, `Firefox`, `Safari`, `Edge`
//!   (mobile browsers are not separate families; the device type tells them
//!   apart), OS families `Windows` (`10`, `8`, `7`), `Mac OS X` (always `10`:
//!   the strings say `10_x` even on later systems), `Linux` (no version),
//!   `Android` and `iOS` (iPads too), with their major versions.

use custos_core::{ClientInfo, DeviceType};

use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Platform {
    Windows,
    Mac,
    Linux,
    AndroidPhone,
    Iphone,
    Ipad,
    AndroidTablet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Browser {
    Chrome,
    Firefox,
    Safari,
    Edge,
}

/// What a device is used as; decides when and where it is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceClass {
    Computer,
    Phone,
    Tablet,
}

impl Platform {
    pub(crate) fn class(self) -> DeviceClass {
        match self {
            Platform::Windows | Platform::Mac | Platform::Linux => DeviceClass::Computer,
            Platform::AndroidPhone | Platform::Iphone => DeviceClass::Phone,
            Platform::Ipad | Platform::AndroidTablet => DeviceClass::Tablet,
        }
    }

    pub(crate) fn os_name(self) -> &'static str {
        match self {
            Platform::Windows => "Windows",
            Platform::Mac => "Mac OS X",
            Platform::Linux => "Linux",
            Platform::AndroidPhone | Platform::AndroidTablet => "Android",
            Platform::Iphone | Platform::Ipad => "iOS",
        }
    }

    fn device_type(self) -> DeviceType {
        match self.class() {
            DeviceClass::Computer => DeviceType::Desktop,
            DeviceClass::Phone => DeviceType::Mobile,
            DeviceClass::Tablet => DeviceType::Tablet,
        }
    }
}

impl Browser {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Browser::Chrome => "Chrome",
            Browser::Firefox => "Firefox",
            Browser::Safari => "Safari",
            Browser::Edge => "Edge",
        }
    }
}

/// Every platform and browser pair this world has user agents for.
pub(crate) const COMBOS: &[(Platform, Browser)] = &[
    (Platform::Windows, Browser::Chrome),
    (Platform::Windows, Browser::Firefox),
    (Platform::Windows, Browser::Edge),
    (Platform::Mac, Browser::Safari),
    (Platform::Mac, Browser::Chrome),
    (Platform::Mac, Browser::Firefox),
    (Platform::Linux, Browser::Chrome),
    (Platform::Linux, Browser::Firefox),
    (Platform::AndroidPhone, Browser::Chrome),
    (Platform::Iphone, Browser::Safari),
    (Platform::Ipad, Browser::Safari),
    (Platform::AndroidTablet, Browser::Chrome),
];

const ANDROID_PHONES: &[&str] = &[
    "SM-G950F",
    "SM-G960F",
    "SM-A520F",
    "Pixel 2",
    "ONEPLUS A5000",
    "Moto G (5)",
    "ANE-LX1",
    "Redmi Note 5",
];
const ANDROID_TABLETS: &[&str] = &["SM-T580", "SM-T820", "Lenovo TB-X304F"];

/// One browser on one device: enough to write its user agent on any day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Client {
    pub platform: Platform,
    pub browser: Browser,
    /// Days this device's browser trails the release schedule.
    browser_lag: f64,
    /// Days this device's OS trails the release schedule (macOS, iOS).
    os_lag: f64,
    /// Windows major version (10, 8, 7) or Android major version, fixed at
    /// purchase.
    os_fixed: u8,
    /// Index of the Android phone or tablet model.
    model: u8,
}

/// A user-agent string and what a parser would say about it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserAgent {
    pub string: String,
    pub info: ClientInfo,
}

/// The newest Android major on a given day (Android 8 in 2018, then one a
/// year each August).
fn android_newest(day: f64) -> u8 {
    (8.0 + ((day + 146.0) / 365.0).floor()).clamp(6.0, 14.0) as u8
}

impl Client {
    /// A device bought on `day` by an ordinary user: browsers auto-update
    /// within days, OS updates within weeks to months, a few Windows and
    /// Android devices are old.
    pub(crate) fn bought(rng: &mut Rng, platform: Platform, browser: Browser, day: f64) -> Client {
        let browser_lag = match browser {
            // Edge (EdgeHTML) updates with Windows feature updates.
            Browser::Edge => rng.exponential(45.0).min(240.0),
            _ => rng.exponential(6.0).min(45.0),
        };
        let os_lag = if rng.chance(0.1) {
            rng.exponential(200.0).min(600.0)
        } else {
            rng.exponential(30.0).min(200.0)
        };
        let os_fixed = match platform {
            Platform::Windows if browser != Browser::Edge => *rng
                .pick(&[10, 10, 10, 10, 10, 10, 10, 10, 8, 7, 7, 7])
                .expect("non-empty"),
            Platform::Windows => 10,
            Platform::AndroidPhone | Platform::AndroidTablet => {
                let age = *rng.pick(&[0, 0, 0, 0, 1, 1, 1, 2, 2]).expect("non-empty");
                android_newest(day).saturating_sub(age)
            }
            _ => 0,
        };
        Client {
            platform,
            browser,
            browser_lag,
            os_lag,
            os_fixed,
            model: rng.below(8) as u8,
        }
    }

    /// A device of the given class as ordinary sellers have them: Windows
    /// (62%), macOS (30%) or Linux computers with their usual browsers,
    /// Android (58%) or iPhone phones, iPads (70%) or Android tablets.
    pub(crate) fn typical(rng: &mut Rng, class: DeviceClass, day: f64) -> Client {
        let (platform, browser) = match class {
            DeviceClass::Computer => {
                let platform = [Platform::Windows, Platform::Mac, Platform::Linux]
                    [rng.weighted(&[0.62, 0.30, 0.08]).expect("positive weights")];
                (platform, Client::typical_browser(rng, platform))
            }
            DeviceClass::Phone if rng.chance(0.58) => (Platform::AndroidPhone, Browser::Chrome),
            DeviceClass::Phone => (Platform::Iphone, Browser::Safari),
            DeviceClass::Tablet if rng.chance(0.7) => (Platform::Ipad, Browser::Safari),
            DeviceClass::Tablet => (Platform::AndroidTablet, Browser::Chrome),
        };
        Client::bought(rng, platform, browser, day)
    }

    /// The browser an ordinary user of the platform uses.
    pub(crate) fn typical_browser(rng: &mut Rng, platform: Platform) -> Browser {
        let (browsers, weights): (&[Browser], &[f64]) = match platform {
            Platform::Windows => (
                &[Browser::Chrome, Browser::Firefox, Browser::Edge],
                &[0.62, 0.16, 0.22],
            ),
            Platform::Mac => (
                &[Browser::Safari, Browser::Chrome, Browser::Firefox],
                &[0.5, 0.4, 0.1],
            ),
            Platform::Linux => (&[Browser::Firefox, Browser::Chrome], &[0.5, 0.5]),
            Platform::AndroidPhone | Platform::AndroidTablet => (&[Browser::Chrome], &[1.0]),
            Platform::Iphone | Platform::Ipad => (&[Browser::Safari], &[1.0]),
        };
        browsers[rng.weighted(weights).expect("positive weights")]
    }

    /// A freshly set up client of the given kind, on current versions: what
    /// an attacker who imitates a victim's browser uses.
    pub(crate) fn current(rng: &mut Rng, platform: Platform, browser: Browser, day: f64) -> Client {
        Client {
            platform,
            browser,
            browser_lag: rng.uniform(0.0, 5.0),
            os_lag: rng.uniform(0.0, 10.0),
            os_fixed: match platform {
                Platform::Windows => 10,
                Platform::AndroidPhone | Platform::AndroidTablet => android_newest(day),
                _ => 0,
            },
            model: rng.below(8) as u8,
        }
    }

    /// A random client of any platform and browser, on a version from the
    /// last few months: what a naive attacker's tool sends.
    pub(crate) fn random(rng: &mut Rng, day: f64) -> Client {
        let (platform, browser) = *rng.pick(COMBOS).expect("combos exist");
        let mut client = Client::current(rng, platform, browser, day);
        client.browser_lag = rng.uniform(0.0, 120.0);
        client.os_lag = rng.uniform(0.0, 200.0);
        if platform == Platform::Windows && browser != Browser::Edge && rng.chance(0.25) {
            client.os_fixed = 7;
        }
        client
    }

    /// The user agent this client sends on `day` (days since 2018-01-01).
    pub(crate) fn user_agent(&self, day: f64) -> UserAgent {
        let browser_day = day - self.browser_lag;
        let os_day = day - self.os_lag;
        let (product, browser_version) = match self.browser {
            Browser::Chrome => {
                let (major, full) = chrome_version(browser_day);
                (format!("Chrome/{full}"), major.to_string())
            }
            Browser::Firefox => {
                let major = firefox_major(browser_day);
                (format!("rv:{major}.0"), major.to_string())
            }
            Browser::Safari => {
                let major = apple_major(os_day);
                (String::new(), major.to_string())
            }
            Browser::Edge => {
                let (major, product) = edge_version(browser_day);
                (product, major.to_string())
            }
        };
        let (string, os_version) = match self.platform {
            Platform::Windows => {
                let (nt, version) = match self.os_fixed {
                    7 => ("6.1", "7"),
                    8 => ("6.3", "8"),
                    _ => ("10.0", "10"),
                };
                let string = match self.browser {
                    Browser::Firefox => format!(
                        "Mozilla/5.0 (Windows NT {nt}; Win64; x64; {product}) Gecko/20100101 Firefox/{browser_version}.0"
                    ),
                    // Edge's part already ends in Chrome's `Safari/537.36`.
                    Browser::Edge => format!(
                        "Mozilla/5.0 (Windows NT {nt}; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) {product}"
                    ),
                    _ => format!(
                        "Mozilla/5.0 (Windows NT {nt}; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) {product} Safari/537.36"
                    ),
                };
                (string, Some(version.to_owned()))
            }
            Platform::Mac => {
                let (minor, patch) = macos_version(os_day);
                let string = match self.browser {
                    Browser::Firefox => format!(
                        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.{minor}; {product}) Gecko/20100101 Firefox/{browser_version}.0"
                    ),
                    Browser::Safari => {
                        let webkit = webkit(apple_major(os_day));
                        format!(
                            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_{minor}_{patch}) AppleWebKit/{webkit} (KHTML, like Gecko) Version/{} Safari/{webkit}",
                            safari_version(os_day)
                        )
                    }
                    _ => format!(
                        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_{minor}_{patch}) AppleWebKit/537.36 (KHTML, like Gecko) {product} Safari/537.36"
                    ),
                };
                (string, Some("10".to_owned()))
            }
            Platform::Linux => {
                let string = match self.browser {
                    Browser::Firefox => format!(
                        "Mozilla/5.0 (X11; Linux x86_64; {product}) Gecko/20100101 Firefox/{browser_version}.0"
                    ),
                    _ => format!(
                        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) {product} Safari/537.36"
                    ),
                };
                (string, None)
            }
            Platform::AndroidPhone | Platform::AndroidTablet => {
                let android = match self.os_fixed {
                    6 => "6.0.1".to_owned(),
                    7 => "7.0".to_owned(),
                    8 => "8.0.0".to_owned(),
                    n => n.to_string(),
                };
                let (model, mobile) = if self.platform == Platform::AndroidPhone {
                    (
                        ANDROID_PHONES[usize::from(self.model) % ANDROID_PHONES.len()],
                        "Mobile ",
                    )
                } else {
                    (
                        ANDROID_TABLETS[usize::from(self.model) % ANDROID_TABLETS.len()],
                        "",
                    )
                };
                let string = format!(
                    "Mozilla/5.0 (Linux; Android {android}; {model}) AppleWebKit/537.36 (KHTML, like Gecko) {product} {mobile}Safari/537.36"
                );
                (string, Some(self.os_fixed.to_string()))
            }
            Platform::Iphone | Platform::Ipad => {
                let major = apple_major(os_day);
                let (minor, patch) = ios_minor(os_day);
                let ios = if patch == 0 {
                    format!("{major}_{minor}")
                } else {
                    format!("{major}_{minor}_{patch}")
                };
                let webkit = webkit(major);
                let device = if self.platform == Platform::Iphone {
                    "iPhone; CPU iPhone OS"
                } else {
                    "iPad; CPU OS"
                };
                let string = format!(
                    "Mozilla/5.0 ({device} {ios} like Mac OS X) AppleWebKit/{webkit} (KHTML, like Gecko) Version/{major}.0 Mobile/15E148 Safari/604.1"
                );
                (string, Some(major.to_string()))
            }
        };
        UserAgent {
            string,
            info: ClientInfo {
                browser: Some(self.browser.name().to_owned()),
                browser_version: Some(browser_version),
                os: Some(self.platform.os_name().to_owned()),
                os_version,
                device_type: self.platform.device_type(),
            },
        }
    }
}

/// Chrome's major version and full version string on a day.
fn chrome_version(day: f64) -> (i64, String) {
    let since_64 = day - 23.0;
    let major = 64 + (since_64 / 46.0).floor() as i64;
    let into_major = since_64 - 46.0 * (major - 64) as f64;
    let build = 3282 + 43 * (major - 64);
    let patch = 60 + (major % 7) * 9 + 17 * (into_major / 12.0).floor() as i64;
    (major, format!("{major}.0.{build}.{patch}"))
}

fn firefox_major(day: f64) -> i64 {
    58 + ((day - 22.0) / 49.0).floor() as i64
}

/// Edge's major version and its part of the user agent on a day: EdgeHTML
/// until Chromium Edge 79 on day 744 (2020-01-15).
fn edge_version(day: f64) -> (i64, String) {
    if day < 744.0 {
        let (major, chrome, build) = if day < 120.0 {
            (16, "58.0.3029.110", 16299)
        } else if day < 310.0 {
            (17, "64.0.3282.140", 17134)
        } else {
            (18, "70.0.3538.102", 17763)
        };
        (
            major,
            format!("Chrome/{chrome} Safari/537.36 Edge/{major}.{build}"),
        )
    } else {
        let (major, chrome) = chrome_version(day);
        let edge_build = 309 + 25 * (major - 79);
        let edge_patch = 30 + (major % 5) * 11;
        (
            major,
            format!("Chrome/{chrome} Safari/537.36 Edg/{major}.0.{edge_build}.{edge_patch}"),
        )
    }
}

/// Apple's yearly major (iOS and Safari): 11 until mid-September 2018.
fn apple_major(day: f64) -> i64 {
    11 + ((day + 104.0) / 365.0).floor() as i64
}

fn days_into_apple_year(day: f64) -> f64 {
    (day + 104.0).rem_euclid(365.0)
}

/// iOS minor and patch within the year's major.
fn ios_minor(day: f64) -> (i64, i64) {
    let into = days_into_apple_year(day);
    let minor = ((into / 60.0).floor() as i64).min(3);
    let patch = ((into - 60.0 * minor as f64) / 20.0).floor() as i64 % 3;
    (minor, patch)
}

/// Safari's `Version/` on macOS.
fn safari_version(day: f64) -> String {
    let major = apple_major(day);
    let into = days_into_apple_year(day);
    let minor = ((into / 120.0).floor() as i64).min(2);
    let patch = ((into - 120.0 * minor as f64) / 40.0).floor() as i64 % 3;
    if patch == 0 {
        format!("{major}.{minor}")
    } else {
        format!("{major}.{minor}.{patch}")
    }
}

/// macOS 10.x minor and patch as user agents show them: 10.13 until late
/// September 2018, one a year, and frozen at 10.15.7 from 2020 on, as
/// browsers did.
fn macos_version(day: f64) -> (i64, i64) {
    let year = ((day + 98.0) / 365.0).floor() as i64;
    if year >= 3 {
        return (15, 7);
    }
    let into = (day + 98.0).rem_euclid(365.0);
    (13 + year, (1 + (into / 50.0).floor() as i64).min(6))
}

fn webkit(apple_major: i64) -> &'static str {
    if apple_major <= 11 {
        "604.5.6"
    } else {
        "605.1.15"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_release_schedules() {
        assert_eq!(chrome_version(0.0).0, 63);
        assert_eq!(chrome_version(23.0).0, 64);
        assert_eq!(chrome_version(180.0).0, 67);
        assert!(chrome_version(0.0).1.starts_with("63.0.3239."));
        assert_eq!(firefox_major(0.0), 57);
        assert_eq!(firefox_major(30.0), 58);
        assert_eq!(apple_major(200.0), 11);
        assert_eq!(apple_major(270.0), 12);
        assert_eq!(macos_version(0.0).0, 13);
        assert_eq!(macos_version(300.0).0, 14);
        assert_eq!(edge_version(200.0).0, 17);
        assert_eq!(edge_version(800.0).0, 80);
    }

    #[test]
    fn user_agents_carry_the_versions_their_facts_report() {
        let mut rng = Rng::new(11);
        for day in [0.0, 100.0, 400.0, 900.0, 2000.0] {
            for (platform, browser) in COMBOS {
                let client = Client::bought(&mut rng, *platform, *browser, day);
                let ua = client.user_agent(day);
                let info = &ua.info;
                let version = info.browser_version.as_deref().expect("version");
                let marker = match (browser, version.parse::<i64>().expect("number")) {
                    (Browser::Chrome, v) => format!("Chrome/{v}."),
                    (Browser::Firefox, v) => format!("Firefox/{v}.0"),
                    (Browser::Safari, v) => format!("Version/{v}."),
                    (Browser::Edge, v) if v < 79 => format!("Edge/{v}."),
                    (Browser::Edge, v) => format!("Edg/{v}."),
                };
                assert!(ua.string.contains(&marker), "{} lacks {marker}", ua.string);
                if *browser == Browser::Chrome {
                    assert!(ua.string.ends_with(" Safari/537.36"), "{}", ua.string);
                }
                assert_eq!(info.os.as_deref(), Some(platform.os_name()));
                if let (Some(os_version), Platform::Iphone) = (&info.os_version, platform) {
                    assert!(
                        ua.string.contains(&format!("OS {os_version}_")),
                        "{}",
                        ua.string
                    );
                }
                let mobile = ua.string.contains("Mobile");
                assert_eq!(
                    mobile,
                    platform.class() != DeviceClass::Computer
                        && *platform != Platform::AndroidTablet
                );
            }
        }
    }

    #[test]
    fn a_device_updates_its_browser_every_few_weeks() {
        let mut rng = Rng::new(5);
        let client = Client::bought(&mut rng, Platform::Windows, Browser::Chrome, 0.0);
        let majors: std::collections::BTreeSet<String> = (0..180)
            .map(|day| {
                client
                    .user_agent(f64::from(day))
                    .info
                    .browser_version
                    .expect("version")
            })
            .collect();
        assert!((4..=6).contains(&majors.len()), "{majors:?}");
    }
}
