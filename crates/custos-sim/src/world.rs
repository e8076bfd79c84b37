//! A small synthetic internet: countries, cities, networks and the address
//! pools they own, so that every generated IP address has known network
//! facts (country, city, coordinates, ASN, organisation) without any
//! geolocation database.
//!
//! # Choices
//!
//! - **21 countries**, 2–4 cities each, with real names and approximate
//!   coordinates. The sellers of our story are European marketplace sellers,
//!   so GB, DE, FR, IT, ES, NL and US carry most of the seller weight; a few
//!   countries (TR, BR, IN, NG, VN) have no sellers at all and exist for
//!   travel and for attackers "anywhere in the world".
//! - **Residential ISPs** (2–4 per country, made-up names): each has one
//!   IPv4 pool (/16 or /20) per city it serves; the first ISP of a country
//!   (the incumbent) serves every city, the others most. A pool is
//!   geolocated to its city, with a small fixed offset per pool as real
//!   databases have. Offices and hotels use these networks too: they are
//!   fixed lines like any other.
//! - **Mobile carriers** (1–2 per country): 2–3 IPv4 /16 pools each,
//!   geolocated to arbitrary cities of the country (mobile addresses locate
//!   badly), and for most carriers an IPv6 /32 geolocated to the capital.
//! - **Hosting, datacenter and VPN providers** (10, global): a /20 in each of
//!   the five hub countries (US, DE, NL, GB, FR) and in about half of the
//!   others, each in the country's main city; every country has at least two
//!   hosting pools, so a VPN exit is available everywhere.
//! - **Addresses** are made up but public-looking: each pool takes its own
//!   /16 out of first octets that the region's registry really hands out
//!   (RIPE for Europe and Turkey, ARIN for North America, and so on), never
//!   a private, shared, documentation or multicast range. Pools never
//!   overlap, so an address determines its pool and hence its facts.
//! - **ASNs** are made up, drawn from 25000–59999: no number in that range
//!   belongs to a provider of Custos's default hosting list, so the default
//!   configuration recognises none of this world's hosting networks;
//!   evaluations should use [`World::hosting_asns`].
//!
//! The world does not depend on the simulation's seed: like the real
//! internet, it is the same for every population of sellers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use custos_core::NetworkInfo;

use crate::rng::Rng;

/// What a network is for; decides who uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NetworkKind {
    /// Fixed lines: homes, offices, hotels.
    Residential,
    Mobile,
    /// Hosting, datacenter and VPN providers.
    Hosting,
}

#[derive(Debug)]
pub(crate) struct CitySpec {
    pub name: &'static str,
    pub latitude: f64,
    pub longitude: f64,
    /// Relative share of the country's sellers living there.
    pub weight: u32,
    /// Local time minus UTC, in minutes (no daylight saving).
    pub utc_offset_minutes: i32,
}

/// Which registry's address space a country's networks come from.
#[derive(Debug, Clone, Copy)]
enum Registry {
    Ripe,
    Arin,
    Lacnic,
    Apnic,
    Afrinic,
}

impl Registry {
    /// First octets that the registry allocates from (public unicast only).
    fn first_octets(self) -> &'static [u8] {
        match self {
            Registry::Ripe => &[
                2, 5, 31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91,
                92, 93, 94, 95, 109, 176, 178, 188, 193, 194, 195, 212, 213, 217,
            ],
            Registry::Arin => &[
                24, 50, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 96, 97, 98, 99,
                107, 108, 173, 174,
            ],
            Registry::Lacnic => &[177, 179, 181, 186, 187, 189, 190, 191, 200, 201],
            Registry::Apnic => &[
                14, 27, 36, 39, 42, 49, 58, 59, 60, 61, 101, 110, 111, 112, 113, 114, 115, 116,
                117, 118, 119, 120, 121, 122, 123, 124, 125, 180, 182, 183, 202, 210, 211, 218,
                219, 220, 221, 222,
            ],
            Registry::Afrinic => &[41, 102, 105, 154, 196, 197],
        }
    }

    /// The top 16 bits of the registry's IPv6 space (a /12 or narrower).
    fn ipv6_top(self) -> u32 {
        match self {
            Registry::Ripe => 0x2a00,
            Registry::Arin => 0x2600,
            Registry::Lacnic => 0x2800,
            Registry::Apnic => 0x2400,
            Registry::Afrinic => 0x2c0f,
        }
    }
}

