//! HLS playlist rewriting (RFC 8216 and its successor draft, with LL-HLS): URI lines and the
//! URI-bearing attributes of the tags that have them, resolved against the playlist's URL.
//!
//! What reaches the callback: every URI line (non-blank, not starting with `#`, surrounding
//! blanks kept outside the reference) and every quoted attribute in [`URI_ATTRIBUTES`]. Quoted
//! strings are respected (commas inside them), a malformed attribute list is left alone from
//! the point where it stops making sense, line ends (LF or CRLF) and a BOM are kept.

use super::{BaseUrl, Rebaser, RewriteError};

/// The tags whose attribute lists carry URIs, and the names of those attributes.
pub const URI_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("EXT-X-KEY", &["URI"]),
    ("EXT-X-SESSION-KEY", &["URI"]),
    ("EXT-X-MAP", &["URI"]),
    ("EXT-X-MEDIA", &["URI"]),
    ("EXT-X-I-FRAME-STREAM-INF", &["URI"]),
    ("EXT-X-PART", &["URI"]),
    ("EXT-X-PRELOAD-HINT", &["URI"]),
    ("EXT-X-RENDITION-REPORT", &["URI"]),
    ("EXT-X-SESSION-DATA", &["URI"]),
    ("EXT-X-CONTENT-STEERING", &["SERVER-URI"]),
    ("EXT-X-DATERANGE", &["X-ASSET-URI", "X-ASSET-LIST"]),
];

/// The URI-bearing attribute names of tag `name`, if it has any.
fn uri_attributes(name: &str) -> Option<&'static [&'static str]> {
    URI_ATTRIBUTES
        .iter()
        .find(|(tag, _)| *tag == name)
        .map(|(_, names)| *names)
}

/// Rewrites a playlist: see the module documentation.
pub(crate) fn rewrite(
    body: &str,
    base: &BaseUrl,
    rebaser: &mut Rebaser<'_, '_>,
) -> Result<String, RewriteError> {
    let content_start = if body.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    if !body[content_start..].starts_with("#EXTM3U") {
        return Err(RewriteError::NotHls);
    }
    // Rewritten references are usually longer (absolute URLs): room for twice the body
    // avoids copying a large playlist again halfway.
    let mut out = String::with_capacity(body.len() * 2 + 64);
    // `body[..copied]` is already in `out` (verbatim or rewritten).
    let mut copied = 0;
    let bytes = body.as_bytes();
    let mut line_start = content_start;
    while line_start < bytes.len() {
        let line_end = newline_at(bytes, line_start);
        let content_end = if line_end > line_start && bytes[line_end - 1] == b'\r' {
            line_end - 1
        } else {
            line_end
        };
        if bytes[line_start] == b'#' {
            // Only `EXT-X-` tags carry URI attributes: `#EXTINF` and comments are skipped fast.
            if bytes[line_start + 1..content_end].starts_with(b"EXT-X-") {
                let tag = &body[line_start + 1..content_end];
                let (name, attributes) = tag.split_once(':').unwrap_or((tag, ""));
                if let Some(wanted) = uri_attributes(name) {
                    let attributes_start = content_end - attributes.len();
                    for attribute in AttributeList::new(attributes) {
                        if attribute.quoted && wanted.contains(&attribute.name) {
                            let start = attributes_start + attribute.value_start;
                            let value = &body[start..start + attribute.value.len()];
                            out.push_str(&body[copied..start]);
                            copied = start;
                            if let Some(prefix) = rebaser.plain_prefix(value) {
                                // The value itself is copied later, with what follows it.
                                out.push_str(prefix);
                                continue;
                            }
                            if !rebaser.replace(base, value, false, &mut out) {
                                out.push_str(value);
                            }
                            copied = start + value.len();
                        }
                    }
                }
            }
        } else {
            let (mut start, mut end) = (line_start, content_end);
            while start < end && matches!(bytes[start], b' ' | b'\t') {
                start += 1;
            }
            while end > start && matches!(bytes[end - 1], b' ' | b'\t') {
                end -= 1;
            }
            // Blank lines are ignored; a `#` after blanks is still a comment, not a reference.
            if start < end && bytes[start] != b'#' {
                let reference = &body[start..end];
                out.push_str(&body[copied..start]);
                if let Some(prefix) = rebaser.plain_prefix(reference) {
                    // The reference itself is copied later, with the lines that follow it.
                    out.push_str(prefix);
                    copied = start;
                } else {
                    if !rebaser.replace(base, reference, false, &mut out) {
                        out.push_str(reference);
                    }
                    copied = end;
                }
            }
        }
        line_start = line_end + 1;
    }
    out.push_str(&body[copied..]);
    Ok(out)
}

