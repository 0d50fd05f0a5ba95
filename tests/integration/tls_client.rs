//! Test side of TLS: a throw-away CA and certificates made with the `openssl` command, a
//! blocking rustls client that trusts that CA, and raw HTTP/2 frames for the abuse tests.

use crate::http::{response_head, Response};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256, key as SEC1 (`EC PRIVATE KEY`).
    EcSec1,
    /// ECDSA P-256, key as PKCS#8.
    EcPkcs8,
    /// RSA 2048, key as PKCS#1 (`RSA PRIVATE KEY`).
    RsaPkcs1,
}

/// A CA in a temp directory, and the certificates it signs.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate's files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A DER OCSP response for it, to staple.
    pub ocsp: Option<PathBuf>,
}

impl CertFiles {
    /// The leaf certificate, DER.
    pub fn leaf_der(&self) -> Vec<u8> {
        let pem = std::fs::read(&self.cert).expect("read cert");
        let first = rustls_pemfile::certs(&mut &pem[..])
            .next()
            .expect("a certificate")
            .expect("PEM");
        first.as_ref().to_vec()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("cti-kaltura-pki-")
            .tempdir()
            .expect("temp dir");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Test CA",
            ],
            dir.path(),
        );
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A certificate for `names` (the first is the CN), valid `days`, signed by the CA, in
    /// `FILE.pem` / `FILE.key`.
    pub fn issue(&self, file: &str, names: &[&str], kind: KeyKind, days: u32) -> CertFiles {
        let (cert, key) = (format!("{file}.pem"), format!("{file}.key"));
        let new_key = match kind {
            KeyKind::EcSec1 | KeyKind::EcPkcs8 => {
                vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
            }
            KeyKind::RsaPkcs1 => vec!["-newkey", "rsa:2048"],
        };
        let subject = format!("/CN={}", names[0]);
        let san = format!(
            "subjectAltName={}",
            names
                .iter()
                .map(|n| format!("DNS:{n}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let days = days.to_string();
        let mut args = vec!["req", "-x509", "-CA", "ca.pem", "-CAkey", "ca.key"];
        args.extend(new_key);
        args.extend([
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            &days,
            "-subj",
            &subject,
            "-addext",
            &san,
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ]);
        openssl(&args, self.dir.path());
        match kind {
            KeyKind::EcSec1 => openssl(&["ec", "-in", &key, "-out", &key], self.dir.path()),
            KeyKind::RsaPkcs1 => openssl(
                &["rsa", "-in", &key, "-out", &key, "-traditional"],
                self.dir.path(),
            ),
            KeyKind::EcPkcs8 => {}
        }
        CertFiles {
            cert: self.path(&cert),
            key: self.path(&key),
            ocsp: None,
        }
    }

    /// A "good" OCSP response for `cert`, signed by the CA itself (`openssl ocsp`).
    pub fn ocsp(&self, cert: &CertFiles) -> CertFiles {
        let field = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(["x509", "-noout", "-in"])
                .arg(&cert.cert)
                .args(args)
                .output()
                .expect("run openssl x509");
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            text.split_once('=')
                .map(|(_, v)| v.to_string())
                .unwrap_or(text)
        };
        let serial = field(&["-serial"]);
        let subject = field(&["-subject", "-nameopt", "compat"]);
        std::fs::write(
            self.path("index.txt"),
            format!("V\t301231000000Z\t\t{serial}\tunknown\t{subject}\n"),
        )
        .expect("write index");
        let cert_path = cert.cert.display().to_string();
        let der = format!("{}.ocsp", cert.cert.display());
        openssl(
            &[
                "ocsp",
                "-index",
                "index.txt",
                "-rsigner",
                "ca.pem",
                "-rkey",
                "ca.key",
                "-CA",
                "ca.pem",
                "-issuer",
                "ca.pem",
                "-cert",
                &cert_path,
                "-respout",
                &der,
                "-ndays",
                "1",
            ],
            self.dir.path(),
        );
        CertFiles {
            ocsp: Some(PathBuf::from(der)),
            ..cert.clone()
        }
    }

    /// A client configuration that trusts this CA only, offering `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(self.path("ca.pem")).expect("read CA");
        for cert in rustls_pemfile::certs(&mut &pem[..]) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        // Every handshake a full one, so that each shows the certificate in service.
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
}

pub type TlsConn = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A verified TLS connection to `addr` for `name`.
pub fn try_connect(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> Result<TlsConn, String> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::clone(config), server_name)
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    Ok(tls)
}

/// The leaf certificate the server presented.
pub fn peer_leaf(tls: &TlsConn) -> Vec<u8> {
    tls.conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c: &CertificateDer<'_>| c.as_ref().to_vec())
        .unwrap_or_default()
}

