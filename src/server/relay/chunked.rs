//! Finds where a chunked body ends (RFC 9112 §7.1) in bytes that are relayed as they are: the
//! router passes an edge's chunked body through unchanged and only needs to know when the last
//! chunk and the trailer section have gone by, and that the framing is sound. (The request
//! side, `http1::chunked_body_len`, frames a body held whole and checks extensions strictly;
//! this one runs over a stream as it passes and leaves extensions and trailers to the client.)

/// Where the scanner is in the chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the chunk size's hex digits (`digits` so far).
    Size {
        digits: u8,
    },
    /// After the size: chunk extensions up to the line's CR.
    Extension,
    /// Expecting the LF that ends the size line.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Expecting CRLF after chunk data.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Expecting the LF of a trailer field line.
    TrailerLf,
    /// Expecting the LF of the final empty line.
    FinalLf,
    Done,
}

/// The end of a chunked body, found incrementally.
#[derive(Debug)]
pub struct ChunkedEnd {
    state: State,
    /// Size of the current chunk (while reading the size), or bytes of data left.
    remaining: u64,
}

/// The framing is broken: the relay must abort the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunking;

impl Default for ChunkedEnd {
    fn default() -> Self {
        ChunkedEnd {
            state: State::Size { digits: 0 },
            remaining: 0,
        }
    }
}

impl ChunkedEnd {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `bytes`, the next bytes of the body; returns how many belong to the body (all of
    /// them, or fewer when the body ends inside them).
    pub fn scan(&mut self, bytes: &[u8]) -> Result<usize, BadChunking> {
        let mut at = 0;
        while at < bytes.len() {
            let byte = bytes[at];
            self.state = match self.state {
                State::Done => return Ok(at),
                State::Data => {
                    // Skip the chunk's data at once.
                    let take = (bytes.len() - at).min(self.remaining as usize);
                    self.remaining -= take as u64;
                    at += take;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Size { digits } => match (byte as char).to_digit(16) {
                    Some(digit) if digits < 15 => {
                        self.remaining = self.remaining * 16 + u64::from(digit);
                        State::Size { digits: digits + 1 }
                    }
                    _ if digits == 0 => return Err(BadChunking),
                    Some(_) => return Err(BadChunking),
                    None => match byte {
                        b'\r' => State::SizeLf,
                        b';' | b' ' | b'\t' => State::Extension,
                        _ => return Err(BadChunking),
                    },
                },
                State::Extension => match byte {
                    b'\r' => State::SizeLf,
                    b'\n' => return Err(BadChunking),
                    _ => State::Extension,
                },
                State::SizeLf => match byte {
                    b'\n' if self.remaining == 0 => State::TrailerStart,
                    b'\n' => State::Data,
                    _ => return Err(BadChunking),
                },
                State::DataCr => match byte {
                    b'\r' => State::DataLf,
                    _ => return Err(BadChunking),
                },
                State::DataLf => match byte {
                    b'\n' => State::Size { digits: 0 },
                    _ => return Err(BadChunking),
                },
                State::TrailerStart => match byte {
                    b'\r' => State::FinalLf,
                    b'\n' => return Err(BadChunking),
                    _ => State::Trailer,
                },
                State::Trailer => match byte {
                    b'\r' => State::TrailerLf,
                    b'\n' => return Err(BadChunking),
                    _ => State::Trailer,
                },
                State::TrailerLf => match byte {
                    b'\n' => State::TrailerStart,
                    _ => return Err(BadChunking),
                },
                State::FinalLf => match byte {
                    b'\n' => State::Done,
                    _ => return Err(BadChunking),
                },
            };
            if self.state == (State::Size { digits: 0 }) {
                self.remaining = 0;
            }
            at += 1;
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n";

    #[test]
    fn finds_the_end_whatever_the_split() {
        let mut tail = BODY.to_vec();
        tail.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        for split in 0..=tail.len() {
            let mut end = ChunkedEnd::default();
            let first = end.scan(&tail[..split]).expect("sound");
            let total = if end.is_done() {
                first
            } else {
                first + end.scan(&tail[split..]).expect("sound")
            };
            assert!(end.is_done(), "split at {split}");
            assert_eq!(total, BODY.len(), "split at {split}");
        }
    }

    #[test]
    fn byte_by_byte_and_without_trailers() {
        let body = b"3\r\nabc\r\n0\r\n\r\n";
        let mut end = ChunkedEnd::default();
        for (i, byte) in body.iter().enumerate() {
            assert!(!end.is_done(), "done early at {i}");
            assert_eq!(end.scan(&[*byte]), Ok(1));
        }
        assert!(end.is_done());
    }

    #[test]
    fn broken_framing_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"3\nabc",
            b"3\r\nabcX\r\n",
            b"3\r\nabc\rX",
            b"\r\n",
            b"10000000000000000\r\n",
            b"0\r\nbad trailer\n",
            b"0\r\n\rX",
        ] {
            let mut end = ChunkedEnd::default();
            assert_eq!(
                end.scan(bad),
                Err(BadChunking),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