/// First octets that hosting providers' pools come from: a mix of all
/// registries, as large providers buy address space wherever they can.
const HOSTING_FIRST_OCTETS: &[u8] = &[
    5, 23, 37, 45, 46, 51, 54, 91, 95, 104, 107, 138, 139, 141, 142, 143, 144, 146, 147, 149, 151,
    152, 155, 157, 158, 159, 161, 162, 164, 165, 167, 168, 176, 178, 185, 188, 193, 194, 195, 206,
    207, 208, 209, 212, 213, 216, 217,
];

#[derive(Debug)]
pub(crate) struct CountrySpec {
    /// ISO 3166-1 alpha-2.
    pub code: &'static str,
    /// Relative share of sellers living there.
    pub seller_weight: u32,
    /// Relative popularity as a destination of trips abroad.
    pub travel_weight: u32,
    registry: Registry,
    /// The first city is the capital or main business city: hosting pools
    /// and IPv6 mobile prefixes are located there.
    pub cities: &'static [CitySpec],
    residential: &'static [&'static str],
    mobile: &'static [&'static str],
}

const fn city(
    name: &'static str,
    latitude: f64,
    longitude: f64,
    weight: u32,
    utc_offset_minutes: i32,
) -> CitySpec {
    CitySpec {
        name,
        latitude,
        longitude,
        weight,
        utc_offset_minutes,
    }
}

