//! The edge's hop-by-hop fields (RFC 9110 §7.6.1), removed from a response head before it goes
//! to the client through the framework: `Connection`, `Keep-Alive`, `Proxy-Connection`,
//! `Upgrade`, and the fields the edge's `Connection` names. The framework writes its own
//! `Connection` and framing fields.

use pingora::http::ResponseHeader;

pub fn strip(response: &mut ResponseHeader) {
    let named: Vec<String> = response
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter_map(|token| std::str::from_utf8(token.trim_ascii()).ok())
        .filter(|token| {
            !token.is_empty()
                && !["close", "keep-alive"]
                    .iter()
                    .any(|t| token.eq_ignore_ascii_case(t))
        })
        .map(str::to_ascii_lowercase)
        .collect();
    for name in ["connection", "keep-alive", "proxy-connection", "upgrade"] {
        response.remove_header(name);
    }
    for name in &named {
        response.remove_header(name.as_str());
    }
}
