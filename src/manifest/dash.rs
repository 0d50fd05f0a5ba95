//! DASH MPD rewriting (ISO/IEC 23009-1) with a small XML tokenizer that copies every byte it
//! does not rewrite (no DOM, no XML crate: the rewriter needs only element names, attribute
//! value spans and text spans, and must keep the rest byte-identical).
//!
//! What reaches the callback (resolved per §5.6.4: each level's `BaseURL` against the one
//! above, the top one against the MPD's URL; entities such as `&amp;` decoded, the replacement
//! re-escaped):
//! - every MPD-level `BaseURL` (`is_dir: true`); when the MPD has none, the MPD's own directory
//!   is offered once (`original: ""`, `is_dir: true`) and, if the callback takes it, a `BaseURL`
//!   is inserted before the first child of `MPD` that is not `ProgramInformation` (where the
//!   schema puts it: before `Location`, `PatchLocation`, `Period` …), with the MPD's namespace
//!   prefix;
//! - every `Location`, `PatchLocation` and `ContentSteering` (resolved against the MPD's URL);
//! - `BaseURL`s below the MPD level, `SegmentTemplate@media/@initialization/@index/
//!   @bitstreamSwitching`, `SegmentURL@media/@index`, `Initialization/RepresentationIndex/
//!   BitstreamSwitching@sourceURL` and any `xlink:href`, but only when they are not plain
//!   relative paths: an absolute URL, a network-path (`//host/x`) or absolute-path (`/x`)
//!   reference, or a relative one with a `..` segment (which could climb out of the MPD-level
//!   directory). Plain relative ones are left as written: they resolve through the (rewritten
//!   or inserted) MPD-level `BaseURL`. Template identifiers (`$Number%05d$`) are kept as text;
//!   a callback must copy the path through unchanged apart from its prefix.

use std::borrow::Cow;

use super::url::scan_reference;
use super::{BaseUrl, Rebaser, RewriteError};

/// Which references an element carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextUrl {
    /// `BaseURL`: a directory that references below resolve against.
    Base,
    /// `Location`, `PatchLocation`, `ContentSteering`: resolved against the MPD's URL.
    Manifest,
}

fn text_url_kind(local_name: &str) -> Option<TextUrl> {
    match local_name {
        "BaseURL" => Some(TextUrl::Base),
        "Location" | "PatchLocation" | "ContentSteering" => Some(TextUrl::Manifest),
        _ => None,
    }
}

/// Whether attribute `name` of element `local_name` holds a URL.
fn is_url_attribute(local_name: &str, name: &str) -> bool {
    name == "xlink:href"
        || match local_name {
            "SegmentTemplate" => matches!(
                name,
                "media" | "initialization" | "index" | "bitstreamSwitching"
            ),
            "SegmentURL" => matches!(name, "media" | "index"),
            "Initialization" | "RepresentationIndex" | "BitstreamSwitching" => name == "sourceURL",
            _ => false,
        }
}

/// A plain relative path (no scheme, no authority, not starting with `/`, no `..` segment):
/// it resolves below whatever base is above it.
/// (A reference the scanner refuses, with a space or a control character, counts as plain: it
/// is never offered.)
fn is_plain_relative(reference: &str) -> bool {
    scan_reference(reference).is_none_or(|scanned| {
        let parts = scanned.parts;
        parts.scheme.is_none()
            && parts.authority.is_none()
            && !parts.path.starts_with('/')
            && !(scanned.dot_segments && parts.path.split('/').any(|segment| segment == ".."))
    })
}

fn local_name(name: &str) -> &str {
    name.rfind(':').map_or(name, |colon| &name[colon + 1..])
}