/// The countries of the world, sellers' home countries first.
pub(crate) static COUNTRIES: &[CountrySpec] = &[
    CountrySpec {
        code: "GB",
        seller_weight: 16,
        travel_weight: 8,
        registry: Registry::Ripe,
        cities: &[
            city("London", 51.507, -0.128, 8, 0),
            city("Manchester", 53.481, -2.243, 3, 0),
            city("Birmingham", 52.486, -1.890, 3, 0),
            city("Glasgow", 55.864, -4.252, 2, 0),
        ],
        residential: &[
            "Albion Telecom plc",
            "Thames Valley Broadband Ltd",
            "Pennine Fibre Ltd",
            "Brightwire Cable Ltd",
        ],
        mobile: &["Britannia Mobile Ltd", "Union Cellular UK Ltd"],
    },
    CountrySpec {
        code: "DE",
        seller_weight: 15,
        travel_weight: 6,
        registry: Registry::Ripe,
        cities: &[
            city("Berlin", 52.520, 13.405, 5, 60),
            city("Hamburg", 53.551, 9.994, 3, 60),
            city("Munich", 48.137, 11.575, 4, 60),
            city("Cologne", 50.938, 6.960, 3, 60),
        ],
        residential: &[
            "Deutsche Netzwerk AG",
            "Rheinland Kabel GmbH",
            "Hanse Glasfaser GmbH",
            "Alpen DSL GmbH",
        ],
        mobile: &["Funkwelt Mobil GmbH", "Bundesnetz Mobilfunk GmbH"],
    },
    CountrySpec {
        code: "FR",
        seller_weight: 11,
        travel_weight: 10,
        registry: Registry::Ripe,
        cities: &[
            city("Paris", 48.857, 2.352, 6, 60),
            city("Lyon", 45.764, 4.836, 3, 60),
            city("Marseille", 43.296, 5.370, 2, 60),
            city("Lille", 50.629, 3.057, 2, 60),
        ],
        residential: &[
            "Hexanet Telecom SA",
            "Fibre de France SAS",
            "Rhone Cable SA",
        ],
        mobile: &["Mobilis France SA", "Hexagone Mobile SAS"],
    },
    CountrySpec {
        code: "IT",
        seller_weight: 11,
        travel_weight: 10,
        registry: Registry::Ripe,
        cities: &[
            city("Rome", 41.903, 12.496, 4, 60),
            city("Milan", 45.464, 9.190, 5, 60),
            city("Naples", 40.852, 14.268, 2, 60),
            city("Turin", 45.070, 7.687, 2, 60),
        ],
        residential: &[
            "Italnet Telecomunicazioni SpA",
            "Fibra Tricolore SpA",
            "Appennino Web Srl",
        ],
        mobile: &["Mobile Italia SpA", "Vesuvio Mobile SpA"],
    },
    CountrySpec {
        code: "ES",
        seller_weight: 10,
        travel_weight: 12,
        registry: Registry::Ripe,
        cities: &[
            city("Madrid", 40.417, -3.704, 5, 60),
            city("Barcelona", 41.385, 2.173, 4, 60),
            city("Valencia", 39.470, -0.376, 2, 60),
            city("Seville", 37.389, -5.984, 2, 60),
        ],
        residential: &[
            "Iberred Telecomunicaciones SA",
            "Fibra Peninsular SL",
            "Mediterraneo Cable SA",
        ],
        mobile: &["Movil Iberia SA"],
    },
    CountrySpec {
        code: "NL",
        seller_weight: 9,
        travel_weight: 4,
        registry: Registry::Ripe,
        cities: &[
            city("Amsterdam", 52.368, 4.904, 4, 60),
            city("Rotterdam", 51.924, 4.478, 3, 60),
            city("Utrecht", 52.091, 5.122, 2, 60),
        ],
        residential: &["Polder Kabel BV", "Lage Landen Glasvezel BV", "Deltanet BV"],
        mobile: &["Oranje Mobiel BV"],
    },
    CountrySpec {
        code: "US",
        seller_weight: 8,
        travel_weight: 6,
        registry: Registry::Arin,
        cities: &[
            city("New York", 40.713, -74.006, 4, -300),
            city("Los Angeles", 34.052, -118.244, 3, -480),
            city("Chicago", 41.878, -87.630, 2, -360),
            city("Houston", 29.760, -95.370, 2, -360),
        ],
        residential: &[
            "Continental Cable Inc",
            "Liberty Fiber Inc",
            "Great Plains Broadband LLC",
            "Atlantic Cable Communications Inc",
        ],
        mobile: &["Pioneer Wireless Inc", "Stars Mobile LLC"],
    },
    CountrySpec {
        code: "PL",
        seller_weight: 4,
        travel_weight: 2,
        registry: Registry::Ripe,
        cities: &[
            city("Warsaw", 52.230, 21.012, 3, 60),
            city("Krakow", 50.065, 19.945, 2, 60),
            city("Wroclaw", 51.108, 17.039, 1, 60),
        ],
        residential: &["Wisla Telekom SA", "Polnet Swiatlowod Sp. z o.o."],
        mobile: &["Baltyk Mobile SA"],
    },
    CountrySpec {
        code: "BE",
        seller_weight: 3,
        travel_weight: 2,
        registry: Registry::Ripe,
        cities: &[
            city("Brussels", 50.850, 4.352, 3, 60),
            city("Antwerp", 51.219, 4.402, 2, 60),
            city("Ghent", 51.054, 3.717, 1, 60),
        ],
        residential: &["Belnet Cable NV", "Flandria Telecom NV"],
        mobile: &["Benelux Mobile NV"],
    },
    CountrySpec {
        code: "AT",
        seller_weight: 3,
        travel_weight: 3,
        registry: Registry::Ripe,
        cities: &[
            city("Vienna", 48.208, 16.373, 4, 60),
            city("Graz", 47.071, 15.439, 1, 60),
            city("Linz", 48.306, 14.286, 1, 60),
        ],
        residential: &["Donau Telekom AG", "Tirolnet GmbH"],
        mobile: &["Alpen Mobil AG"],
    },
    CountrySpec {
        code: "CH",
        seller_weight: 2,
        travel_weight: 3,
        registry: Registry::Ripe,
        cities: &[
            city("Zurich", 47.377, 8.542, 3, 60),
            city("Geneva", 46.204, 6.143, 2, 60),
            city("Basel", 47.560, 7.589, 1, 60),
        ],
        residential: &["Helvetia Netz AG", "Jura Kabel AG"],
        mobile: &["Matterhorn Mobile AG"],
    },
    CountrySpec {
        code: "SE",
        seller_weight: 2,
        travel_weight: 1,
        registry: Registry::Ripe,
        cities: &[
            city("Stockholm", 59.329, 18.069, 3, 60),
            city("Gothenburg", 57.709, 11.975, 2, 60),
            city("Malmo", 55.605, 13.004, 1, 60),
        ],
        residential: &["Nordvag Bredband AB", "Svea Fiber AB"],
        mobile: &["Norrsken Mobil AB"],
    },
    CountrySpec {
        code: "IE",
        seller_weight: 2,
        travel_weight: 2,
        registry: Registry::Ripe,
        cities: &[
            city("Dublin", 53.350, -6.260, 3, 0),
            city("Cork", 51.899, -8.476, 1, 0),
        ],
        residential: &["Emerald Broadband Ltd", "Liffey Telecom Ltd"],
        mobile: &["Shamrock Mobile Ltd"],
    },
    CountrySpec {
        code: "PT",
        seller_weight: 2,
        travel_weight: 5,
        registry: Registry::Ripe,
        cities: &[
            city("Lisbon", 38.722, -9.139, 3, 0),
            city("Porto", 41.158, -8.629, 2, 0),
        ],
        residential: &["Lusitania Telecom SA", "Tejo Fibra SA"],
        mobile: &["Atlantico Movel SA"],
    },
    CountrySpec {
        code: "CZ",
        seller_weight: 2,
        travel_weight: 2,
        registry: Registry::Ripe,
        cities: &[
            city("Prague", 50.076, 14.438, 3, 60),
            city("Brno", 49.195, 16.607, 1, 60),
        ],
        residential: &["Bohemia Net a.s.", "Morava Kabel s.r.o."],
        mobile: &["Vltava Mobil a.s."],
    },
    CountrySpec {
        code: "GR",
        seller_weight: 1,
        travel_weight: 6,
        registry: Registry::Ripe,
        cities: &[
            city("Athens", 37.984, 23.728, 3, 120),
            city("Thessaloniki", 40.640, 22.944, 1, 120),
        ],
        residential: &["Hellas Telecom SA", "Aegean Broadband SA"],
        mobile: &["Olympus Mobile SA"],
    },
    CountrySpec {
        code: "CA",
        seller_weight: 1,
        travel_weight: 1,
        registry: Registry::Arin,
        cities: &[
            city("Toronto", 43.653, -79.383, 3, -300),
            city("Montreal", 45.502, -73.567, 2, -300),
            city("Vancouver", 49.283, -123.121, 1, -480),
        ],
        residential: &["Maple Cable Inc", "Laurentian Telecom Inc"],
        mobile: &["Northern Lights Wireless Inc"],
    },
    CountrySpec {
        code: "TR",
        seller_weight: 0,
        travel_weight: 3,
        registry: Registry::Ripe,
        cities: &[
            city("Istanbul", 41.008, 28.978, 4, 180),
            city("Ankara", 39.933, 32.860, 2, 180),
            city("Antalya", 36.897, 30.713, 1, 180),
        ],
        residential: &["Anadolu Telekom AS", "Bosphorus Net AS"],
        mobile: &["Marmara Mobil AS"],
    },
    CountrySpec {
        code: "BR",
        seller_weight: 0,
        travel_weight: 1,
        registry: Registry::Lacnic,
        cities: &[
            city("Sao Paulo", -23.550, -46.633, 3, -180),
            city("Rio de Janeiro", -22.907, -43.173, 2, -180),
        ],
        residential: &["Brasilnet Telecom SA", "Amazonia Fibra Ltda"],
        mobile: &["Carioca Movel SA"],
    },
    CountrySpec {
        code: "IN",
        seller_weight: 0,
        travel_weight: 1,
        registry: Registry::Apnic,
        cities: &[
            city("Mumbai", 19.076, 72.878, 3, 330),
            city("Delhi", 28.704, 77.102, 3, 330),
            city("Bangalore", 12.972, 77.595, 2, 330),
        ],
        residential: &["Bharat Broadband Pvt Ltd", "Ganga Telecom Ltd"],
        mobile: &["Monsoon Mobile Ltd"],
    },
    CountrySpec {
        code: "NG",
        seller_weight: 0,
        travel_weight: 0,
        registry: Registry::Afrinic,
        cities: &[
            city("Lagos", 6.524, 3.379, 3, 60),
            city("Abuja", 9.058, 7.496, 1, 60),
        ],
        residential: &["Niger Delta Telecom Ltd", "Lagos Fibre Ltd"],
        mobile: &["Savannah Mobile Ltd"],
    },
    CountrySpec {
        code: "VN",
        seller_weight: 0,
        travel_weight: 1,
        registry: Registry::Apnic,
        cities: &[
            city("Ho Chi Minh City", 10.823, 106.630, 3, 420),
            city("Hanoi", 21.028, 105.834, 2, 420),
        ],
        residential: &["Mekong Telecom JSC", "Hanoi Net JSC"],
        mobile: &["Lotus Mobile JSC"],
    },
];

