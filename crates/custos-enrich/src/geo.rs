//! IP address → country, city, coordinates and autonomous system, from
//! MaxMind DB files.
//!
//! The files are read whole into memory with `Reader::open_readfile` (no
//! memory map: a file replaced or truncated under a running server must not
//! be able to crash it). GeoLite2-City is about 60 MB, GeoLite2-ASN about
//! 10 MB.
//!
//! A lookup walks the file's search tree to the address's record (0.1 to
//! 1 µs, depending on how much of the tree is in the CPU cache), then
//! decodes the few fields we keep. Decoding a City record costs as much
//! again, since the fields sit among names in eight languages,
//! subdivisions and postal codes; but many networks share one record (a
//! city's), so decoded records are cached by their offset in the file.
//!
//! Anything odd about one address (not in the database, an IPv6 address in
//! an IPv4-only file, a record that fails to decode, a country code that is
//! not two letters, coordinates out of range) leaves those fields `None`:
//! enrichment must never fail an event.

use std::net::IpAddr;
use std::path::Path;

use custos_core::enrich::NetworkInfo;
use maxminddb::{LookupResult, MaxMindDbError, Reader, path};
use serde::Deserialize;

use crate::cache::BoundedCache;
use crate::{EnrichError, GeoConfig};

const CITY_KEY: &str = "geo.city_db";
const ASN_KEY: &str = "geo.asn_db";
/// Decoded records kept per database. GeoLite2-City has a few hundred
/// thousand records, but traffic concentrates on a few thousand cities and
/// networks; an entry is about 100 bytes.
const RECORD_CACHE_CAPACITY: usize = 16 * 1024;

/// The loaded databases; either may be absent.
pub(crate) struct GeoDatabases {
    city: Option<Database<CityFacts>>,
    asn: Option<Database<AsnFacts>>,
}

/// One file and its decoded records, by offset in the file.
struct Database<T> {
    reader: Reader<Vec<u8>>,
    records: BoundedCache<usize, T>,
}

impl<T: Clone> Database<T> {
    fn new(reader: Reader<Vec<u8>>) -> Self {
        Database {
            reader,
            records: BoundedCache::new(RECORD_CACHE_CAPACITY),
        }
    }

    /// The facts for `ip`, or `None` when the file has no record for it or
    /// the record does not decode (logged at debug: a damaged file shows up
    /// there, not as failed events).
    fn lookup(
        &self,
        ip: IpAddr,
        decode: impl FnOnce(&LookupResult<'_, Vec<u8>>) -> Result<T, MaxMindDbError>,
    ) -> Option<T> {
        let found = self
            .reader
            .lookup(ip)
            .map_err(|error| tracing::debug!(%ip, %error, "geo lookup failed"))
            .ok()?;
        let offset = found.offset()?;
        if let Some(facts) = self.records.get(&offset) {
            return Some(facts);
        }
        match decode(&found) {
            Ok(facts) => {
                self.records.insert(offset, facts.clone());
                Some(facts)
            }
            Err(error) => {
                tracing::debug!(%ip, offset, %error, "geo record does not decode");
                None
            }
        }
    }
}

/// What a City record says, as kept.
#[derive(Clone)]
struct CityFacts {
    country: Option<String>,
    city: Option<String>,
    coordinates: Option<(f64, f64)>,
}

/// What an ASN record says, as kept.
#[derive(Clone)]
struct AsnFacts {
    asn: Option<u32>,
    as_org: Option<String>,
}

/// Which layout a configured file must have.
#[derive(Clone, Copy)]
enum Layout {
    City,
    Asn,
}

impl GeoDatabases {
    pub(crate) fn open(config: &GeoConfig) -> Result<Self, EnrichError> {
        let city = match &config.city_db {
            Some(path) => Some(Database::new(open_database(CITY_KEY, path, Layout::City)?)),
            None => None,
        };
        let asn = match &config.asn_db {
            Some(path) => Some(Database::new(open_database(ASN_KEY, path, Layout::Asn)?)),
            None => None,
        };
        if city.is_none() && asn.is_none() {
            tracing::info!(
                "no geo databases configured: country, city, location and asn stay unknown"
            );
        }
        Ok(GeoDatabases { city, asn })
    }

    pub(crate) fn has_city_db(&self) -> bool {
        self.city.is_some()
    }

    pub(crate) fn has_asn_db(&self) -> bool {
        self.asn.is_some()
    }