/// Whether the document's root element is `MPD` (any namespace prefix), after an optional
/// XML declaration, comments, processing instructions and white space.
pub(crate) fn root_is_mpd(body: &[u8]) -> bool {
    let mut rest = body;
    loop {
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(b"<?") {
            match find(after, b"?>") {
                Some(end) => rest = &after[end + 2..],
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix(b"<!--") {
            match find(after, b"-->") {
                Some(end) => rest = &after[end + 3..],
                None => return false,
            }
        } else if let Some(after) = rest.strip_prefix(b"<") {
            let name_len = after
                .iter()
                .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
                .unwrap_or(after.len());
            let name = &after[..name_len];
            let local = name
                .iter()
                .rposition(|&b| b == b':')
                .map_or(name, |colon| &name[colon + 1..]);
            return local == b"MPD" && name_len < after.len();
        } else {
            return false;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn find_str(haystack: &str, from: usize, needle: &str) -> Result<usize, RewriteError> {
    haystack[from..]
        .find(needle)
        .map(|offset| from + offset)
        .ok_or(RewriteError::NotMpd("unterminated markup"))
}

/// Decodes the five predefined entities and character references; `None` for anything else
/// (an entity from a DTD, a malformed reference): such a value is left as written.
pub(crate) fn decode_entities(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.bytes().any(|b| b == b'&') {
        return Some(Cow::Borrowed(raw));
    }
    let mut decoded = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        decoded.push_str(&rest[..amp]);
        let semicolon = rest[amp..].find(';')? + amp;
        let entity = &rest[amp + 1..semicolon];
        let character = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let number = entity.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse::<u32>().ok()?,
                };
                char::from_u32(code)?
            }
        };
        decoded.push(character);
        rest = &rest[semicolon + 1..];
    }
    decoded.push_str(rest);
    Some(Cow::Owned(decoded))
}

/// Appends `text` to `out` with `& < > " '` escaped (safe in text and in either quote).
pub(crate) fn push_escaped(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(special) = rest.find(['&', '<', '>', '"', '\'']) {
        out.push_str(&rest[..special]);
        out.push_str(match rest.as_bytes()[special] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&apos;",
        });
        rest = &rest[special + 1..];
    }
    out.push_str(rest);
}

/// The rewriting pass over one MPD.
struct MpdRewriter<'b, 'x, 'c, 'r> {
    body: &'b str,
    manifest_base: &'x BaseUrl,
    rebaser: &'x mut Rebaser<'c, 'r>,
    out: String,
    /// `body[..copied]` is already in `out`.
    copied: usize,
    /// Names of the open elements, the root first.
    open: Vec<&'b str>,
    /// Base URLs set by `BaseURL` elements: (depth of the element they belong to, base).
    bases: Vec<(usize, BaseUrl)>,
    /// The callback's replacement, before escaping.
    replacement: String,
    saw_mpd_base: bool,
    /// The root element's name as written (`MPD` or `prefix:MPD`).
    root_name: &'b str,
    /// Where in `out` an MPD-level `BaseURL` goes if there is none, and the white space to put
    /// after it (the indentation of the element it goes before).
    insert_at: Option<(usize, &'b str)>,
}

/// Rewrites an MPD: see the module documentation.
pub(crate) fn rewrite(
    body: &str,
    base: &BaseUrl,
    rebaser: &mut Rebaser<'_, '_>,
) -> Result<String, RewriteError> {
    let mut rewriter = MpdRewriter {
        body,
        manifest_base: base,
        rebaser,
        out: String::with_capacity(body.len() + 256),
        copied: 0,
        open: Vec::with_capacity(8),
        bases: Vec::new(),
        replacement: String::new(),
        saw_mpd_base: false,
        root_name: "MPD",
        insert_at: None,
    };
    rewriter.run()?;
    rewriter.finish()
}

impl<'b> MpdRewriter<'b, '_, '_, '_> {
    fn run(&mut self) -> Result<(), RewriteError> {
        let body = self.body;
        let mut position = if body.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        let mut saw_root = false;
        let bytes = body.as_bytes();
        while let Some(offset) = bytes[position..].iter().position(|&b| b == b'<') {
            let lt = position + offset;
            let markup = &body[lt..];
            if markup.starts_with("<?") {
                position = find_str(body, lt, "?>")? + 2;
            } else if markup.starts_with("<!--") {
                position = find_str(body, lt + 4, "-->")? + 3;
            } else if markup.starts_with("<![CDATA[") {
                position = find_str(body, lt, "]]>")? + 3;
            } else if markup.starts_with("<!") {
                position = skip_declaration(body, lt)?;
            } else if let Some(after) = markup.strip_prefix("</") {
                let gt = lt
                    + 2
                    + after
                        .find('>')
                        .ok_or(RewriteError::NotMpd("unterminated end tag"))?;
                let name = body[lt + 2..gt].trim_end();
                if self.open.pop() != Some(name) {
                    return Err(RewriteError::NotMpd("mismatched end tag"));
                }
                let depth = self.open.len();
                while self.bases.last().is_some_and(|(owner, _)| *owner > depth) {
                    self.bases.pop();
                }
                position = gt + 1;
            } else {
                if self.open.is_empty() && saw_root {
                    return Err(RewriteError::NotMpd("content after the root element"));
                }
                let (name, end, self_closing) = self.start_tag(lt)?;
                if !saw_root && local_name(name) != "MPD" {
                    return Err(RewriteError::NotMpd("the root element is not MPD"));
                }
                if !saw_root {
                    self.root_name = name;
                }
                saw_root = true;
                position = end;
                if !self_closing {
                    self.open.push(name);
                    if let Some(kind) = text_url_kind(local_name(name)) {
                        self.text_url(kind, end)?;
                    }
                }
            }
        }
        if !saw_root {
            return Err(RewriteError::NotMpd("no root element"));
        }
        if !self.open.is_empty() {
            return Err(RewriteError::NotMpd("unclosed element"));
        }
        Ok(())
    }