/// Hosting, datacenter and VPN providers, present in many countries.
const HOSTING_PROVIDERS: &[&str] = &[
    "Nimbus Hosting Ltd",
    "Stratus Cloud Hosting BV",
    "Ironclad VPN Services SA",
    "Bluegate Datacenter GmbH",
    "Packetfort Hosting LLC",
    "Privanet VPN Ltd",
    "Zephyr Servers Hosting SRL",
    "Northwind Colocation Inc",
    "Veil VPN AB",
    "Quickbox Cloud Hosting Ltd",
];

/// Countries where every hosting provider has a pool.
const HOSTING_HUBS: &[&str] = &["US", "DE", "NL", "GB", "FR"];

/// Fixed, so the same addresses mean the same places for every seed.
const WORLD_SEED: u64 = 0xC057_05E0_2018_0101;

#[derive(Debug)]
pub(crate) struct Network {
    pub asn: u32,
    pub org: &'static str,
    pub kind: NetworkKind,
    /// Home country of residential and mobile networks.
    pub country: Option<usize>,
    pub pools: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Block {
    V4 {
        base: u32,
        prefix_len: u8,
    },
    /// A /32, given by its top 32 bits.
    V6 {
        top: u32,
    },
}

#[derive(Debug)]
pub(crate) struct Pool {
    pub network: usize,
    pub country: usize,
    pub city: usize,
    block: Block,
    latitude: f64,
    longitude: f64,
}

/// An address together with the pool it was drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Addr {
    pub pool: usize,
    pub ip: IpAddr,
}

