//! Certificate files → a rustls [`CertifiedKey`] and what the management listener shows of it
//! (subject, names, not-after), with errors that say which file is wrong and why.

use crate::config::CertificateFiles;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCertificate {
    pub key: Arc<CertifiedKey>,
    pub info: CertificateInfo,
}

/// What is shown and measured of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The certificate file, as configured (the metrics' label).
    pub cert_file: String,
    pub subject: String,
    /// DNS names of the subjectAltName (or the subject's CN when there is none), lowercase.
    pub names: Vec<String>,
    /// `notAfter`, seconds since the epoch.
    pub not_after_unix: i64,
    /// The key's algorithm (`ECDSA`, `RSA`, `ED25519`).
    pub key_type: String,
    /// An OCSP response is stapled.
    pub ocsp: bool,
}

/// Which configured file a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKey {
    CertFile,
    KeyFile,
    OcspFile,
}

impl FileKey {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKey::CertFile => "cert_file",
            FileKey::KeyFile => "key_file",
            FileKey::OcspFile => "ocsp_file",
        }
    }
}

/// Why a certificate was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CertError {
    pub key: FileKey,
    pub message: String,
}

fn err(key: FileKey, message: impl Into<String>) -> CertError {
    CertError {
        key,
        message: message.into(),
    }
}

fn read(path: &Path, key: FileKey) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))
}

/// The crypto the router serves TLS with: rustls's *aws-lc-rs* provider (AEAD suites with
/// ECDHE only; X25519, P-256, P-384, then X25519MLKEM768), chosen over *ring* for its
/// faster RSA signing (docs/performance.md).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Parses a PEM chain (leaf first).
pub fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("no CERTIFICATE block in the PEM file".to_string());
    }
    Ok(chain)
}

/// Parses a PEM private key: PKCS#8, RSA (PKCS#1) or SEC1.
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    match rustls_pemfile::private_key(&mut &pem[..]) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => {
            Err("no private key (PKCS#8, RSA or EC PRIVATE KEY block) in the PEM file".into())
        }
        Err(e) => Err(format!("not a PEM private key: {e}")),
    }
}

/// Reads and checks one configured certificate: chain, key, that they belong together,
/// and the optional OCSP response.
pub fn load(files: &CertificateFiles) -> Result<LoadedCertificate, CertError> {
    let chain = parse_chain(&read(&files.cert_file, FileKey::CertFile)?).map_err(|m| {
        err(
            FileKey::CertFile,
            format!("{}: {m}", files.cert_file.display()),
        )
    })?;
    let key_der = parse_key(&read(&files.key_file, FileKey::KeyFile)?).map_err(|m| {
        err(
            FileKey::KeyFile,
            format!("{}: {m}", files.key_file.display()),
        )
    })?;
    let info = describe(&chain[0], &files.cert_file.display().to_string())
        .map_err(|m| err(FileKey::CertFile, m))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            err(
                FileKey::KeyFile,
                format!("{}: unusable key: {e}", files.key_file.display()),
            )
        })?;
    let mut key = CertifiedKey::new(chain, signing_key);
    if let Err(e) = key.keys_match() {
        return Err(err(
            FileKey::KeyFile,
            format!(
                "{} does not belong to the certificate in {} ({e})",
                files.key_file.display(),
                files.cert_file.display()
            ),
        ));
    }
    let key_type = format!("{:?}", key.key.algorithm());
    if let Some(ocsp_file) = &files.ocsp_file {
        let ocsp = read(ocsp_file, FileKey::OcspFile)?;
        if ocsp.is_empty() {
            return Err(err(
                FileKey::OcspFile,
                format!("{}: empty OCSP response", ocsp_file.display()),
            ));
        }
        key.ocsp = Some(ocsp);
    }
    Ok(LoadedCertificate {
        info: CertificateInfo {
            key_type,
            ocsp: key.ocsp.is_some(),
            ..info
        },
        key: Arc::new(key),
    })
}

/// Subject, DNS names and not-after of a DER certificate.
fn describe(der: &CertificateDer<'_>, cert_file: &str) -> Result<CertificateInfo, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("{cert_file}: not an X.509 certificate: {e}"))?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(|cn| cn.to_ascii_lowercase()),
        );
    }
    Ok(CertificateInfo {
        cert_file: cert_file.to_string(),
        subject: cert.subject().to_string(),
        names,
        not_after_unix: cert.validity().not_after.timestamp(),
        key_type: String::new(),
        ocsp: false,
    })
}

/// Loads every configured certificate, or gives each problem with its key path
/// (`router.tls.certificates[1].key_file`).
pub fn load_all(
    files: &[CertificateFiles],
) -> Result<Vec<LoadedCertificate>, Vec<(String, String)>> {
    let mut loaded = Vec::with_capacity(files.len());
    let mut problems = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match load(f) {
            Ok(cert) => loaded.push(cert),
            Err(e) => problems.push((
                format!("router.tls.certificates[{i}].{}", e.key.as_str()),
                e.message,
            )),
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}