/// Index of the first `\n` at or after `from`, or `bytes.len()`: eight bytes at a time (the
/// classic "has a zero byte" test on `chunk ^ 0x0a0a…`), since lines are short and many.
fn newline_at(bytes: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let diff = u64::from_le_bytes(word) ^ NEWLINES;
        // Bits set above the first zero byte may be false positives; the lowest one is exact.
        let zero_bytes = diff.wrapping_sub(ONES) & !diff & HIGHS;
        if zero_bytes != 0 {
            return at + (zero_bytes.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < bytes.len() && bytes[at] != b'\n' {
        at += 1;
    }
    at
}

/// One `NAME=value` of an attribute list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attribute<'a> {
    pub name: &'a str,
    /// The value without its quotes.
    pub value: &'a str,
    /// Offset of `value` in the attribute list.
    pub value_start: usize,
    pub quoted: bool,
}

/// The attributes of an attribute list (RFC 8216 §4.2), quoted strings respected. Stops at the
/// first thing that is not an attribute (an unterminated quote, junk after a quoted string).
pub(crate) struct AttributeList<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> AttributeList<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        AttributeList { text, position: 0 }
    }
}

impl<'a> Iterator for AttributeList<'a> {
    type Item = Attribute<'a>;

    fn next(&mut self) -> Option<Attribute<'a>> {
        let bytes = self.text.as_bytes();
        let mut at = self.position;
        while at < bytes.len() && (bytes[at] == b' ' || bytes[at] == b'\t') {
            at += 1;
        }
        if at >= bytes.len() {
            return None;
        }
        let equals = at + self.text[at..].find(['=', ',', '"'])?;
        if bytes[equals] != b'=' {
            self.position = bytes.len();
            return None;
        }
        let name = self.text[at..equals].trim_end_matches([' ', '\t']);
        let value_at = equals + 1;
        let attribute;
        let mut after;
        if bytes.get(value_at) == Some(&b'"') {
            let value_start = value_at + 1;
            let Some(length) = self.text[value_start..].find('"') else {
                self.position = bytes.len();
                return None;
            };
            attribute = Attribute {
                name,
                value: &self.text[value_start..value_start + length],
                value_start,
                quoted: true,
            };
            after = value_start + length + 1;
            while after < bytes.len() && (bytes[after] == b' ' || bytes[after] == b'\t') {
                after += 1;
            }
            if after < bytes.len() && bytes[after] != b',' {
                // Junk after the closing quote: report this one, stop after it.
                self.position = bytes.len();
                return Some(attribute);
            }
        } else {
            let length = self.text[value_at..]
                .find(',')
                .unwrap_or(self.text.len() - value_at);
            attribute = Attribute {
                name,
                value: &self.text[value_at..value_at + length],
                value_start: value_at,
                quoted: false,
            };
            after = value_at + length;
        }
        self.position = (after + 1).min(bytes.len());
        Some(attribute)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{rewrite, ManifestFormat, ResolvedRef, RewriteError};
    use super::*;

    fn attributes(text: &str) -> Vec<(&str, &str, bool)> {
        AttributeList::new(text)
            .map(|a| (a.name, a.value, a.quoted))
            .collect()
    }

    #[test]
    fn newline_at_finds_the_first_line_feed() {
        let text = b"0123456789abcdef\n0123\n\n";
        for from in 0..text.len() {
            let expected = text[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |at| from + at);
            assert_eq!(newline_at(text, from), expected, "from {from}");
        }
        assert_eq!(newline_at(b"no line feed here, long enough", 0), 30);
        assert_eq!(
            newline_at(b"\x8a\x0b\x09\xff\xff\xff\xff\xff\n", 0),
            8,
            "bytes near 0x0a are not line feeds"
        );
    }

