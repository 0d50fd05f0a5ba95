//! `X-Real-IP` parsing and the client-address rule.
//!
//! Invariants: nothing panics; a parsed address round-trips (its Display parses back, as an
//! `IpAddr` and through the header parser, to the same address); the header counts only from
//! a trusted peer.
#![no_main]

use cti_kaltura::config::{parse_cidr, TrustedProxies};
use cti_kaltura::routing::client_ip::{client_ip, parse_x_real_ip, MalformedXRealIp};
use cti_kaltura::snapshot::canonical_ip;
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use std::sync::OnceLock;

fn trusted() -> &'static TrustedProxies {
    static TRUSTED: OnceLock<TrustedProxies> = OnceLock::new();
    TRUSTED.get_or_init(|| {
        TrustedProxies(
            ["127.0.0.0/8", "::1/128", "10.15.2.20/32"]
                .iter()
                .map(|s| parse_cidr(s).expect("valid CIDR"))
                .collect(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse_x_real_ip(data);
    if let Some(ip) = parsed {
        assert_eq!(ip, canonical_ip(ip), "not canonical: {ip}");
        let shown = ip.to_string();
        assert_eq!(shown.parse::<IpAddr>().ok(), Some(ip), "{shown}");
        assert_eq!(parse_x_real_ip(shown.as_bytes()), Some(ip), "{shown}");
        assert_eq!(parse_x_real_ip(format!(" {shown}\t").as_bytes()), Some(ip));
        if ip.is_ipv6() {
            assert_eq!(parse_x_real_ip(format!("[{shown}]").as_bytes()), Some(ip));
        }
    }
    let t = trusted();
    for peer in ["127.0.0.1", "::1", "::ffff:10.15.2.20"] {
        let peer: IpAddr = peer.parse().unwrap();
        let expected = parsed.ok_or(MalformedXRealIp);
        assert_eq!(client_ip(peer, Some(data), t), expected);
        assert_eq!(client_ip(peer, None, t), Ok(canonical_ip(peer)));
    }
    for peer in ["8.8.8.8", "2001:db8::1", "::ffff:10.15.2.21"] {
        let peer: IpAddr = peer.parse().unwrap();
        assert_eq!(client_ip(peer, Some(data), t), Ok(canonical_ip(peer)));
    }
});