    /// Parses the start tag at `lt`, rewriting its URL attributes; returns its name, the index
    /// after its `>` and whether it closed itself.
    fn start_tag(&mut self, lt: usize) -> Result<(&'b str, usize, bool), RewriteError> {
        let body = self.body;
        let bytes = body.as_bytes();
        let name_end = lt
            + 1
            + bytes[lt + 1..]
                .iter()
                .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
                .ok_or(RewriteError::NotMpd("unterminated start tag"))?;
        let name = &body[lt + 1..name_end];
        if name.is_empty()
            || name
                .bytes()
                .any(|b| matches!(b, b'<' | b'"' | b'\'' | b'='))
        {
            return Err(RewriteError::NotMpd("bad element name"));
        }
        let element = local_name(name);
        if self.open.len() == 1 {
            self.note_mpd_child(element, lt);
        }
        let mut at = name_end;
        loop {
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            match bytes.get(at) {
                None => return Err(RewriteError::NotMpd("unterminated start tag")),
                Some(b'>') => return Ok((name, at + 1, false)),
                Some(b'/') if bytes.get(at + 1) == Some(&b'>') => return Ok((name, at + 2, true)),
                _ => {}
            }
            let attribute_end = at
                + bytes[at..]
                    .iter()
                    .position(|&b| b.is_ascii_whitespace() || matches!(b, b'=' | b'>' | b'/'))
                    .ok_or(RewriteError::NotMpd("unterminated start tag"))?;
            let attribute = &body[at..attribute_end];
            at = attribute_end;
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            if attribute.is_empty() || bytes.get(at) != Some(&b'=') {
                return Err(RewriteError::NotMpd("bad attribute"));
            }
            at += 1;
            while at < bytes.len() && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            let quote = match bytes.get(at) {
                Some(&quote @ (b'"' | b'\'')) => quote,
                _ => return Err(RewriteError::NotMpd("unquoted attribute value")),
            };
            let value_start = at + 1;
            let value_end = value_start
                + bytes[value_start..]
                    .iter()
                    .position(|&b| b == quote)
                    .ok_or(RewriteError::NotMpd("unterminated attribute value"))?;
            if is_url_attribute(element, attribute) {
                self.nested_reference(value_start, value_end, false);
            }
            at = value_end + 1;
        }
    }

