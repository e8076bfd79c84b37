//! The enricher end to end: the committed MaxMind DB fixtures (see
//! `tests/fixtures/README.md`) and real user-agent strings.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use custos_core::enrich::{ClientInfo, DeviceType, Enricher, Enrichment, NetworkInfo};
use custos_core::features::DEFAULT_HOSTING_ASNS;
use custos_enrich::{EnrichError, GeoConfig, GeoUaEnricher};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn both_databases() -> GeoConfig {
    GeoConfig {
        city_db: Some(fixture("test-city.mmdb")),
        asn_db: Some(fixture("test-asn.mmdb")),
    }
}

/// One enricher for the tests that only read: opening reads both files.
fn enricher() -> &'static GeoUaEnricher {
    static ENRICHER: OnceLock<GeoUaEnricher> = OnceLock::new();
    ENRICHER.get_or_init(|| GeoUaEnricher::open(&both_databases()).expect("fixtures open"))
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address parses")
}

fn open_error(config: GeoConfig) -> String {
    match GeoUaEnricher::open(&config) {
        Ok(_) => panic!("{config:?} opened"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn ipv4_in_a_city() {
    assert_eq!(
        enricher().network(ip("81.2.69.160")),
        NetworkInfo {
            country: Some("GB".into()),
            city: Some("London".into()),
            latitude: Some(51.5142),
            longitude: Some(-0.0931),
            asn: Some(20712),
            as_org: Some("Andrews & Arnold Ltd".into()),
        }
    );
    let linkoping = enricher().network(ip("89.160.20.128"));
    assert_eq!(linkoping.country.as_deref(), Some("SE"));
    assert_eq!(linkoping.city.as_deref(), Some("Linköping"));
    assert_eq!(
        (linkoping.latitude, linkoping.longitude),
        (Some(58.4167), Some(15.6167))
    );
    assert_eq!(linkoping.asn, Some(29518));
    assert_eq!(linkoping.as_org.as_deref(), Some("Bredband2 AB"));
}

#[test]
fn ipv6_in_a_city() {
    let london = enricher().network(ip("2001:8b0:0:53::1"));
    assert_eq!(london.country.as_deref(), Some("GB"));
    assert_eq!(london.city.as_deref(), Some("London"));
    assert_eq!(
        (london.latitude, london.longitude),
        (Some(51.5142), Some(-0.0931))
    );
    assert_eq!(london.asn, Some(20712));

    let milton = enricher().network(ip("2600:1700:abcd::1"));
    assert_eq!(milton.country.as_deref(), Some("US"));
    assert_eq!(milton.city.as_deref(), Some("Milton"));
    assert_eq!(
        (milton.latitude, milton.longitude),
        (Some(47.2513), Some(-122.3149))
    );
    // In the City file only.
    assert_eq!((milton.asn, milton.as_org), (None, None));
}

#[test]
fn hosting_network_known_to_country_level() {
    for address in ["88.198.42.7", "2a01:4f8:c17:1::1"] {
        let hetzner = enricher().network(ip(address));
        assert_eq!(
            hetzner,
            NetworkInfo {
                country: Some("DE".into()),
                city: None,
                latitude: Some(51.2993),
                longitude: Some(9.491),
                asn: Some(24940),
                as_org: Some("Hetzner Online GmbH".into()),
            },
            "{address}"
        );
    }
    assert!(
        DEFAULT_HOSTING_ASNS.contains(&24940),
        "the fixture's hosting ASN is on the built-in list"
    );
}

#[test]
fn network_without_location() {
    let ripe = enricher().network(ip("193.0.0.1"));
    assert_eq!(ripe.country.as_deref(), Some("NL"));
    assert_eq!(
        (ripe.city, ripe.latitude, ripe.longitude),
        (None, None, None)
    );
    assert_eq!(ripe.asn, Some(3333));
}

#[test]
fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
    assert_eq!(
        enricher().network(ip("::ffff:81.2.69.160")),
        enricher().network(ip("81.2.69.160"))
    );
    assert_eq!(
        enricher().network(ip("::ffff:81.2.69.160")).city.as_deref(),
        Some("London")
    );
}

#[test]
fn addresses_not_in_the_databases_are_unknown() {
    // Outside the City file's /24 but inside the ASN file's /18.
    let asn_only = enricher().network(ip("81.2.70.1"));
    assert_eq!(
        (asn_only.country, asn_only.city, asn_only.latitude),
        (None, None, None)
    );
    assert_eq!(asn_only.asn, Some(20712));

    for address in [
        "8.8.8.8",
        "81.2.128.1",
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "2001:db8::1",
        "::1",
        "::",
        "ffff::1",
    ] {
        assert_eq!(
            enricher().network(ip(address)),
            NetworkInfo::default(),
            "{address}"
        );
    }
}

#[test]
fn without_databases_only_the_client_is_enriched() {
    let enricher = GeoUaEnricher::open(&GeoConfig::default()).expect("no files to read");
    assert!(!enricher.has_city_db() && !enricher.has_asn_db());
    let enrichment = enricher.enrich(Some(ip("81.2.69.160")), Some(CHROME_WINDOWS));
    assert_eq!(enrichment.network, NetworkInfo::default());
    assert_eq!(enrichment.client.browser.as_deref(), Some("Chrome"));
}

#[test]
fn city_database_alone() {
    let enricher = GeoUaEnricher::open(&GeoConfig {
        city_db: Some(fixture("test-city.mmdb")),
        asn_db: None,
    })
    .expect("city fixture opens");
    assert!(enricher.has_city_db() && !enricher.has_asn_db());
    let london = enricher.network(ip("81.2.69.160"));
    assert_eq!(london.country.as_deref(), Some("GB"));
    assert_eq!(london.city.as_deref(), Some("London"));
    assert_eq!((london.asn, london.as_org), (None, None));
}

#[test]
fn asn_database_alone() {
    let enricher = GeoUaEnricher::open(&GeoConfig {
        city_db: None,
        asn_db: Some(fixture("test-asn.mmdb")),
    })
    .expect("asn fixture opens");
    let hetzner = enricher.network(ip("88.198.42.7"));
    assert_eq!((hetzner.country, hetzner.latitude), (None, None));
    assert_eq!(hetzner.asn, Some(24940));
}

#[test]
fn missing_file_names_key_and_path() {
    let path = fixture("no-such-file.mmdb");
    let message = open_error(GeoConfig {
        city_db: Some(path.clone()),
        asn_db: None,
    });
    let expected = format!("geo.city_db: cannot read {}: ", path.display());
    assert!(message.starts_with(&expected), "{message}");

    let message = open_error(GeoConfig {
        city_db: Some(fixture("test-city.mmdb")),
        asn_db: Some(path.clone()),
    });
    assert!(
        message.starts_with(&format!("geo.asn_db: cannot read {}: ", path.display())),
        "{message}"
    );
}

#[test]
fn file_that_is_not_a_maxmind_db() {
    let path = fixture("README.md");
    let error = GeoUaEnricher::open(&GeoConfig {
        city_db: None,
        asn_db: Some(path.clone()),
    })
    .expect_err("a text file is not a database");
    assert!(
        matches!(
            error,
            EnrichError::NotMaxMindDb {
                key: "geo.asn_db",
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    let expected = format!("geo.asn_db: {} is not a MaxMind DB file: ", path.display());
    assert!(message.starts_with(&expected), "{message}");
}

#[test]
fn swapped_databases_are_refused() {
    let message = open_error(GeoConfig {
        city_db: Some(fixture("test-asn.mmdb")),
        asn_db: None,
    });
    let path = fixture("test-asn.mmdb");
    assert_eq!(
        message,
        format!(
            "geo.city_db: {} is a Custos-Test-ASN database; expected a City or Country database (GeoLite2-City, GeoIP2-City)",
            path.display()
        )
    );
    let message = open_error(GeoConfig {
        city_db: None,
        asn_db: Some(fixture("test-city.mmdb")),
    });
    assert!(
        message.contains("is a Custos-Test-City database; expected an ASN database"),
        "{message}"
    );
}

#[test]
fn geo_config_keys() {
    let config: GeoConfig =
        serde_json::from_str(r#"{"city_db": "GeoLite2-City.mmdb", "asn_db": "GeoLite2-ASN.mmdb"}"#)
            .expect("valid section");
    assert_eq!(config.city_db, Some(PathBuf::from("GeoLite2-City.mmdb")));
    assert_eq!(config.asn_db, Some(PathBuf::from("GeoLite2-ASN.mmdb")));
    let empty: GeoConfig = serde_json::from_str("{}").expect("both keys optional");
    assert_eq!(empty, GeoConfig::default());
    let typo = serde_json::from_str::<GeoConfig>(r#"{"city": "x.mmdb"}"#).expect_err("unknown key");
    assert!(typo.to_string().contains("unknown field `city`"), "{typo}");
}

const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1";
const FIREFOX_UBUNTU: &str =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
const CHROME_ANDROID_PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";
const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const EDGE_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80";
const CURL: &str = "curl/8.5.0";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

fn client(
    browser: Option<&str>,
    browser_version: Option<&str>,
    os: Option<&str>,
    os_version: Option<&str>,
    device_type: DeviceType,
) -> ClientInfo {
    ClientInfo {
        browser: browser.map(str::to_string),
        browser_version: browser_version.map(str::to_string),
        os: os.map(str::to_string),
        os_version: os_version.map(str::to_string),
        device_type,
    }
}

#[test]
fn user_agents_of_real_browsers() {
    use DeviceType::*;
    let cases = [
        (
            CHROME_WINDOWS,
            client(
                Some("Chrome"),
                Some("124"),
                Some("Windows"),
                Some("10"),
                Desktop,
            ),
        ),
        (
            SAFARI_IPHONE,
            client(
                Some("Mobile Safari"),
                Some("17"),
                Some("iOS"),
                Some("17"),
                Mobile,
            ),
        ),
        (
            FIREFOX_UBUNTU,
            client(Some("Firefox"), Some("125"), Some("Ubuntu"), None, Desktop),
        ),
        (
            CHROME_ANDROID_PHONE,
            client(
                Some("Chrome Mobile"),
                Some("124"),
                Some("Android"),
                Some("14"),
                Mobile,
            ),
        ),
        (
            SAFARI_IPAD,
            client(
                Some("Mobile Safari"),
                Some("17"),
                Some("iOS"),
                Some("17"),
                Tablet,
            ),
        ),
        (
            EDGE_WINDOWS,
            client(
                Some("Edge"),
                Some("124"),
                Some("Windows"),
                Some("10"),
                Desktop,
            ),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
            client(
                Some("Safari"),
                Some("17"),
                Some("Mac OS X"),
                Some("10"),
                Desktop,
            ),
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            client(
                Some("Chrome"),
                Some("124"),
                Some("Android"),
                Some("13"),
                Tablet,
            ),
        ),
    ];
    for (user_agent, expected) in cases {
        assert_eq!(enricher().client(user_agent), expected, "{user_agent}");
    }
}

#[test]
fn bots_and_scripts() {
    use DeviceType::*;
    let cases = [
        (CURL, client(Some("curl"), Some("8"), None, None, Bot)),
        (
            GOOGLEBOT,
            client(Some("Googlebot"), Some("2"), None, None, Bot),
        ),
        (
            "python-requests/2.31.0",
            client(Some("Python Requests"), Some("2"), None, None, Bot),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
            client(
                Some("HeadlessChrome"),
                Some("124"),
                Some("Windows"),
                Some("10"),
                Bot,
            ),
        ),
        // A mobile app's HTTP stack is not a bot.
        (
            "okhttp/4.12.0",
            client(Some("okhttp"), Some("4"), None, None, Other),
        ),
        // Nor is Android's, and without `Mozilla/` the missing `Mobile`
        // says nothing about the screen.
        (
            "Dalvik/2.1.0 (Linux; U; Android 13; SM-A536B Build/TP1A.220624.014)",
            client(
                Some("Android"),
                Some("13"),
                Some("Android"),
                Some("13"),
                Mobile,
            ),
        ),
    ];
    for (user_agent, expected) in cases {
        assert_eq!(enricher().client(user_agent), expected, "{user_agent}");
    }
}

#[test]
fn empty_and_unrecognised_user_agents_are_unknown() {
    for user_agent in [
        "",
        "   ",
        "\t\n",
        "x",
        "garbage \u{0} \u{1F600} ((((",
        "\u{FEFF}",
    ] {
        assert_eq!(
            enricher().client(user_agent),
            ClientInfo::default(),
            "{user_agent:?}"
        );
    }
    assert_eq!(ClientInfo::default().device_type, DeviceType::Unknown);
}

#[test]
fn cached_answers_match_fresh_ones() {
    let fresh = GeoUaEnricher::open(&GeoConfig::default()).expect("no files to read");
    let first = fresh.client(SAFARI_IPAD);
    for _ in 0..3 {
        assert_eq!(fresh.client(SAFARI_IPAD), first);
    }
    // Surrounding whitespace is not part of the user agent.
    assert_eq!(fresh.client(&format!("  {SAFARI_IPAD}\n")), first);
}

#[test]
fn enrich_fills_both_halves() {
    let enrichment = enricher().enrich(Some(ip("2a01:4f8::1")), Some(CURL));
    assert_eq!(enrichment.network.asn, Some(24940));
    assert_eq!(enrichment.network.country.as_deref(), Some("DE"));
    assert_eq!(enrichment.client.device_type, DeviceType::Bot);

    assert_eq!(enricher().enrich(None, None), Enrichment::default());
    assert!(enricher().enrich(None, None).is_empty());
    let ua_only = enricher().enrich(None, Some(FIREFOX_UBUNTU));
    assert_eq!(
        (ua_only.network, ua_only.client.browser.as_deref()),
        (NetworkInfo::default(), Some("Firefox"))
    );
}

#[test]
fn shared_between_threads() {
    let enricher: Arc<dyn Enricher> =
        Arc::new(GeoUaEnricher::open(&both_databases()).expect("fixtures open"));
    let agents = [
        CHROME_WINDOWS,
        SAFARI_IPHONE,
        FIREFOX_UBUNTU,
        CHROME_ANDROID_PHONE,
        SAFARI_IPAD,
        EDGE_WINDOWS,
        CURL,
        GOOGLEBOT,
    ];
    let expected: Vec<Enrichment> = agents
        .iter()
        .map(|ua| enricher.enrich(Some(ip("89.160.20.128")), Some(ua)))
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let enricher = Arc::clone(&enricher);
            let expected = expected.clone();
            std::thread::spawn(move || {
                for round in 0..200 {
                    let i = (round + t) % agents.len();
                    assert_eq!(
                        enricher.enrich(Some(ip("89.160.20.128")), Some(agents[i])),
                        expected[i]
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread panicked");
    }
}