#[derive(Debug)]
pub(crate) struct World {
    pub networks: Vec<Network>,
    pub pools: Vec<Pool>,
    /// Residential pools by country and city.
    residential: Vec<Vec<Vec<usize>>>,
    /// Mobile networks by country.
    mobile: Vec<Vec<usize>>,
    /// Hosting pools by country.
    hosting: Vec<Vec<usize>>,
    /// All pools by country.
    by_country: Vec<Vec<usize>>,
    /// IPv4 pools sorted by base address, for lookups.
    v4_index: Vec<(u32, u32, usize)>,
}

/// Allocates non-overlapping blocks: every pool gets a /16 of its own.
struct AddressPlan {
    used_16: std::collections::BTreeSet<u32>,
    used_v6: std::collections::BTreeSet<u32>,
}

impl AddressPlan {
    fn v4(&mut self, rng: &mut Rng, first_octets: &[u8], prefix_len: u8) -> Block {
        loop {
            let first = u32::from(*rng.pick(first_octets).expect("registries have octets"));
            let second = 1 + rng.below(254) as u32;
            let slash16 = (first << 8) | second;
            if !self.used_16.insert(slash16) {
                continue;
            }
            let within = if prefix_len > 16 {
                // A random aligned sub-block of the /16.
                let blocks = 1u64 << (prefix_len - 16);
                (rng.below(blocks) as u32) << (32 - prefix_len)
            } else {
                0
            };
            return Block::V4 {
                base: (slash16 << 16) | within,
                prefix_len,
            };
        }
    }