    /// Remembers where an MPD-level `BaseURL` would go, given the MPD's child `element` at `lt`.
    fn note_mpd_child(&mut self, element: &str, lt: usize) {
        if element == "BaseURL" {
            self.saw_mpd_base = true;
        } else if element != "ProgramInformation" && self.insert_at.is_none() {
            self.out.push_str(&self.body[self.copied..lt]);
            self.copied = lt;
            let before = &self.body[..lt];
            let indentation = &before[before.trim_end_matches([' ', '\t', '\r', '\n']).len()..];
            self.insert_at = Some((self.out.len(), indentation));
        }
    }

    /// The text of a `BaseURL`, `Location`, … element whose start tag ends at `start`; only
    /// pure text (no comment, CDATA or child before its end tag) is rewritten.
    fn text_url(&mut self, kind: TextUrl, start: usize) -> Result<(), RewriteError> {
        let body = self.body;
        let end = start
            + body[start..]
                .find('<')
                .ok_or(RewriteError::NotMpd("unclosed element"))?;
        if !body[end..].starts_with("</") {
            return Ok(());
        }
        let raw = &body[start..end];
        let trimmed = raw.trim_start();
        let value_start = start + (raw.len() - trimmed.len());
        let value_end = value_start + trimmed.trim_end().len();
        let depth = self.open.len();
        match kind {
            TextUrl::Manifest => {
                let base = self.manifest_base;
                self.offer(base, value_start, value_end, false);
            }
            TextUrl::Base if depth == 2 => {
                let base = self.manifest_base;
                self.offer(base, value_start, value_end, true);
                self.push_base(depth - 1, value_start, value_end);
            }
            TextUrl::Base => {
                self.nested_reference(value_start, value_end, true);
                self.push_base(depth - 1, value_start, value_end);
            }
        }
        Ok(())
    }

    /// The base that a reference at the current depth resolves against; for a `BaseURL`, the
    /// one above its parent's level.
    fn current_base(&self, for_base_url: bool) -> &BaseUrl {
        let parent_depth = self.open.len().saturating_sub(1);
        let mut bases = self.bases.iter().rev();
        let found = if for_base_url {
            bases.find(|(owner, _)| *owner < parent_depth)
        } else {
            bases.next()
        };
        found.map_or(self.manifest_base, |(_, base)| base)
    }

    /// Offers a reference below the MPD level to the callback unless it is plain relative.
    fn nested_reference(&mut self, value_start: usize, value_end: usize, is_dir: bool) {
        let raw = &self.body[value_start..value_end];
        if decode_entities(raw).is_none_or(|reference| is_plain_relative(&reference)) {
            return;
        }
        let base = self.current_base(is_dir).clone();
        self.offer(&base, value_start, value_end, is_dir);
    }

    /// Offers `body[value_start..value_end]` (decoded) to the callback, resolved against
    /// `base`, and writes the escaped replacement if it gives one.
    fn offer(&mut self, base: &BaseUrl, value_start: usize, value_end: usize, is_dir: bool) {
        let raw = &self.body[value_start..value_end];
        let Some(reference) = decode_entities(raw) else {
            return;
        };
        self.replacement.clear();
        if self
            .rebaser
            .replace(base, &reference, is_dir, &mut self.replacement)
        {
            self.out.push_str(&self.body[self.copied..value_start]);
            push_escaped(&mut self.out, &self.replacement);
            self.copied = value_end;
        }
    }

    /// Records the base that `BaseURL` text sets for the element at `owner_depth`, resolved
    /// against the level above (the first `BaseURL` of a level wins).
    fn push_base(&mut self, owner_depth: usize, value_start: usize, value_end: usize) {
        if self
            .bases
            .last()
            .is_some_and(|(owner, _)| *owner == owner_depth)
        {
            return;
        }
        let Some(reference) = decode_entities(&self.body[value_start..value_end]) else {
            return;
        };
        if reference.is_empty() {
            return;
        }
        let above = self.current_base(true);
        if let Some(resolved) =
            super::url::resolve(above, &reference).and_then(|url| BaseUrl::parse(&url))
        {
            self.bases.push((owner_depth, resolved));
        }
    }