    #[test]
    fn a_hash_after_blanks_is_a_comment_not_a_reference() {
        let body = "#EXTM3U\n  #EXTINF:2,\n\t# comment\nseg.ts\n";
        let (out, seen) = rewrite_to_router(body, "http://edge/a/index.m3u8");
        assert_eq!(
            out,
            "#EXTM3U\n  #EXTINF:2,\n\t# comment\nhttp://router/r/a/seg.ts\n"
        );
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn attribute_lists_respect_quotes() {
        assert_eq!(
            attributes(r#"TYPE=AUDIO,GROUP-ID="aac",NAME="English, main",URI="a/b.m3u8?x=1,2""#),
            vec![
                ("TYPE", "AUDIO", false),
                ("GROUP-ID", "aac", true),
                ("NAME", "English, main", true),
                ("URI", "a/b.m3u8?x=1,2", true)
            ]
        );
        assert_eq!(
            attributes(r#"METHOD=AES-128,URI="k"x,IV=0x1"#),
            vec![("METHOD", "AES-128", false), ("URI", "k", true)]
        );
        assert_eq!(attributes(r#"URI="unterminated"#), vec![]);
        assert_eq!(attributes(r#"JUNK,URI="x""#), vec![]);
        assert_eq!(attributes(""), vec![]);
        assert_eq!(attributes("A=1,"), vec![("A", "1", false)]);
        assert_eq!(
            attributes(r#"A="",B=2"#),
            vec![("A", "", true), ("B", "2", false)]
        );
    }

    fn rewrite_to_router(body: &str, base: &str) -> (String, Vec<String>) {
        super::super::test_support::rewrite_to_router(ManifestFormat::Hls, body, base)
    }

    #[test]
    fn multivariant_with_audio_subtitles_and_iframes() {
        let body = concat!(
            "#EXTM3U\n",
            "#EXT-X-VERSION:6\n",
            "#EXT-X-INDEPENDENT-SEGMENTS\n",
            "#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"skd://key-id-1\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\n",
            "#EXT-X-SESSION-DATA:DATA-ID=\"com.example.title\",URI=\"meta/title.json\"\n",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",LANGUAGE=\"en\",NAME=\"English, stereo\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio/en/index.m3u8\"\n",
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",LANGUAGE=\"ru\",NAME=\"Русский\",URI=\"../shared/audio/ru.m3u8?token=abc\"\n",
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"English\",LANGUAGE=\"en\",URI=\"/btv/live/hls/ch1/subs/en.m3u8\"\n",
            "#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"cc\",NAME=\"CC1\",INSTREAM-ID=\"CC1\"\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\",AUDIO=\"aac\",SUBTITLES=\"subs\",CLOSED-CAPTIONS=\"cc\"\n",
            "720p/index.m3u8\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aac\"\n",
            "http://edge.example/btv/live/hls/ch1/360p/index.m3u8\n",
            "#EXT-X-STREAM-INF:BANDWIDTH=400000\n",
            "https://other-cdn.example/ch1/low.m3u8\n",
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=200000,CODECS=\"avc1.4d401f\",URI=\"720p/iframes.m3u8\"\n",
            "#EXT-X-CONTENT-STEERING:SERVER-URI=\"steering.json\",PATHWAY-ID=\"CDN-A\"\n",
        );
        let (out, seen) =
            rewrite_to_router(body, "http://edge.example/btv/live/hls/ch1/master.m3u8");
        let expected = body
            .replace(
                "\"meta/title.json\"",
                "\"http://router/r/btv/live/hls/ch1/meta/title.json\"",
            )
            .replace(
                "\"audio/en/index.m3u8\"",
                "\"http://router/r/btv/live/hls/ch1/audio/en/index.m3u8\"",
            )
            .replace(
                "\"../shared/audio/ru.m3u8?token=abc\"",
                "\"http://router/r/btv/live/hls/shared/audio/ru.m3u8?token=abc\"",
            )
            .replace(
                "\"/btv/live/hls/ch1/subs/en.m3u8\"",
                "\"http://router/r/btv/live/hls/ch1/subs/en.m3u8\"",
            )
            .replace(
                "\n720p/index.m3u8\n",
                "\nhttp://router/r/btv/live/hls/ch1/720p/index.m3u8\n",
            )
            .replace(
                "\nhttp://edge.example/btv/live/hls/ch1/360p/index.m3u8\n",
                "\nhttp://router/r/btv/live/hls/ch1/360p/index.m3u8\n",
            )
            .replace(
                "\"720p/iframes.m3u8\"",
                "\"http://router/r/btv/live/hls/ch1/720p/iframes.m3u8\"",
            )
            .replace(
                "\"steering.json\"",
                "\"http://router/r/btv/live/hls/ch1/steering.json\"",
            );
        assert_eq!(out, expected);
        assert_eq!(
            seen.len(),
            9,
            "skd:// is never offered; every http reference is: {seen:#?}"
        );
        assert!(seen.contains(
            &"\"https://other-cdn.example/ch1/low.m3u8\" -> https://other-cdn.example/ch1/low.m3u8"
                .to_owned()
        ));
    }

    #[test]
    fn media_playlist_with_map_keys_on_another_host_and_crlf() {
        let body = concat!(
            "\u{feff}#EXTM3U\r\n",
            "#EXT-X-VERSION:7\r\n",
            "#EXT-X-TARGETDURATION:4\r\n",
            "#EXT-X-MEDIA-SEQUENCE:1200\r\n",
            "#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"720@0\"\r\n",
            "#EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k?id=7\",IV=0x00000000000000000000000000000001\r\n",
            "#EXTINF:4.000,title with URI=\"not-a-reference\"\r\n",
            "seg1200.m4s\r\n",
            "# a comment that looks like a uri.ts\r\n",
            "#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/k2\"\r\n",
            "#EXTINF:4.000,\r\n",
            "#EXT-X-BYTERANGE:1000@720\r\n",
            "  seg1201.m4s\t\r\n",
            "\r\n",
            "#EXT-X-DISCONTINUITY\r\n",
            "#EXTINF:4.000,\r\n",
            "data:video/mp2t;base64,R0E=\r\n",
            "#EXTINF:4.000,\r\n",
            "seg{$n}.m4s\r\n",
            "#EXT-X-ENDLIST",
        );
        let (out, seen) = rewrite_to_router(
            body,
            "https://edge.example/btv/catchup/hls/ch1/rec.m3u8?token=t",
        );
        let expected = body
            .replace(
                "\"init.mp4\"",
                "\"http://router/r/btv/catchup/hls/ch1/init.mp4\"",
            )
            .replace(
                "\nseg1200.m4s\r",
                "\nhttp://router/r/btv/catchup/hls/ch1/seg1200.m4s\r",
            )
            .replace("\"/keys/k2\"", "\"http://router/r/keys/k2\"")
            .replace(
                "  seg1201.m4s\t",
                "  http://router/r/btv/catchup/hls/ch1/seg1201.m4s\t",
            );
        assert_eq!(out, expected);
        assert_eq!(seen.len(), 5, "{seen:#?}");
    }

    #[test]
    fn low_latency_parts_hints_and_rendition_reports() {
        let body = concat!(
            "#EXTM3U\n",
            "#EXT-X-TARGETDURATION:4\n",
            "#EXT-X-VERSION:9\n",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=24.0\n",
            "#EXT-X-PART-INF:PART-TARGET=0.33334\n",
            "#EXT-X-MEDIA-SEQUENCE:266\n",
            "#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n",
            "#EXT-X-MAP:URI=\"init.mp4\"\n",
            "#EXTINF:4.00008,\n",
            "fileSequence269.mp4\n",
            "#EXT-X-PART:DURATION=0.33334,URI=\"filePart270.0.mp4\",INDEPENDENT=YES\n",
            "#EXT-X-PART:DURATION=0.33334,URI=\"filePart270.1.mp4\"\n",
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"filePart270.2.mp4\"\n",
            "#EXT-X-RENDITION-REPORT:URI=\"../1M/waitForMSN.php\",LAST-MSN=273,LAST-PART=2\n",
            "#EXT-X-RENDITION-REPORT:URI=\"../4M/waitForMSN.php?_HLS_msn=273&_HLS_part=2\",LAST-MSN=273,LAST-PART=1\n",
        );
        let (out, seen) = rewrite_to_router(
            body,
            "http://edge/lowlat/2M/waitForMSN.php?_HLS_msn=270&_HLS_part=2",
        );
        let expected = body
            .replace("\"init.mp4\"", "\"http://router/r/lowlat/2M/init.mp4\"")
            .replace(
                "\nfileSequence269.mp4\n",
                "\nhttp://router/r/lowlat/2M/fileSequence269.mp4\n",
            )
            .replace(
                "\"filePart270.0.mp4\"",
                "\"http://router/r/lowlat/2M/filePart270.0.mp4\"",
            )
            .replace(
                "\"filePart270.1.mp4\"",
                "\"http://router/r/lowlat/2M/filePart270.1.mp4\"",
            )
            .replace(
                "\"filePart270.2.mp4\"",
                "\"http://router/r/lowlat/2M/filePart270.2.mp4\"",
            )
            .replace(
                "\"../1M/waitForMSN.php\"",
                "\"http://router/r/lowlat/1M/waitForMSN.php\"",
            )
            .replace(
                "\"../4M/waitForMSN.php?_HLS_msn=273&_HLS_part=2\"",
                "\"http://router/r/lowlat/4M/waitForMSN.php?_HLS_msn=273&_HLS_part=2\"",
            );
        assert_eq!(out, expected);
        assert_eq!(seen.len(), 7);
    }

    #[test]
    fn a_kept_reference_is_byte_identical_even_after_the_callback_wrote() {
        let body = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"./k\"\n./seg.ts\n";
        let base = BaseUrl::parse("http://edge/a/b.m3u8").expect("base");
        let out = rewrite(
            ManifestFormat::Hls,
            body,
            &base,
            &mut |_: &ResolvedRef<'_>, out: &mut String| {
                out.push_str("garbage");
                false
            },
        )
        .expect("rewrites");
        assert_eq!(out, body);
    }

    #[test]
    fn not_hls_is_an_error() {
        let base = BaseUrl::parse("http://edge/a/b.m3u8").expect("base");
        for body in [
            "",
            "seg.ts\n",
            " #EXTM3U",
            "<MPD/>",
            "#EXT-X-VERSION:3\n#EXTM3U",
        ] {
            let result = rewrite(
                ManifestFormat::Hls,
                body,
                &base,
                &mut |_: &ResolvedRef<'_>, _: &mut String| true,
            );
            assert_eq!(result, Err(RewriteError::NotHls), "{body:?}");
        }
    }
}