    fn v6(&mut self, rng: &mut Rng, registry: Registry) -> Block {
        loop {
            let top = (registry.ipv6_top() << 16) | (0x0100 + rng.below(0xfe00) as u32);
            if self.used_v6.insert(top) {
                return Block::V6 { top };
            }
        }
    }
}

impl World {
    /// Builds the world; the same on every call.
    pub(crate) fn build() -> World {
        let mut rng = Rng::new(WORLD_SEED);
        let mut plan = AddressPlan {
            used_16: Default::default(),
            used_v6: Default::default(),
        };
        let mut used_asns = std::collections::BTreeSet::new();
        let mut new_asn = |rng: &mut Rng| loop {
            let asn = 25_000 + rng.below(35_000) as u32;
            if used_asns.insert(asn) {
                return asn;
            }
        };
        let mut world = World {
            networks: Vec::new(),
            pools: Vec::new(),
            residential: COUNTRIES
                .iter()
                .map(|c| vec![Vec::new(); c.cities.len()])
                .collect(),
            mobile: vec![Vec::new(); COUNTRIES.len()],
            hosting: vec![Vec::new(); COUNTRIES.len()],
            by_country: vec![Vec::new(); COUNTRIES.len()],
            v4_index: Vec::new(),
        };
        for (country_index, country) in COUNTRIES.iter().enumerate() {
            let octets = country.registry.first_octets();
            for (rank, org) in country.residential.iter().enumerate() {
                let network = world.add_network(new_asn(&mut rng), org, NetworkKind::Residential);
                world.networks[network].country = Some(country_index);
                for city_index in 0..country.cities.len() {
                    // The incumbent serves everyone; the others most cities.
                    if rank > 0 && city_index > 0 && rng.chance(0.3) {
                        continue;
                    }
                    let prefix_len = if rng.chance(0.6) { 16 } else { 20 };
                    let block = plan.v4(&mut rng, octets, prefix_len);
                    let pool = world.add_pool(&mut rng, network, country_index, city_index, block);
                    world.residential[country_index][city_index].push(pool);
                }
            }
            for org in country.mobile {
                let network = world.add_network(new_asn(&mut rng), org, NetworkKind::Mobile);
                world.networks[network].country = Some(country_index);
                for _ in 0..2 + rng.below(2) {
                    let city_index = rng.below(country.cities.len() as u64) as usize;
                    let block = plan.v4(&mut rng, octets, 16);
                    world.add_pool(&mut rng, network, country_index, city_index, block);
                }
                if rng.chance(0.75) {
                    let block = plan.v6(&mut rng, country.registry);
                    world.add_pool(&mut rng, network, country_index, 0, block);
                }
                world.mobile[country_index].push(network);
            }
        }
        for org in HOSTING_PROVIDERS {
            let network = world.add_network(new_asn(&mut rng), org, NetworkKind::Hosting);
            for (country_index, country) in COUNTRIES.iter().enumerate() {
                if HOSTING_HUBS.contains(&country.code) || rng.chance(0.5) {
                    world.add_hosting_pool(&mut rng, &mut plan, network, country_index);
                }
            }
        }
        let hosting_networks: Vec<usize> = (0..world.networks.len())
            .filter(|n| world.networks[*n].kind == NetworkKind::Hosting)
            .collect();
        for country_index in 0..COUNTRIES.len() {
            while world.hosting[country_index].len() < 2 {
                let network = *rng.pick(&hosting_networks).expect("providers exist");
                let present = world.hosting[country_index]
                    .iter()
                    .any(|p| world.pools[*p].network == network);
                if !present {
                    world.add_hosting_pool(&mut rng, &mut plan, network, country_index);
                }
            }
        }
        world.v4_index = world
            .pools
            .iter()
            .enumerate()
            .filter_map(|(index, pool)| match pool.block {
                Block::V4 { base, prefix_len } => Some((base, 1u32 << (32 - prefix_len), index)),
                Block::V6 { .. } => None,
            })
            .collect();
        world.v4_index.sort_unstable();
        world
    }

