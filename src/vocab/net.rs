//! Addresses and networks: CIDR parsing (host bits dropped) and the canonical form of an
//! address (IPv4-mapped IPv6 counts as IPv4).

use ipnet::IpNet;
use std::net::IpAddr;

/// Parses `a.b.c.d/n`, `x::/n` or a bare address (a host route).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "not a CIDR".to_string())
}

/// IPv4-mapped IPv6 addresses count as IPv4.
#[inline]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}