/// Sends one HTTP/1.1 request and reads its answer (heads of 3xx/4xx answers carry a
/// Content-Length).
pub fn try_h1(
    tls: &mut TlsConn,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: router.test\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tls.write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    tls.flush().map_err(|e| format!("flush: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((mut response, head_len)) = response_head(&buf)? {
            let body_len: usize = response
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= head_len + body_len {
                response.body = buf[head_len..head_len + body_len].to_vec();
                return Ok(response);
            }
        }
        let n = tls.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {} bytes", buf.len()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

// --- raw HTTP/2 frames ---

pub const FRAME_HEADERS: u8 = 0x1;
pub const FRAME_RST_STREAM: u8 = 0x3;
pub const FRAME_SETTINGS: u8 = 0x4;
pub const FRAME_PING: u8 = 0x6;
pub const FRAME_GOAWAY: u8 = 0x7;
pub const FLAG_END_STREAM: u8 = 0x1;
pub const FLAG_ACK: u8 = 0x1;
pub const FLAG_END_HEADERS: u8 = 0x4;
pub const REFUSED_STREAM: u32 = 0x7;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A GET request's HEADERS block (HPACK without the dynamic table or Huffman).
pub fn get_headers(path: &str) -> Vec<u8> {
    // :method GET, :scheme https (static table), :path and :authority as literals.
    let mut block = vec![0x82, 0x87, 0x04, path.len() as u8];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 11]);
    block.extend_from_slice(b"router.test");
    block
}

/// The client's connection preface with empty SETTINGS.
pub fn preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(FRAME_SETTINGS, 0, 0, &[]));
    out
}

/// A frame received: type, flags, stream, payload.
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    #[allow(dead_code)]
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of RST_STREAM, or of GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            FRAME_RST_STREAM => 0,
            FRAME_GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// The first complete frame in `buf`, taken out of it.
fn next_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    if buf.len() < 9 {
        return None;
    }
    let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
    if buf.len() < 9 + len {
        return None;
    }
    let frame = Frame {
        kind: buf[3],
        flags: buf[4],
        stream: u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
        payload: buf[9..9 + len].to_vec(),
    };
    buf.drain(..9 + len);
    Some(frame)
}

/// Reads frames until the connection closes or `stop` says so; the frames read.
pub fn read_frames(tls: &mut TlsConn, mut stop: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        while let Some(frame) = next_frame(&mut buf) {
            if frame.kind == FRAME_SETTINGS && frame.flags & FLAG_ACK == 0 {
                let _ = tls.write_all(&self::frame(FRAME_SETTINGS, FLAG_ACK, 0, &[]));
            }
            let done = stop(&frame);
            frames.push(frame);
            if done {
                return frames;
            }
        }
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return frames,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// How a flood of frames from a client that never reads ended (its fields are for the
/// assertion messages).
#[allow(dead_code)]
#[derive(Debug)]
pub enum FloodEnd {
    /// The server stopped taking bytes: a write waited `IO_TIMEOUT` in vain.
    Backpressured { sent: usize },
    /// The server closed the connection.
    Closed { sent: usize, error: String },
    /// `limit` bytes went through without either.
    Unbounded,
}

/// Sends `frame` over and over, never reading, until the server stops taking bytes, closes
/// the connection, or `limit` bytes (TLS records included) have been sent.
pub fn flood(tls: &mut TlsConn, frame: &[u8], limit: usize) -> FloodEnd {
    let burst = frame.repeat(1024);
    let mut sent = 0;
    while sent < limit {
        if let Err(e) = tls.conn.writer().write_all(&burst) {
            return FloodEnd::Closed {
                sent,
                error: e.to_string(),
            };
        }
        while tls.conn.wants_write() {
            match tls.conn.write_tls(&mut tls.sock) {
                Ok(n) => sent += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return FloodEnd::Backpressured { sent };
                }
                Err(e) => {
                    return FloodEnd::Closed {
                        sent,
                        error: e.to_string(),
                    }
                }
            }
        }
    }
    FloodEnd::Unbounded
}

/// Like `read_frames`, but only reads: TLS records the client still has to send (a flood
/// the server stopped taking) stay unsent, and no SETTINGS is acknowledged.
pub fn read_frames_only(tls: &mut TlsConn, mut stop: impl FnMut(&Frame) -> bool) -> Vec<Frame> {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        while let Some(frame) = next_frame(&mut buf) {
            let done = stop(&frame);
            frames.push(frame);
            if done {
                return frames;
            }
        }
        match tls.conn.reader().read(&mut chunk) {
            Ok(0) => return frames,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                continue;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return frames,
        }
        match tls.conn.read_tls(&mut tls.sock) {
            Ok(0) | Err(_) => return frames,
            Ok(_) => {
                if tls.conn.process_new_packets().is_err() {
                    return frames;
                }
            }
        }
    }
}