    fn add_network(&mut self, asn: u32, org: &'static str, kind: NetworkKind) -> usize {
        self.networks.push(Network {
            asn,
            org,
            kind,
            country: None,
            pools: Vec::new(),
        });
        self.networks.len() - 1
    }

    fn add_pool(
        &mut self,
        rng: &mut Rng,
        network: usize,
        country: usize,
        city: usize,
        block: Block,
    ) -> usize {
        let spec = &COUNTRIES[country].cities[city];
        self.pools.push(Pool {
            network,
            country,
            city,
            block,
            // Databases place a pool near, not at, the city centre.
            latitude: round3(spec.latitude + rng.uniform(-0.03, 0.03)),
            longitude: round3(spec.longitude + rng.uniform(-0.03, 0.03)),
        });
        let pool = self.pools.len() - 1;
        self.networks[network].pools.push(pool);
        self.by_country[country].push(pool);
        pool
    }

    fn add_hosting_pool(
        &mut self,
        rng: &mut Rng,
        plan: &mut AddressPlan,
        network: usize,
        country: usize,
    ) {
        let cities = COUNTRIES[country].cities.len();
        let city = if cities > 1 && rng.chance(0.2) { 1 } else { 0 };
        let block = plan.v4(rng, HOSTING_FIRST_OCTETS, 20);
        let pool = self.add_pool(rng, network, country, city, block);
        self.hosting[country].push(pool);
    }

    pub(crate) fn is_ipv6(&self, pool: usize) -> bool {
        matches!(self.pools[pool].block, Block::V6 { .. })
    }

    pub(crate) fn network_of(&self, pool: usize) -> &Network {
        &self.networks[self.pools[pool].network]
    }

    pub(crate) fn kind_of(&self, pool: usize) -> NetworkKind {
        self.network_of(pool).kind
    }

    /// Residential pools serving a city.
    pub(crate) fn residential_pools(&self, country: usize, city: usize) -> &[usize] {
        &self.residential[country][city]
    }

    pub(crate) fn mobile_networks(&self, country: usize) -> &[usize] {
        &self.mobile[country]
    }

    pub(crate) fn hosting_pools(&self, country: usize) -> &[usize] {
        &self.hosting[country]
    }

    pub(crate) fn pools_in_country(&self, country: usize) -> &[usize] {
        &self.by_country[country]
    }

    /// The ASNs of every hosting, datacenter and VPN provider: what an
    /// evaluation should configure as hosting networks.
    pub(crate) fn hosting_asns(&self) -> Vec<u32> {
        self.networks
            .iter()
            .filter(|n| n.kind == NetworkKind::Hosting)
            .map(|n| n.asn)
            .collect()
    }

    /// A random address of a pool. IPv4 host parts avoid .0 and .255, which
    /// real clients rarely have.
    pub(crate) fn random_in_pool(&self, rng: &mut Rng, pool: usize) -> Addr {
        let ip = match self.pools[pool].block {
            Block::V4 { base, prefix_len } => {
                let slash24s = 1u64 << (24 - prefix_len);
                let net = base | ((rng.below(slash24s) as u32) << 8);
                IpAddr::V4(Ipv4Addr::from(net | (1 + rng.below(254) as u32)))
            }
            Block::V6 { top } => {
                // A fresh /64 of the carrier's /32 and a random interface id.
                let prefix = (u128::from(top) << 96) | (u128::from(rng.next_u64() >> 32) << 64);
                IpAddr::V6(Ipv6Addr::from(prefix | u128::from(rng.next_u64())))
            }
        };
        Addr { pool, ip }
    }

    /// Another address in the same /24 (IPv4) or /64 (IPv6).
    pub(crate) fn neighbour(&self, rng: &mut Rng, addr: Addr) -> Addr {
        let ip = match addr.ip {
            IpAddr::V4(v4) => {
                let net = u32::from(v4) & 0xFFFF_FF00;
                IpAddr::V4(Ipv4Addr::from(net | (1 + rng.below(254) as u32)))
            }
            IpAddr::V6(v6) => {
                let net = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(Ipv6Addr::from(net | u128::from(rng.next_u64())))
            }
        };
        Addr {
            pool: addr.pool,
            ip,
        }
    }

