//! Choosing the certificate of a handshake by SNI: an exact name first, then a wildcard
//! (`*.example.com` covers one label), else the first configured certificate. Among
//! certificates for the same name (an ECDSA and an RSA one), the first whose key can sign
//! with a scheme the client offers. The set is swapped whole on reload (one `ArcSwap`).

use super::certs::LoadedCertificate;
use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use std::sync::Arc;

/// The certificates in service, indexed by name.
#[derive(Debug)]
pub struct CertSet {
    pub certs: Vec<LoadedCertificate>,
    /// Lowercase DNS name → indexes into `certs`, in configuration order.
    exact: FxHashMap<String, Vec<usize>>,
    /// The part after `*.` → indexes into `certs`.
    wildcard: FxHashMap<String, Vec<usize>>,
}

impl CertSet {
    /// `certs` must not be empty: the first is the default.
    pub fn new(certs: Vec<LoadedCertificate>) -> CertSet {
        let mut exact: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        let mut wildcard: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        for (i, cert) in certs.iter().enumerate() {
            for name in &cert.info.names {
                let (table, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut wildcard, parent),
                    None => (&mut exact, name.as_str()),
                };
                let entry = table.entry(key.to_string()).or_default();
                if !entry.contains(&i) {
                    entry.push(i);
                }
            }
        }
        CertSet {
            certs,
            exact,
            wildcard,
        }
    }

    /// The candidates for `server_name` (lowercased by the caller), best first; empty when
    /// no certificate names it.
    fn candidates(&self, server_name: &str) -> &[usize] {
        if let Some(found) = self.exact.get(server_name) {
            return found;
        }
        match server_name.split_once('.') {
            Some((_, parent)) => self.wildcard.get(parent).map_or(&[], Vec::as_slice),
            None => &[],
        }
    }

    /// The index of the certificate for a client hello with `server_name` that offers
    /// `schemes`.
    pub fn choose(&self, server_name: Option<&str>, schemes: &[SignatureScheme]) -> Option<usize> {
        let lower;
        let candidates = match server_name {
            Some(name) if name.bytes().any(|b| b.is_ascii_uppercase()) => {
                lower = name.to_ascii_lowercase();
                self.candidates(&lower)
            }
            Some(name) => self.candidates(name),
            None => &[],
        };
        let signs = |i: &usize| self.certs[*i].key.key.choose_scheme(schemes).is_some();
        if let Some(&i) = candidates.iter().find(|i| signs(i)) {
            return Some(i);
        }
        if let Some(&i) = candidates.first() {
            return Some(i);
        }
        // The default, or a certificate that can sign for this client.
        if self.certs.is_empty() {
            return None;
        }
        if signs(&0) {
            return Some(0);
        }
        Some((0..self.certs.len()).find(|i| signs(i)).unwrap_or(0))
    }
}

/// The rustls resolver over the swappable set.
#[derive(Debug)]
pub struct SniResolver {
    current: ArcSwap<CertSet>,
}

impl SniResolver {
    pub fn new(set: CertSet) -> SniResolver {
        SniResolver {
            current: ArcSwap::from_pointee(set),
        }
    }

    pub fn current(&self) -> Arc<CertSet> {
        self.current.load_full()
    }

    /// Puts a new set in service; handshakes in progress finish with the old one.
    pub fn replace(&self, set: CertSet) {
        self.current.store(Arc::new(set));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.current.load();
        let i = set.choose(hello.server_name(), hello.signature_schemes())?;
        Some(Arc::clone(&set.certs[i].key))
    }
}
