//! A set of IPv4 and IPv6 networks (CIDRs, parsed by `ipnet`) that answers
//! "is this address in any of them" with one hash lookup per distinct
//! prefix length, however many networks it holds.
//!
//! ```
//! use keystile_middleware::cidr::CidrSet;
//!
//! let set = CidrSet::parse(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"])?;
//! assert!(set.contains("10.20.30.40".parse()?));
//! assert!(set.contains("::ffff:10.1.2.3".parse()?)); // v4-mapped is v4
//! assert!(set.contains("192.0.2.7".parse()?));
//! assert!(!set.contains("192.0.2.8".parse()?));
//! assert!(CidrSet::parse(["10.0.0.0/33"]).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

/// A CIDR (or address) that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP network (`10.0.0.0/8`, `2001:db8::/32`) or address")]
pub struct CidrError(pub String);

/// Networks by prefix length: each network is stored as its masked address,
/// so membership is "mask the address to each length present and look it
/// up".
#[derive(Clone, Debug, Default)]
pub struct CidrSet {
    v4: BTreeMap<u8, HashSet<u32>>,
    v6: BTreeMap<u8, HashSet<u128>>,
    len: usize,
}

impl CidrSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set of `cidrs`: `a.b.c.d/n`, `v6/n`, or bare addresses (a single
    /// host). Host bits below the prefix are ignored (`10.1.2.3/8` is
    /// `10.0.0.0/8`).
    pub fn parse<I, S>(cidrs: I) -> Result<Self, CidrError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::new();
        for cidr in cidrs {
            let text = cidr.as_ref().trim_matches([' ', '\t']);
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| CidrError(text.to_owned()))?;
            set.insert(net);
        }
        Ok(set)
    }

    /// Adds `net`.
    pub fn insert(&mut self, net: IpNet) {
        let fresh = match net.trunc() {
            IpNet::V4(net) => self
                .v4
                .entry(net.prefix_len())
                .or_default()
                .insert(u32::from(net.network())),
            IpNet::V6(net) => match net.network().to_ipv4_mapped() {
                // `::ffff:a.b.c.d/n` with n ≥ 96 is an IPv4 network.
                Some(v4) if net.prefix_len() >= 96 => self
                    .v4
                    .entry(net.prefix_len() - 96)
                    .or_default()
                    .insert(u32::from(v4)),
                _ => self
                    .v6
                    .entry(net.prefix_len())
                    .or_default()
                    .insert(u128::from(net.network())),
            },
        };
        if fresh {
            self.len += 1;
        }
    }

    /// Whether `ip` (v4-mapped IPv6 read as IPv4) is in any network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                self.v4
                    .iter()
                    .any(|(&len, nets)| nets.contains(&mask32(bits, len)))
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                self.v6
                    .iter()
                    .any(|(&len, nets)| nets.contains(&mask128(bits, len)))
            }
        }
    }

    /// How many distinct networks the set holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no network.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn mask32(bits: u32, len: u8) -> u32 {
    match len {
        0 => 0,
        len => bits & (u32::MAX << (32 - u32::from(len))),
    }
}

fn mask128(bits: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        len => bits & (u128::MAX << (128 - u32::from(len))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn membership_agrees_with_ipnet_for_every_prefix_length() {
        for len in 0..=32u8 {
            let net: IpNet = format!("172.16.5.4/{len}").parse().unwrap();
            let set = CidrSet::parse([net.to_string()]).unwrap();
            for probe in [
                "172.16.5.4",
                "172.16.5.5",
                "172.17.0.0",
                "0.0.0.0",
                "255.255.255.255",
            ] {
                assert_eq!(
                    set.contains(ip(probe)),
                    net.trunc().contains(&ip(probe)),
                    "{net} {probe}"
                );
            }
        }
        for len in [0u8, 1, 31, 32, 48, 64, 127, 128] {
            let net: IpNet = format!("2001:db8:1:2::5/{len}").parse().unwrap();
            let set = CidrSet::parse([net.to_string()]).unwrap();
            for probe in [
                "2001:db8:1:2::5",
                "2001:db8:1:2::6",
                "2001:db9::",
                "::",
                "ffff::",
            ] {
                assert_eq!(
                    set.contains(ip(probe)),
                    net.trunc().contains(&ip(probe)),
                    "{net} {probe}"
                );
            }
        }
    }

    #[test]
    fn v4_mapped_addresses_and_networks_are_ipv4() {
        let set = CidrSet::parse(["::ffff:10.0.0.0/104"]).unwrap();
        assert!(set.contains(ip("10.9.9.9")));
        assert!(set.contains(ip("::ffff:10.9.9.9")));
        assert!(!set.contains(ip("11.0.0.1")));
        let v4 = CidrSet::parse(["10.0.0.0/8"]).unwrap();
        assert!(v4.contains(ip("::ffff:10.0.0.1")));
        assert!(
            !v4.contains(ip("::a00:1")),
            "IPv4-compatible is not v4-mapped"
        );
    }

    #[test]
    fn bad_networks_are_refused_with_their_text() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0",
            "fe80::/129",
            "",
            "10.0.0.0/8/8",
            "example.test",
        ] {
            assert_eq!(CidrSet::parse([bad]).unwrap_err(), CidrError(bad.into()));
        }
        let set = CidrSet::parse(["10.0.0.0/8", "10.1.0.0/8", " 192.0.2.1 "]).unwrap();
        assert_eq!(set.len(), 2, "10.1.0.0/8 is 10.0.0.0/8");
    }
}
