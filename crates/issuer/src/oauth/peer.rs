//! Who is asking: the client's address behind trusted proxies
//! (`[server] trusted_proxies`), and the key its limits are counted under
//! (an IPv4 address, or an IPv6 prefix: one host usually holds a /64).

use std::net::{IpAddr, Ipv6Addr};

/// An address or a CIDR block, e.g. `10.0.0.0/8`, `::1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `ipv6/n`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| format!("`{s}` is not an address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { net: mask(net, bits), bits })
    }

    /// Whether `ip` is inside the block (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.bits) == self.net
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(bits.min(32))).unwrap_or(0);
            IpAddr::from((u32::from(v4) & m).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(bits.min(128))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

/// The key a client's limits are counted under: an IPv4 address, or its
/// IPv6 address cut to `ipv6_prefix` bits (`[throttle] ipv6_prefix`,
/// default 64), so that one host cannot multiply its budget by using many
/// addresses of its own prefix.
pub(crate) fn limit_key(addr: Option<IpAddr>, ipv6_prefix: u8) -> Option<IpAddr> {
    addr.map(|a| match canonical(a) {
        v4 @ IpAddr::V4(_) => v4,
        v6 => mask(v6, ipv6_prefix),
    })
}

/// The client's address: `peer` itself, unless `peer` is one of `trusted`;
/// then the nearest untrusted hop of `Forwarded` (RFC 7239, preferred) or
/// `X-Forwarded-For`, read right to left. Malformed headers leave `peer`.
pub(crate) fn client_address(
    peer: Option<IpAddr>,
    forwarded: &[&str],
    x_forwarded_for: &[&str],
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops: Option<Vec<IpAddr>> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|elem| {
                elem.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| parse_node(v.trim()))?
                })
            })
            .collect()
    } else if !x_forwarded_for.is_empty() {
        x_forwarded_for.iter().flat_map(|v| v.split(',')).map(|h| parse_node(h.trim())).collect()
    } else {
        None
    };
    let Some(hops) = hops else { return Some(peer) };
    // Right to left: the first hop that is not one of our proxies is the
    // client as far as anything we trust can tell.
    let mut chosen = peer;
    for hop in hops.iter().rev() {
        chosen = *hop;
        if !is_trusted(*hop) {
            break;
        }
    }
    Some(chosen)
}

/// One node of `Forwarded: for=` or `X-Forwarded-For`: an address, a
/// quoted one, `[v6]` or `[v6]:port` or `v4:port`.
fn parse_node(v: &str) -> Option<IpAddr> {
    let v = v.trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    v.parse()
        .ok()
        .or_else(|| v.rsplit_once(':').and_then(|(a, _)| a.parse::<std::net::Ipv4Addr>().ok()).map(IpAddr::V4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks_contain_their_addresses() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "::/129", "1.2.3.4/x"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted = [Cidr::parse("127.0.0.1").unwrap(), Cidr::parse("10.0.0.0/8").unwrap()];
        let lb = Some(ip("127.0.0.1"));
        // An untrusted peer's headers are ignored.
        assert_eq!(client_address(Some(ip("203.0.113.9")), &[], &["1.2.3.4"], &trusted), Some(ip("203.0.113.9")));
        // The nearest untrusted hop, right to left: a forged leftmost
        // entry does not count.
        assert_eq!(client_address(lb, &[], &["6.6.6.6, 198.51.100.7, 10.0.0.2"], &trusted), Some(ip("198.51.100.7")));
        assert_eq!(
            client_address(lb, &["for=6.6.6.6, for=\"[2001:db8::1]:443\";proto=https"], &["9.9.9.9"], &trusted),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(client_address(lb, &[], &["198.51.100.7:5555"], &trusted), Some(ip("198.51.100.7")));
        // Malformed or absent: the peer.
        assert_eq!(client_address(lb, &[], &["garbage"], &trusted), lb);
        assert_eq!(client_address(lb, &[], &[], &trusted), lb);
        // Nothing trusted by default.
        assert_eq!(client_address(lb, &[], &["1.2.3.4"], &[]), lb);
    }

    #[test]
    fn ipv6_addresses_of_one_prefix_share_a_limit_key() {
        let a = limit_key(Some(ip("2001:db8:1:2::1")), 64);
        assert_eq!(a, limit_key(Some(ip("2001:db8:1:2:ffff::9")), 64));
        assert_ne!(a, limit_key(Some(ip("2001:db8:1:3::1")), 64));
        assert_eq!(limit_key(Some(ip("127.0.0.5")), 64), Some(ip("127.0.0.5")));
        assert_eq!(limit_key(Some(ip("::ffff:1.2.3.4")), 64), Some(ip("1.2.3.4")));
    }
}