    pub(crate) fn lookup(&self, ip: IpAddr) -> NetworkInfo {
        // `::ffff:a.b.c.d` is an IPv4 client seen through a dual-stack
        // socket; MaxMind files keep IPv4 under `::/96`, not there.
        let ip = ip.to_canonical();
        let mut info = NetworkInfo::default();
        if let Some(facts) = self.city.as_ref().and_then(|db| db.lookup(ip, decode_city)) {
            info.country = facts.country;
            info.city = facts.city;
            info.latitude = facts.coordinates.map(|(latitude, _)| latitude);
            info.longitude = facts.coordinates.map(|(_, longitude)| longitude);
        }
        if let Some(facts) = self.asn.as_ref().and_then(|db| db.lookup(ip, decode_asn)) {
            info.asn = facts.asn;
            info.as_org = facts.as_org;
        }
        info
    }
}

// Three paths rather than one struct for the whole record: a struct decode
// must step over every field it does not want, and is slower.
fn decode_city(found: &LookupResult<'_, Vec<u8>>) -> Result<CityFacts, MaxMindDbError> {
    let country: Option<&str> = found.decode_path(&path!["country", "iso_code"])?;
    let city: Option<&str> = found.decode_path(&path!["city", "names", "en"])?;
    let location: Option<Location> = found.decode_path(&path!["location"])?;
    Ok(CityFacts {
        country: country.and_then(country_code),
        city: city.and_then(non_empty),
        coordinates: location.and_then(Location::coordinates),
    })
}

fn decode_asn(found: &LookupResult<'_, Vec<u8>>) -> Result<AsnFacts, MaxMindDbError> {
    let record: AsnRecord = found.decode()?.unwrap_or_default();
    Ok(AsnFacts {
        asn: record.autonomous_system_number,
        as_org: record.autonomous_system_organization.and_then(non_empty),
    })
}

fn open_database(
    key: &'static str,
    path: &Path,
    layout: Layout,
) -> Result<Reader<Vec<u8>>, EnrichError> {
    let reader = Reader::open_readfile(path).map_err(|error| match error {
        MaxMindDbError::Io(source) => EnrichError::Read {
            key,
            path: path.to_path_buf(),
            source,
        },
        source => EnrichError::NotMaxMindDb {
            key,
            path: path.to_path_buf(),
            source,
        },
    })?;
    let metadata = reader.metadata();
    let database_type = metadata.database_type.as_str();
    // Only refuse what is clearly the other kind of file (the two paths
    // swapped, say): other vendors' City and ASN files use other names.
    let (wrong, expected) = match layout {
        Layout::City => (
            database_type.contains("ASN") || database_type.contains("ISP"),
            "a City or Country database (GeoLite2-City, GeoIP2-City)",
        ),
        Layout::Asn => (
            database_type.contains("City") || database_type.contains("Country"),
            "an ASN database (GeoLite2-ASN)",
        ),
    };
    if wrong {
        return Err(EnrichError::WrongDatabaseType {
            key,
            path: path.to_path_buf(),
            database_type: database_type.to_string(),
            expected,
        });
    }
    tracing::info!(
        key,
        path = %path.display(),
        database_type,
        build_epoch = metadata.build_epoch,
        "geo database loaded"
    );
    Ok(reader)
}

/// ISO 3166-1 alpha-2, upper case; anything else is not a country code.
fn country_code(code: &str) -> Option<String> {
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

// `location` in a City record; its other fields are skipped.
#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl Location {
    fn coordinates(self) -> Option<(f64, f64)> {
        let (latitude, longitude) = (self.latitude?, self.longitude?);
        let valid = (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude);
        valid.then_some((latitude, longitude))
    }
}

// A GeoLite2-ASN (or GeoIP2-ISP) record.
#[derive(Default, Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_two_letters_upper_case() {
        assert_eq!(country_code("GB").as_deref(), Some("GB"));
        assert_eq!(country_code("se").as_deref(), Some("SE"));
        assert_eq!(country_code("GBR"), None);
        assert_eq!(country_code(""), None);
        assert_eq!(country_code("1A"), None);
        assert_eq!(country_code("Ö"), None);
    }

    #[test]
    fn coordinates_need_both_halves_in_range() {
        let at = |latitude, longitude| {
            Location {
                latitude,
                longitude,
            }
            .coordinates()
        };
        assert_eq!(at(Some(51.5), Some(-0.1)), Some((51.5, -0.1)));
        assert_eq!(at(Some(51.5), None), None);
        assert_eq!(at(None, Some(-0.1)), None);
        assert_eq!(at(Some(91.0), Some(0.0)), None);
        assert_eq!(at(Some(0.0), Some(-180.5)), None);
        assert_eq!(at(Some(f64::NAN), Some(0.0)), None);
    }
}
