#!/usr/bin/env python3
"""Write the small MaxMind DB files that custos-enrich's tests read.

Usage: make-geo-fixtures.py [OUTPUT_DIR]

OUTPUT_DIR defaults to crates/custos-enrich/tests/fixtures next to this
script. Two files are written there:

- test-city.mmdb: GeoLite2-City layout (country.iso_code, city.names.en,
  location.latitude/longitude, plus the usual neighbours a reader must skip);
- test-asn.mmdb: GeoLite2-ASN layout (autonomous_system_number,
  autonomous_system_organization).

Both are IPv6 trees with IPv4 in ::/96, as MaxMind ships them. The networks
are real address blocks, but every value is made up for tests: never use
these files to locate anyone.

Needs exactly mmdb-writer 0.2.7 (and netaddr), e.g. in a throwaway venv:

    python3 -m venv VENV && VENV/bin/pip install mmdb-writer==0.2.7 netaddr==1.3.0
    VENV/bin/python scripts/make-geo-fixtures.py

The output is byte-for-byte reproducible: the writer's only varying input,
the build time stamped into the metadata, is pinned below, and CI regenerates
the files and compares them with the committed ones.
"""

import os
import sys

MMDB_WRITER_VERSION = "0.2.7"
# 2025-01-01T00:00:00Z. The writer stamps the current time; a fixed value
# keeps the files identical from run to run.
BUILD_EPOCH = 1735689600

try:
    import mmdb_writer
    from mmdb_writer import MMDBWriter, MmdbU16, MmdbU32
    from netaddr import IPSet
except ImportError as error:
    sys.exit(
        f"make-geo-fixtures: {error}; install mmdb-writer=={MMDB_WRITER_VERSION} "
        "and netaddr in a venv first"
    )

if mmdb_writer.__version__ != MMDB_WRITER_VERSION:
    sys.exit(
        f"make-geo-fixtures: mmdb-writer {mmdb_writer.__version__} found, "
        f"{MMDB_WRITER_VERSION} needed (the output must not change between versions)"
    )


class PinnedEpochWriter(MMDBWriter):
    """MMDBWriter with a fixed build_epoch instead of the current time."""

    def _build_meta(self):
        meta = super()._build_meta()
        meta["build_epoch"] = BUILD_EPOCH
        return meta


def names(en, **others):
    return {"en": en, **others}


def place(geoname_id, code, en, **other_names):
    return {"geoname_id": MmdbU32(geoname_id), "iso_code": code, "names": names(en, **other_names)}


EUROPE = {"code": "EU", "geoname_id": MmdbU32(6255148), "names": names("Europe", de="Europa")}
NORTH_AMERICA = {"code": "NA", "geoname_id": MmdbU32(6255149), "names": names("North America")}


def gb():
    return place(2635167, "GB", "United Kingdom", de="Vereinigtes Königreich")


def se():
    return place(2661886, "SE", "Sweden", de="Schweden")


def de():
    return place(2921044, "DE", "Germany", de="Deutschland")


def nl():
    return place(2750405, "NL", "Netherlands", de="Niederlande")


def us():
    return place(6252001, "US", "United States", de="Vereinigte Staaten")


def location(latitude, longitude, radius, time_zone):
    return {
        "accuracy_radius": MmdbU16(radius),
        "latitude": latitude,
        "longitude": longitude,
        "time_zone": time_zone,
    }


def city_record(continent, country, city=None, loc=None, subdivision=None):
    record = {"continent": continent, "country": country, "registered_country": country}
    if city is not None:
        record["city"] = {"geoname_id": MmdbU32(city[0]), "names": names(city[1])}
    if subdivision is not None:
        record["subdivisions"] = [subdivision]
    if loc is not None:
        record["location"] = loc
    return record


# (networks, record). IPv4 and IPv6, several countries; one German hosting
# network known only to country level; one network with no location at all.
CITY_NETWORKS = [
    (
        ["81.2.69.0/24", "2001:8b0::/32"],
        city_record(
            EUROPE,
            gb(),
            city=(2643743, "London"),
            loc=location(51.5142, -0.0931, 10, "Europe/London"),
            subdivision=place(6269131, "ENG", "England"),
        ),
    ),
    (
        ["89.160.20.0/24", "2001:2000::/28"],
        city_record(
            EUROPE,
            se(),
            city=(2694762, "Linköping"),
            loc=location(58.4167, 15.6167, 76, "Europe/Stockholm"),
            subdivision=place(2685867, "E", "Östergötland County"),
        ),
    ),
    (
        ["88.198.0.0/16", "2a01:4f8::/32"],
        city_record(EUROPE, de(), loc=location(51.2993, 9.491, 1000, "Europe/Berlin")),
    ),
    (
        ["216.160.83.56/29", "2600:1700::/28"],
        city_record(
            NORTH_AMERICA,
            us(),
            city=(5803556, "Milton"),
            loc=location(47.2513, -122.3149, 22, "America/Los_Angeles"),
            subdivision=place(5815135, "WA", "Washington"),
        ),
    ),
    (["193.0.0.0/21", "2001:67c:2e8::/48"], city_record(EUROPE, nl())),
]

# (networks, asn, organisation). 24940 is a hosting network on Custos's
# built-in list; 216.160.83.56/29 is deliberately absent (City only).
ASN_NETWORKS = [
    (["81.2.64.0/18", "2001:8b0::/32"], 20712, "Andrews & Arnold Ltd"),
    (["89.160.0.0/17", "2001:2000::/28"], 29518, "Bredband2 AB"),
    (["88.198.0.0/16", "2a01:4f8::/32"], 24940, "Hetzner Online GmbH"),
    (["193.0.0.0/21", "2001:67c:2e8::/48"], 3333, "Reseaux IP Europeens Network Coordination Centre (RIPE NCC)"),
]


def writer(database_type, description):
    return PinnedEpochWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en"],
        description={"en": description},
    )


def main():
    if len(sys.argv) > 2:
        sys.exit("usage: make-geo-fixtures.py [OUTPUT_DIR]")
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "crates", "custos-enrich", "tests", "fixtures")
    out = os.path.abspath(sys.argv[1] if len(sys.argv) == 2 else default)
    os.makedirs(out, exist_ok=True)

    city = writer("Custos-Test-City", "Custos test fixture, GeoLite2-City layout, made-up values")
    for networks, record in CITY_NETWORKS:
        city.insert_network(IPSet(networks), record)
    city.to_db_file(os.path.join(out, "test-city.mmdb"))

    asn = writer("Custos-Test-ASN", "Custos test fixture, GeoLite2-ASN layout, made-up values")
    for networks, number, organisation in ASN_NETWORKS:
        asn.insert_network(
            IPSet(networks),
            {
                "autonomous_system_number": MmdbU32(number),
                "autonomous_system_organization": organisation,
            },
        )
    asn.to_db_file(os.path.join(out, "test-asn.mmdb"))


if __name__ == "__main__":
    main()