    /// The pool an address belongs to, if any.
    #[cfg(test)]
    pub(crate) fn lookup(&self, ip: IpAddr) -> Option<usize> {
        match ip {
            IpAddr::V4(v4) => {
                let ip = u32::from(v4);
                let after = self.v4_index.partition_point(|(base, _, _)| *base <= ip);
                let (base, size, pool) = *self.v4_index.get(after.checked_sub(1)?)?;
                (u64::from(ip) < u64::from(base) + u64::from(size)).then_some(pool)
            }
            IpAddr::V6(v6) => {
                let top = (u128::from(v6) >> 96) as u32;
                self.pools
                    .iter()
                    .position(|p| matches!(p.block, Block::V6 { top: t } if t == top))
            }
        }
    }

    /// What a geolocation and ASN database would say about the pool.
    pub(crate) fn network_info(&self, pool: usize) -> NetworkInfo {
        let p = &self.pools[pool];
        let country = &COUNTRIES[p.country];
        let network = &self.networks[p.network];
        NetworkInfo {
            country: Some(country.code.to_owned()),
            city: Some(country.cities[p.city].name.to_owned()),
            latitude: Some(p.latitude),
            longitude: Some(p.longitude),
            asn: Some(network.asn),
            as_org: Some(network.org.to_owned()),
        }
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_reserved(ip: Ipv4Addr) -> bool {
        let [a, b, c, _] = ip.octets();
        ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_multicast()
            || ip.is_broadcast()
            || ip.is_documentation()
            || a == 0
            || a >= 240
            || (a == 100 && (64..128).contains(&b))
            || (a == 198 && (18..20).contains(&b))
            || (a == 192 && b == 0 && c == 0)
    }

    #[test]
    fn pools_do_not_overlap_and_addresses_find_their_pool() {
        let world = World::build();
        let mut rng = Rng::new(3);
        for window in world.v4_index.windows(2) {
            let (base, size, _) = window[0];
            assert!(u64::from(base) + u64::from(size) <= u64::from(window[1].0));
        }
        for pool in 0..world.pools.len() {
            for _ in 0..20 {
                let addr = world.random_in_pool(&mut rng, pool);
                assert_eq!(world.lookup(addr.ip), Some(pool), "{}", addr.ip);
                if let IpAddr::V4(v4) = addr.ip {
                    assert!(!is_reserved(v4), "{v4} is not a public address");
                }
                let near = world.neighbour(&mut rng, addr);
                assert_eq!(world.lookup(near.ip), Some(pool));
            }
        }
        assert_eq!(world.lookup("10.1.2.3".parse().expect("literal")), None);
    }

    #[test]
    fn every_country_has_every_kind_of_network() {
        let world = World::build();
        assert!((18..=24).contains(&COUNTRIES.len()));
        for (index, country) in COUNTRIES.iter().enumerate() {
            assert!((2..=4).contains(&country.cities.len()), "{}", country.code);
            for city in 0..country.cities.len() {
                assert!(!world.residential_pools(index, city).is_empty());
            }
            assert!((1..=2).contains(&world.mobile_networks(index).len()));
            assert!(world.hosting_pools(index).len() >= 2, "{}", country.code);
        }
        let hosting = world.hosting_asns();
        assert_eq!(hosting.len(), HOSTING_PROVIDERS.len());
        let mut asns: Vec<u32> = world.networks.iter().map(|n| n.asn).collect();
        asns.sort_unstable();
        asns.dedup();
        assert_eq!(asns.len(), world.networks.len(), "asns are unique");
        assert!(
            world
                .pools
                .iter()
                .any(|p| matches!(p.block, Block::V6 { .. }))
        );
    }

    #[test]
    fn the_world_is_the_same_every_time() {
        let a = World::build();
        let b = World::build();
        let info = |w: &World| {
            (0..w.pools.len())
                .map(|p| w.network_info(p))
                .collect::<Vec<_>>()
        };
        assert_eq!(info(&a), info(&b));
        assert_eq!(a.v4_index, b.v4_index);
    }
}
