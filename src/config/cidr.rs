//! CIDR blocks for `forwarding.trusted_proxies`.

use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `addr` is inside this block. An IPv4-mapped IPv6 address is compared as IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => mask_eq(
                u32::from(net) as u128,
                u32::from(a) as u128,
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                mask_eq(u128::from(net), u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn mask_eq(net: u128, addr: u128, prefix: u8, width: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = width - prefix;
    net >> shift == addr >> shift
}

impl FromStr for Cidr {
    type Err = String;

    /// Parses `10.0.0.0/8`, `::1/128`, or a bare address (a single host).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{addr:?} is not an IP address"))?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("prefix {p:?} must be a number from 0 to {width}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let cases = [
            ("10.0.0.0/8", "10.200.1.1", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("::1/128", "::1", true),
            ("fd00::/8", "fd12::1", true),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("10.0.0.0/8", "fd00::1", false),
        ];
        for (cidr, addr, want) in cases {
            let c: Cidr = cidr.parse().unwrap();
            assert_eq!(c.contains(ip(addr)), want, "{cidr} contains {addr}");
        }
    }

    #[test]
    fn malformed_blocks_are_rejected() {
        for text in [
            "",
            "10.0.0.0/33",
            "::/129",
            "host",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert!(text.parse::<Cidr>().is_err(), "{text:?}");
        }
    }
}
