//! IP networks in CIDR notation, for a managed client's `ip_allowlist`.
//!
//! - `a.b.c.d/n` (n ≤ 32) or an IPv6 address (RFC 4291 §2.2 text, no zone) `/n` (n ≤ 128); a
//!   bare address is `/32` or `/128`.
//! - An address with host bits set (`10.1.2.3/8`) is refused, not widened: whoever wrote it may
//!   have meant `10.1.2.3/32`, and silently allowing all of `10.0.0.0/8` would let in far more
//!   than they read. The error names the network they may have meant.
//! - An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, RFC 4291 §2.5.5.2) is its IPv4 address: an
//!   address to check is mapped back before matching, and a network written in that form
//!   (`::ffff:10.0.0.0/104`) is the IPv4 network (`10.0.0.0/8`). So `10.0.0.0/8` lets in
//!   `::ffff:10.1.2.3`, and an IPv6 network (even `::/0`) never lets in an IPv4 address.
//! - Displayed canonically: the network address (RFC 5952 text for IPv6), `/`, the prefix
//!   length.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address, host bits zero; never an IPv4-mapped IPv6 address.
    network: IpAddr,
    /// The prefix length: at most 32 for IPv4, 128 for IPv6.
    prefix: u8,
}

/// The mask of the first `prefix` of 32 bits.
fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// The mask of the first `prefix` of 128 bits.
fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl Cidr {
    /// Parses `address[/prefix]` (see the module documentation for the rules).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (address, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| "must be an IPv4 or IPv6 address, optionally with /prefix".to_string())?;
        let max: u8 = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only, no leading zero: `u8::from_str` would also take `+8`.
            Some(p)
                if !p.is_empty()
                    && p.len() <= 3
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p == "0" || !p.starts_with('0')) =>
            {
                p.parse::<u8>()
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| format!("the prefix length must be from 0 to {max}"))?
            }
            Some(_) => return Err(format!("the prefix length must be from 0 to {max}")),
        };
        let network = Cidr::masked(address, prefix);
        if network != address {
            return Err(format!(
                "has host bits set; the network is {}",
                Cidr::from_parts(network, prefix)
            ));
        }
        Ok(Cidr::from_parts(network, prefix))
    }

    /// `address` with all but its first `prefix` bits cleared.
    fn masked(address: IpAddr, prefix: u8) -> IpAddr {
        match address {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
        }
    }

    /// The network of `network`/`prefix` (host bits already clear), an IPv4-mapped one as IPv4.
    fn from_parts(network: IpAddr, prefix: u8) -> Cidr {
        match network {
            IpAddr::V6(a) if prefix >= 96 => match a.to_ipv4_mapped() {
                Some(v4) => Cidr {
                    network: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => Cidr { network, prefix },
            },
            _ => Cidr { network, prefix },
        }
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                u32::from(a) & mask_v4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask_v6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}
