//! The client's address: the TCP peer, unless a trusted proxy speaks for it in `X-Real-IP`.

use crate::config::TrustedProxies;
use crate::snapshot::canonical_ip;
use std::net::{IpAddr, Ipv6Addr};

/// Parses an `X-Real-IP` value: IPv4 (four decimal octets 0-255) or IPv6, optionally in
/// brackets, surrounding blanks trimmed. Lists (`a, b`) and names are malformed.
pub fn parse_x_real_ip(value: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| canonical_ip(IpAddr::V6(v6)));
    }
    text.parse::<IpAddr>().ok().map(canonical_ip)
}

/// A trusted proxy sent an `X-Real-IP` that is not an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedXRealIp;

/// The address routing uses.
pub fn client_ip(
    peer: IpAddr,
    x_real_ip: Option<&[u8]>,
    trusted: &TrustedProxies,
) -> Result<IpAddr, MalformedXRealIp> {
    let peer = canonical_ip(peer);
    match x_real_ip {
        Some(value) if trusted.contains(peer) => parse_x_real_ip(value).ok_or(MalformedXRealIp),
        _ => Ok(peer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_cidr;

    fn trusted() -> TrustedProxies {
        TrustedProxies(vec![
            parse_cidr("10.15.2.20/32").unwrap(),
            parse_cidr("::1/128").unwrap(),
        ])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn header_values() {
        assert_eq!(
            parse_x_real_ip(b"123.123.123.123"),
            Some(ip("123.123.123.123"))
        );
        assert_eq!(parse_x_real_ip(b"  1.2.3.4 "), Some(ip("1.2.3.4")));
        assert_eq!(parse_x_real_ip(b"2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_x_real_ip(b"[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_x_real_ip(b"::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
        for bad in [
            &b""[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"10.0.0.300",
            b"1.2.3.4, 5.6.7.8",
            b"unknown",
            b"-1.2.3.4",
            b"+1.2.3.4",
            b"1.2.3.4:80",
            b"\xff\xfe",
            b"2001:db8::1%eth0",
        ] {
            assert_eq!(
                parse_x_real_ip(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn trusted_peer_header_wins_untrusted_is_ignored() {
        let t = trusted();
        assert_eq!(
            client_ip(ip("10.15.2.20"), Some(b"123.123.123.123"), &t),
            Ok(ip("123.123.123.123"))
        );
        assert_eq!(
            client_ip(ip("10.15.2.21"), Some(b"123.123.123.123"), &t),
            Ok(ip("10.15.2.21"))
        );
        assert_eq!(
            client_ip(ip("10.15.2.21"), Some(b"garbage"), &t),
            Ok(ip("10.15.2.21"))
        );
        assert_eq!(
            client_ip(ip("10.15.2.20"), Some(b"garbage"), &t),
            Err(MalformedXRealIp)
        );
        assert_eq!(client_ip(ip("10.15.2.20"), None, &t), Ok(ip("10.15.2.20")));
        assert_eq!(
            client_ip(ip("::1"), Some(b"5.6.7.8"), &t),
            Ok(ip("5.6.7.8"))
        );
    }

    #[test]
    fn ipv4_mapped_peer_counts_as_ipv4() {
        let t = trusted();
        assert_eq!(
            client_ip(ip("::ffff:10.15.2.20"), Some(b"1.1.1.1"), &t),
            Ok(ip("1.1.1.1"))
        );
        assert_eq!(client_ip(ip("::ffff:9.9.9.9"), None, &t), Ok(ip("9.9.9.9")));
    }
}