    fn finish(mut self) -> Result<String, RewriteError> {
        self.out.push_str(&self.body[self.copied..]);
        if let (false, Some((at, indentation))) = (self.saw_mpd_base, self.insert_at) {
            self.replacement.clear();
            if self
                .rebaser
                .replace_base_dir(self.manifest_base, &mut self.replacement)
            {
                let prefix = &self.root_name[..self.root_name.len() - "MPD".len()];
                let mut element =
                    String::with_capacity(self.replacement.len() + 2 * prefix.len() + 24);
                element.push('<');
                element.push_str(prefix);
                element.push_str("BaseURL>");
                push_escaped(&mut element, &self.replacement);
                element.push_str("</");
                element.push_str(prefix);
                element.push_str("BaseURL>");
                element.push_str(indentation);
                self.out.insert_str(at, &element);
            }
        }
        Ok(self.out)
    }
}

/// Skips `<!DOCTYPE …>` (with an internal subset in brackets) starting at `lt`.
fn skip_declaration(body: &str, lt: usize) -> Result<usize, RewriteError> {
    let mut depth = 0usize;
    let mut quote = None;
    for (offset, byte) in body.as_bytes()[lt + 2..].iter().enumerate() {
        match (quote, byte) {
            (Some(open), _) if *byte == open => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(*byte),
            (None, b'[') => depth += 1,
            (None, b']') => depth = depth.saturating_sub(1),
            (None, b'>') if depth == 0 => return Ok(lt + 2 + offset + 1),
            _ => {}
        }
    }
    Err(RewriteError::NotMpd("unterminated declaration"))
}

#[cfg(test)]
mod tests {
    use super::super::{rewrite, ManifestFormat, ResolvedRef, RewriteError};
    use super::*;

    fn rewrite_to_router(body: &str, base: &str) -> (String, Vec<String>) {
        super::super::test_support::rewrite_to_router(ManifestFormat::Dash, body, base)
    }

    /// The shape ffmpeg's dash muxer writes for a live stream: no BaseURL, SegmentTemplate.
    const LIVE_TEMPLATE: &str = concat!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
        "<MPD xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n",
        "\txmlns=\"urn:mpeg:dash:schema:mpd:2011\"\n",
        "\txmlns:xlink=\"http://www.w3.org/1999/xlink\"\n",
        "\tprofiles=\"urn:mpeg:dash:profile:isoff-live:2011\"\n",
        "\ttype=\"dynamic\"\n",
        "\tminimumUpdatePeriod=\"PT2S\"\n",
        "\tavailabilityStartTime=\"2026-12-03T16:00:00Z\"\n",
        "\tpublishTime=\"2026-12-03T16:10:00Z\"\n",
        "\tminBufferTime=\"PT4.0S\">\n",
        "\t<ProgramInformation>\n",
        "\t\t<Title>Channel &amp; one</Title>\n",
        "\t</ProgramInformation>\n",
        "\t<ServiceDescription id=\"0\">\n",
        "\t</ServiceDescription>\n",
        "\t<Period id=\"0\" start=\"PT0.0S\">\n",
        "\t\t<AdaptationSet id=\"0\" contentType=\"video\" segmentAlignment=\"true\">\n",
        "\t\t\t<Representation id=\"0\" mimeType=\"video/mp4\" codecs=\"avc1.f4000d\" bandwidth=\"200000\" width=\"320\" height=\"240\">\n",
        "\t\t\t\t<SegmentTemplate timescale=\"12800\" initialization=\"init-stream$RepresentationID$.m4s\" media=\"chunk-stream$RepresentationID$-$Number%05d$.m4s\" startNumber=\"1\">\n",
        "\t\t\t\t\t<SegmentTimeline>\n",
        "\t\t\t\t\t\t<S t=\"0\" d=\"25600\" r=\"4\" />\n",
        "\t\t\t\t\t</SegmentTimeline>\n",
        "\t\t\t\t</SegmentTemplate>\n",
        "\t\t\t</Representation>\n",
        "\t\t</AdaptationSet>\n",
        "\t</Period>\n",
        "</MPD>\n",
    );

    #[test]
    fn without_base_url_one_is_inserted_after_program_information() {
        let (out, seen) = rewrite_to_router(
            LIVE_TEMPLATE,
            "http://edge:8080/btv/live/dash/ch1/manifest.mpd?token=t",
        );
        let expected = LIVE_TEMPLATE.replace(
            "\t</ProgramInformation>\n\t<ServiceDescription",
            "\t</ProgramInformation>\n\t<BaseURL>http://router/r/btv/live/dash/ch1/</BaseURL>\n\t<ServiceDescription",
        );
        assert_eq!(out, expected);
        assert_eq!(
            seen,
            vec!["dir \"\" -> http://edge:8080/btv/live/dash/ch1/"]
        );
    }

    #[test]
    fn nothing_is_inserted_when_the_callback_declines() {
        let base = BaseUrl::parse("http://edge/live/ch1/manifest.mpd").expect("base");
        let out = rewrite(
            ManifestFormat::Dash,
            LIVE_TEMPLATE,
            &base,
            &mut |_: &ResolvedRef<'_>, out: &mut String| {
                out.push_str("junk");
                false
            },
        )
        .expect("rewrites");
        assert_eq!(out, LIVE_TEMPLATE);
    }

    #[test]
    fn base_urls_at_every_level_segment_lists_and_locations() {
        let body = concat!(
            "<?xml version=\"1.0\"?>\r\n",
            "<!-- packager: example -->\r\n",
            "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" type=\"dynamic\" minimumUpdatePeriod=\"PT4S\">\r\n",
            "  <BaseURL serviceLocation=\"a\">dash/</BaseURL>\r\n",
            "  <Location>https://edge.example/live/ch1/manifest.mpd?token=x&amp;y=1</Location>\r\n",
            "  <PatchLocation ttl=\"60\">patch.mpp</PatchLocation>\r\n",
            "  <Period id=\"p0\">\r\n",
            "    <BaseURL>p0/</BaseURL>\r\n",
            "    <AdaptationSet mimeType=\"video/mp4\">\r\n",
            "      <BaseURL> /vod/other/ </BaseURL>\r\n",
            "      <SegmentTemplate media=\"v-$Number$.m4s\" initialization=\"../init.mp4\"/>\r\n",
            "      <Representation id=\"v1\" bandwidth=\"1\"/>\r\n",
            "    </AdaptationSet>\r\n",
            "    <AdaptationSet mimeType=\"audio/mp4\">\r\n",
            "      <Representation id=\"a1\" bandwidth=\"1\">\r\n",
            "        <BaseURL>http://cdn2.example/audio/</BaseURL>\r\n",
            "        <SegmentList duration=\"4\">\r\n",
            "          <Initialization sourceURL='a-init.mp4'/>\r\n",
            "          <SegmentURL media=\"a-1.m4s\"/>\r\n",
            "          <SegmentURL media=\"https://edge.example/live/ch1/dash/p0/a-2.m4s?a=1&amp;b=2\" mediaRange=\"0-99\"/>\r\n",
            "        </SegmentList>\r\n",
            "      </Representation>\r\n",
            "    </AdaptationSet>\r\n",
            "  </Period>\r\n",
            "  <Period id=\"p1\" xlink:href=\"/ads/p1.xml\" xlink:actuate=\"onLoad\"/>\r\n",
            "  <Period id=\"p2\" xlink:href=\"urn:mpeg:dash:resolve-to-zero:2013\"/>\r\n",
            "</MPD>",
        );
        let (out, seen) = rewrite_to_router(body, "https://edge.example/live/ch1/manifest.mpd");
        let expected = body
            .replace(">dash/<", ">http://router/r/live/ch1/dash/<")
            .replace(
                ">https://edge.example/live/ch1/manifest.mpd?token=x&amp;y=1<",
                ">http://router/r/live/ch1/manifest.mpd?token=x&amp;y=1<",
            )
            .replace(">patch.mpp<", ">http://router/r/live/ch1/patch.mpp<")
            .replace("> /vod/other/ <", "> http://router/r/vod/other/ <")
            .replace("\"../init.mp4\"", "\"http://router/r/vod/init.mp4\"")
            .replace(
                "\"https://edge.example/live/ch1/dash/p0/a-2.m4s?a=1&amp;b=2\"",
                "\"http://router/r/live/ch1/dash/p0/a-2.m4s?a=1&amp;b=2\"",
            )
            .replace("\"/ads/p1.xml\"", "\"http://router/r/ads/p1.xml\"");
        assert_eq!(out, expected);
        assert_eq!(
            seen,
            vec![
                "dir \"dash/\" -> https://edge.example/live/ch1/dash/",
                "\"https://edge.example/live/ch1/manifest.mpd?token=x&y=1\" -> https://edge.example/live/ch1/manifest.mpd?token=x&y=1",
                "\"patch.mpp\" -> https://edge.example/live/ch1/patch.mpp",
                "dir \"/vod/other/\" -> https://edge.example/vod/other/",
                "\"../init.mp4\" -> https://edge.example/vod/init.mp4",
                "dir \"http://cdn2.example/audio/\" -> http://cdn2.example/audio/",
                "\"https://edge.example/live/ch1/dash/p0/a-2.m4s?a=1&b=2\" -> https://edge.example/live/ch1/dash/p0/a-2.m4s?a=1&b=2",
                "\"/ads/p1.xml\" -> https://edge.example/ads/p1.xml",
            ]
        );
    }

    #[test]
    fn multi_period_with_a_namespace_prefix_and_no_program_information() {
        let body = concat!(
            "<mpd:MPD xmlns:mpd=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" mediaPresentationDuration=\"PT20S\">\n",
            "    <mpd:Period id=\"1\" duration=\"PT10S\">\n",
            "        <mpd:AdaptationSet><mpd:SegmentTemplate media=\"p1/$Number$.m4s\" duration=\"2\"/></mpd:AdaptationSet>\n",
            "    </mpd:Period>\n",
            "    <mpd:Period id=\"2\" duration=\"PT10S\">\n",
            "        <mpd:BaseURL>p2/</mpd:BaseURL>\n",
            "        <mpd:AdaptationSet><mpd:SegmentTemplate media=\"$Number$.m4s\" duration=\"2\"/></mpd:AdaptationSet>\n",
            "    </mpd:Period>\n",
            "</mpd:MPD>\n",
        );
        let (out, seen) = rewrite_to_router(body, "http://edge/vod/film/manifest.mpd");
        let expected = body.replacen(
            "\n    <mpd:Period",
            "\n    <mpd:BaseURL>http://router/r/vod/film/</mpd:BaseURL>\n    <mpd:Period",
            1,
        );
        assert_eq!(out, expected);
        assert_eq!(seen.len(), 1, "{seen:?}");
    }

    #[test]
    fn entities_and_escaping() {
        assert_eq!(
            decode_entities("a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;").as_deref(),
            Some("a&b<>\"'AB")
        );
        assert_eq!(decode_entities("plain").as_deref(), Some("plain"));
        assert_eq!(decode_entities("a&nbsp;b"), None);
        assert_eq!(decode_entities("a&amp"), None);
        assert_eq!(decode_entities("&#xD800;"), None);
        let mut out = String::new();
        push_escaped(&mut out, "a&b<c>\"d'e");
        assert_eq!(out, "a&amp;b&lt;c&gt;&quot;d&apos;e");
    }

    #[test]
    fn not_an_mpd_is_an_error() {
        let base = BaseUrl::parse("http://edge/a/m.mpd").expect("base");
        let bodies = [
            "",
            "#EXTM3U\n",
            "<html><body/></html>",
            "<MPD><Period></MPD>",
            "<MPD><Period>",
            "<MPD/><MPD/>",
            "<MPD attr=unquoted/>",
            "<MPD attr=\"unterminated/>",
            "<!-- unterminated",
            "<MPD><BaseURL>x",
        ];
        for body in bodies {
            let result = rewrite(
                ManifestFormat::Dash,
                body,
                &base,
                &mut |_: &ResolvedRef<'_>, _: &mut String| true,
            );
            assert!(
                matches!(result, Err(RewriteError::NotMpd(_))),
                "{body:?}: {result:?}"
            );
        }
    }
}
