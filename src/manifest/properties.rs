//! Property tests of the rewriters: generated playlists and MPDs whose references are known by
//! construction, checked against an independent model of RFC 3986 resolution (HLS) or a
//! player-like resolver over the output (DASH); plus arbitrary input that must never panic.

use proptest::prelude::*;

use super::url::resolve;
use super::{rewrite, BaseUrl, ManifestFormat, ResolvedRef};

const EDGE: &str = "http://edge.example:8080";
const ROUTER: &str = "http://router.example/r";

/// What the callback does with same-origin references (others are always kept).
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Proxy mode: back to the router, on a path that keeps the edge path.
    Proxy,
    /// Manifest mode: absolute on the edge.
    Manifest,
}

fn callback(mode: Mode) -> impl FnMut(&ResolvedRef<'_>, &mut String) -> bool {
    move |r, out| {
        if !r.same_origin {
            return false;
        }
        match mode {
            Mode::Proxy => {
                out.push_str(ROUTER);
                out.push_str(r.path);
                if let Some(query) = r.query {
                    out.push('?');
                    out.push_str(query);
                }
            }
            Mode::Manifest => out.push_str(r.absolute),
        }
        true
    }
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Proxy), Just(Mode::Manifest)]
}

/// RFC 3986 §5.2.4 exactly as written (the buffer-moving loop), as an oracle.
fn remove_dot_segments_model(path: &str) -> String {
    let mut input = path.to_owned();
    let mut output = String::new();
    while !input.is_empty() {
        if input.starts_with("../") {
            input.drain(..3);
        } else if input.starts_with("./") || input.starts_with("/./") {
            // A: drop "./"; B: "/./" becomes "/".
            input.drain(..2);
        } else if input == "/." {
            input = "/".to_owned();
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." {
                "/".to_owned()
            } else {
                input[3..].to_owned()
            };
            let cut = output.rfind('/').unwrap_or(0);
            output.truncate(cut);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..]
                .find('/')
                .map_or(input.len(), |slash| start + slash);
            output.push_str(&input[..end]);
            input.drain(..end);
        }
    }
    output
}

/// A reference as generated, with what it must resolve to.
#[derive(Debug, Clone)]
struct Reference {
    text: String,
    /// `Some((origin as written, path, query))` for an http reference to the edge.
    edge: Option<(String, String, Option<String>)>,
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9_%-]{1,6}(\\.ts|\\.m4s|\\.m3u8)?",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just(String::new()),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-z0-9_=&.%-]{0,10}")
}

fn fragment() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.2, "[a-z0-9=.]{0,5}")
}

/// References of every kind, relative to a base whose directory is `base_dir` (`/a/b/`).
fn reference(base_dir: String) -> impl Strategy<Value = Reference> {
    let segments = (segment(), proptest::collection::vec(segment(), 0..5));
    let same_host = prop_oneof![
        Just("http://edge.example:8080"),
        Just("HTTP://EDGE.example:8080"),
        Just("//edge.example:8080"),
        Just("http://Edge.Example:8080"),
    ];
    let other_host = prop_oneof![
        Just("https://edge.example:8080"),
        Just("http://edge.example"),
        Just("http://keys.example:8080"),
        Just("//other.example"),
    ];
    let non_http = prop_oneof![
        Just("skd://key-1".to_owned()),
        Just("data:text/plain;base64,QQ==".to_owned()),
        Just("urn:uuid:1234".to_owned()),
    ];
    (
        0..5u8,
        segments,
        same_host,
        other_host,
        non_http,
        query(),
        fragment(),
    )
        .prop_map(
            move |(kind, (first, rest), same, other, non_http, query, fragment)| {
                // A relative reference's first segment must not be empty (that would make it `//`
                // or `/`), nor contain a colon (it has none: the alphabet has no colon).
                let first = if first.is_empty() {
                    "x".to_owned()
                } else {
                    first
                };
                let relative_path = std::iter::once(first)
                    .chain(rest)
                    .collect::<Vec<_>>()
                    .join("/");
                let suffix = |text: &mut String| {
                    if let Some(query) = &query {
                        text.push('?');
                        text.push_str(query);
                    }
                    if let Some(fragment) = &fragment {
                        text.push('#');
                        text.push_str(fragment);
                    }
                };
                let (mut text, edge_path) = match kind {
                    0 => {
                        let path = remove_dot_segments_model(&format!("{base_dir}{relative_path}"));
                        (relative_path, Some((EDGE.to_owned(), path)))
                    }
                    1 => {
                        let text = format!("/{relative_path}");
                        let path = remove_dot_segments_model(&text);
                        (text, Some((EDGE.to_owned(), path)))
                    }
                    2 => {
                        let text = format!("{same}/{relative_path}");
                        let path = remove_dot_segments_model(&format!("/{relative_path}"));
                        let origin = if same.starts_with("//") {
                            format!("http:{same}")
                        } else {
                            format!("http{}", &same[4..])
                        };
                        (text, Some((origin, path)))
                    }
                    3 => (format!("{other}/{relative_path}"), None),
                    _ => (non_http, None),
                };
                suffix(&mut text);
                let edge = edge_path.map(|(origin, path)| (origin, path, query.clone()));
                Reference { text, edge }
            },
        )
}

impl Reference {
    /// What a reference becomes in the output: the callback's replacement or itself.
    fn expected(&self, mode: Mode) -> String {
        match (&self.edge, mode) {
            (None, _) => self.text.clone(),
            (Some((origin, path, query)), mode) => {
                let mut url = match mode {
                    Mode::Proxy => format!("{ROUTER}{path}"),
                    Mode::Manifest => format!("{origin}{path}"),
                };
                if let Some(query) = query {
                    url.push('?');
                    url.push_str(query);
                }
                url
            }
        }
    }
}

/// URI-bearing tags: name, attribute, the attributes before it and after it.
#[rustfmt::skip]
const URI_TAGS: &[(&str, &str, &str, &str)] = &[
    ("EXT-X-KEY", "URI", "METHOD=AES-128,", ",IV=0x0123"),
    ("EXT-X-MAP", "URI", "", ",BYTERANGE=\"720@0\""),
    ("EXT-X-MEDIA", "URI", "TYPE=AUDIO,NAME=\"English, main\",", ",DEFAULT=YES"),
    ("EXT-X-I-FRAME-STREAM-INF", "URI", "BANDWIDTH=1,CODECS=\"a,b\",", ""),
    ("EXT-X-PART", "URI", "DURATION=0.3,", ",INDEPENDENT=YES"),
    ("EXT-X-PRELOAD-HINT", "URI", "TYPE=PART,", ""),
    ("EXT-X-RENDITION-REPORT", "URI", "", ",LAST-MSN=2"),
    ("EXT-X-SESSION-DATA", "URI", "DATA-ID=\"x\",", ""),
    ("EXT-X-CONTENT-STEERING", "SERVER-URI", "", ",PATHWAY-ID=\"a\""),
    ("EXT-X-DATERANGE", "X-ASSET-URI", "ID=\"ad1\",START-DATE=\"2026-12-03T17:00:00Z\",", ""),
];

/// One generated playlist line: its text before and after rewriting.
fn hls_line(base_dir: String, mode: Mode) -> impl Strategy<Value = (String, String)> {
    let plain = prop_oneof![
        Just("#EXT-X-VERSION:7"),
        Just("#EXTINF:4.000,Title, with a comma"),
        Just("#EXTINF:2,URI=\"not-a-uri-attribute.ts\""),
        Just("#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1,mp4a\",AUDIO=\"a\""),
        Just("#EXT-X-PROGRAM-DATE-TIME:2026-12-03T17:00:00.000Z"),
        Just("# a comment naming seg.ts"),
        Just(""),
        Just("#EXT-X-ENDLIST"),
    ]
    .prop_map(|line| (line.to_owned(), line.to_owned()));
    let tag = proptest::sample::select(URI_TAGS);
    let uri_tag = (tag, reference(base_dir.clone())).prop_map(
        move |((name, attribute, before, after), reference)| {
            let line = |uri: &str| format!("#{name}:{before}{attribute}=\"{uri}\"{after}");
            (line(&reference.text), line(&reference.expected(mode)))
        },
    );
    let uri_line = (
        reference(base_dir),
        prop_oneof![Just(""), Just(" "), Just("\t")],
    )
        .prop_map(move |(reference, blank)| {
            (
                format!("{blank}{}{blank}", reference.text),
                format!("{blank}{}{blank}", reference.expected(mode)),
            )
        });
    prop_oneof![2 => plain, 2 => uri_tag, 3 => uri_line]
}

fn hls_case() -> impl Strategy<Value = (String, Mode, String, String)> {
    let base_dir = proptest::collection::vec("[a-z0-9]{1,4}", 0..4)
        .prop_map(|segments| segments.iter().map(|s| format!("/{s}")).collect::<String>() + "/");
    (base_dir, mode()).prop_flat_map(|(base_dir, mode)| {
        let lines = proptest::collection::vec(
            (
                hls_line(base_dir.clone(), mode),
                prop_oneof![Just("\n"), Just("\r\n")],
            ),
            0..40,
        );
        (
            Just(base_dir),
            Just(mode),
            lines,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(base_dir, mode, lines, bom, last_end)| {
                let mut input = String::from(if bom {
                    "\u{feff}#EXTM3U\n"
                } else {
                    "#EXTM3U\n"
                });
                let mut expected = input.clone();
                let count = lines.len();
                for (index, ((line, rewritten), end)) in lines.into_iter().enumerate() {
                    let end = if index + 1 == count && !last_end {
                        ""
                    } else {
                        end
                    };
                    input.push_str(&line);
                    input.push_str(end);
                    expected.push_str(&rewritten);
                    expected.push_str(end);
                }
                (
                    format!("{EDGE}{base_dir}index.m3u8?token=t"),
                    mode,
                    input,
                    expected,
                )
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Every reference in the output is where the mode says (router path or edge URL, query
    /// kept, dot segments resolved as RFC 3986 says), and every other byte is unchanged.
    #[test]
    fn hls_references_resolve_as_the_mode_says_and_nothing_else_changes((base, mode, input, expected) in hls_case()) {
        let base = BaseUrl::parse(&base).expect("base");
        let output = rewrite(ManifestFormat::Hls, &input, &base, &mut callback(mode)).expect("a playlist");
        prop_assert_eq!(output, expected);
    }

    #[test]
    fn resolution_matches_the_rfc_algorithm(base_dir in "(/[a-z.]{1,3}){0,4}/", path in "[a-z./]{1,12}") {
        prop_assume!(!path.starts_with("//"));
        let base = BaseUrl::parse(&format!("{EDGE}{base_dir}x")).expect("base");
        let merged = if path.starts_with('/') { path.clone() } else { format!("{}{path}", base.dir()) };
        let expected = format!("{EDGE}{}", remove_dot_segments_model(&merged));
        prop_assert_eq!(resolve(&base, &path), Some(expected));
    }

    /// The one-pass scanner splits like RFC 3986's Appendix B, and when it says a path has no
    /// dot segment, it has none.
    #[test]
    fn the_scanner_splits_like_appendix_b(reference in "[a-zA-Z0-9:/?#.%{$@+-]{0,16}") {
        let scanned = super::url::scan_reference(&reference);
        if reference.split('#').next().is_some_and(|before| before.contains("{$")) {
            prop_assert_eq!(scanned, None);
        } else {
            let scanned = scanned.expect("no space or control character");
            prop_assert_eq!(scanned.parts, super::url::split_reference(&reference));
            if !scanned.dot_segments {
                prop_assert!(!scanned.parts.path.split('/').any(|segment| segment == "." || segment == ".."));
            }
        }
    }

    /// Arbitrary text, and text made of manifest-ish tokens: never a panic; and when the
    /// callback keeps everything, the output is the input.
    #[test]
    fn arbitrary_input_never_panics_and_a_declining_callback_changes_nothing(text in manifestish_text()) {
        let base = BaseUrl::parse("http://edge.example/a/b/m").expect("base");
        for format in [ManifestFormat::Hls, ManifestFormat::Dash] {
            let _ = rewrite(format, &text, &base, &mut |r: &ResolvedRef<'_>, out: &mut String| {
                out.push_str(r.absolute);
                out.push_str("&<\"'");
                true
            });
            if let Ok(output) = rewrite(format, &text, &base, &mut |_: &ResolvedRef<'_>, out: &mut String| {
                out.push_str("junk");
                false
            }) {
                prop_assert_eq!(output, text.clone());
            }
        }
        let _ = super::sniff(None, text.as_bytes());
    }
}

fn manifestish_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("#EXTM3U"),
        Just("#EXT-X-KEY:"),
        Just("#EXT-X-MAP:"),
        Just("#EXT-X-DATERANGE:"),
        Just("URI="),
        Just("X-ASSET-URI="),
        Just("\""),
        Just("'"),
        Just(","),
        Just("\n"),
        Just("\r\n"),
        Just("\r"),
        Just(" "),
        Just("/"),
        Just(".."),
        Just("."),
        Just("?"),
        Just("#"),
        Just("//h"),
        Just("http:"),
        Just("https://edge.example"),
        Just("seg.ts"),
        Just("<"),
        Just(">"),
        Just("/>"),
        Just("</"),
        Just("MPD"),
        Just("mpd:MPD"),
        Just("BaseURL"),
        Just("Period"),
        Just("Location"),
        Just("SegmentURL"),
        Just(" media="),
        Just("="),
        Just("&amp;"),
        Just("&#x41;"),
        Just("&"),
        Just(";"),
        Just("<!--"),
        Just("-->"),
        Just("<?xml?>"),
        Just("<![CDATA["),
        Just("]]>"),
        Just("<!DOCTYPE ["),
        Just("]"),
        Just("\u{feff}"),
        Just("é"),
        Just("{$v}"),
        Just("%2e"),
    ];
    prop_oneof![
        ".{0,200}",
        proptest::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat()),
    ]
}

/// What a generated MPD line is, for the player-like resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MpdLine {
    /// Opens the element at this level (0 MPD, 1 Period, 2 AdaptationSet, 3 Representation).
    Open(usize),
    /// A `BaseURL` child of the element at this level.
    Base(usize),
    Location,
    /// An element with URL attributes (`media`, `initialization`) below the element at this level.
    Segments(usize),
    Other,
}

fn escaped(text: &str) -> String {
    let mut out = String::new();
    super::dash::push_escaped(&mut out, text);
    out
}

/// An MPD of one element a line, with the kind of each line.
fn dash_document() -> impl Strategy<Value = Vec<(MpdLine, String)>> {
    let any_reference = || reference("/".to_owned()).prop_map(|r| r.text);
    // BaseURLs are http references (a `skd:` base would make no sense).
    let dir_reference = || {
        reference("/".to_owned())
            .prop_filter("an http base", |r| !r.text.starts_with(['s', 'd', 'u']))
            .prop_map(|r| r.text)
    };
    let base_line = move |level: usize, indent: &'static str| {
        proptest::option::weighted(0.6, dir_reference()).prop_map(move |r| {
            r.map(|r| {
                (
                    MpdLine::Base(level),
                    format!("{indent}<BaseURL>{}</BaseURL>\n", escaped(&r)),
                )
            })
        })
    };
    let template = (any_reference(), any_reference()).prop_map(|(media, init)| {
        vec![(
            MpdLine::Segments(2),
            format!(
                "      <SegmentTemplate media=\"{}$Number$\" initialization=\"{}\"/>\n",
                escaped(&media),
                escaped(&init)
            ),
        )]
    });
    let representation = (
        base_line(3, "        "),
        proptest::collection::vec(any_reference(), 1..4),
    )
        .prop_map(|(base, media)| {
            let mut lines = vec![(
                MpdLine::Open(3),
                "      <Representation id=\"r\" bandwidth=\"1\">\n".to_owned(),
            )];
            lines.extend(base);
            lines.push((
                MpdLine::Other,
                "        <SegmentList duration=\"2\">\n".to_owned(),
            ));
            for media in media {
                lines.push((
                    MpdLine::Segments(3),
                    format!("          <SegmentURL media='{}'/>\n", escaped(&media)),
                ));
            }
            lines.push((MpdLine::Other, "        </SegmentList>\n".to_owned()));
            lines.push((MpdLine::Other, "      </Representation>\n".to_owned()));
            lines
        });
    let adaptation_set = (
        base_line(2, "      "),
        prop_oneof![template, representation],
    )
        .prop_map(|(base, body)| {
            let mut lines = vec![(
                MpdLine::Open(2),
                "    <AdaptationSet mimeType=\"video/mp4\">\n".to_owned(),
            )];
            lines.extend(base);
            lines.extend(body);
            lines.push((MpdLine::Other, "    </AdaptationSet>\n".to_owned()));
            lines
        });
    let period = (
        base_line(1, "    "),
        proptest::collection::vec(adaptation_set, 1..3),
    )
        .prop_map(|(base, sets)| {
            let mut lines = vec![(MpdLine::Open(1), "  <Period>\n".to_owned())];
            lines.extend(base);
            lines.extend(sets.into_iter().flatten());
            lines.push((MpdLine::Other, "  </Period>\n".to_owned()));
            lines
        });
    (
        any::<bool>(),
        any::<bool>(),
        base_line(0, "  "),
        proptest::option::of(any_reference()),
        proptest::collection::vec(period, 1..3),
    )
        .prop_map(|(prolog, program_information, base, location, periods)| {
            let mut lines = Vec::new();
            if prolog {
                lines.push((
                    MpdLine::Other,
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n".to_owned(),
                ));
            }
            lines.push((
                MpdLine::Open(0),
                "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"dynamic\">\n".to_owned(),
            ));
            if program_information {
                lines.push((
                    MpdLine::Other,
                    "  <ProgramInformation><Title>A &amp; B</Title></ProgramInformation>\n"
                        .to_owned(),
                ));
            }
            lines.extend(base);
            if let Some(location) = location {
                lines.push((
                    MpdLine::Location,
                    format!("  <Location>{}</Location>\n", escaped(&location)),
                ));
            }
            lines.extend(periods.into_iter().flatten());
            lines.push((MpdLine::Other, "</MPD>\n".to_owned()));
            lines
        })
}

/// The URL values on a line: the text of a `BaseURL`/`Location`, or its quoted attributes
/// `media` and `initialization`, entities decoded.
fn line_urls(kind: MpdLine, line: &str) -> Vec<String> {
    let decode = |raw: &str| {
        super::dash::decode_entities(raw)
            .expect("generated entities")
            .into_owned()
    };
    match kind {
        MpdLine::Base(_) | MpdLine::Location => {
            let start = line.find('>').expect("a tag") + 1;
            let end = line.rfind("</").expect("an end tag");
            vec![decode(&line[start..end])]
        }
        MpdLine::Segments(_) => ["media=", "initialization="]
            .iter()
            .filter_map(|name| {
                let at = line.find(name)? + name.len();
                let quote = &line[at..at + 1];
                let end = at + 1 + line[at + 1..].find(quote)?;
                Some(decode(&line[at + 1..end]))
            })
            .collect(),
        MpdLine::Open(_) | MpdLine::Other => Vec::new(),
    }
}

/// What a player fetches for every reference of the document (in order; `None` where a
/// reference does not resolve to an http URL): each level's first `BaseURL` resolves against
/// the level above, the top against the MPD's URL; segment URLs against the nearest base.
fn effective_urls(lines: &[(MpdLine, &str)], manifest: &BaseUrl) -> Vec<Option<String>> {
    let mut bases: [Option<BaseUrl>; 4] = Default::default();
    let nearest = |bases: &[Option<BaseUrl>], up_to: usize| {
        bases[..up_to].iter().rev().flatten().next().cloned()
    };
    let mut urls = Vec::new();
    for &(kind, line) in lines {
        match kind {
            MpdLine::Open(level) => bases[level..].iter_mut().for_each(|base| *base = None),
            MpdLine::Base(level) => {
                let above = nearest(&bases, level).unwrap_or_else(|| manifest.clone());
                let url = resolve(&above, &line_urls(kind, line)[0]);
                if bases[level].is_none() {
                    bases[level] = url.as_deref().and_then(BaseUrl::parse);
                }
                urls.push(url);
            }
            MpdLine::Location => urls.push(resolve(manifest, &line_urls(kind, line)[0])),
            MpdLine::Segments(level) => {
                let base = nearest(&bases, level + 1).unwrap_or_else(|| manifest.clone());
                urls.extend(line_urls(kind, line).iter().map(|url| resolve(&base, url)));
            }
            MpdLine::Other => {}
        }
    }
    urls
}

/// Where the mode sends a URL the input pointed at.
fn moved(url: &Option<String>, manifest: &BaseUrl, mode: Mode) -> Option<String> {
    let url = url.as_deref()?;
    match mode {
        Mode::Proxy if manifest.same_origin(url) => {
            let parsed = BaseUrl::parse(url).expect("an http URL");
            let query = parsed
                .query()
                .map(|query| format!("?{query}"))
                .unwrap_or_default();
            Some(format!("{ROUTER}{}{query}", parsed.path()))
        }
        _ => Some(url.to_owned()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A player resolving the rewritten MPD fetches every same-origin reference from where the
    /// mode says (router or edge), every other one from where it pointed before; every line
    /// without a reference is unchanged, and a `BaseURL` line is inserted only when the MPD had
    /// no MPD-level one, after `ProgramInformation`.
    #[test]
    fn dash_references_resolve_as_the_mode_says_and_nothing_else_changes(lines in dash_document(), mode in mode()) {
        let manifest = BaseUrl::parse(&format!("{EDGE}/btv/live/dash/ch1/manifest.mpd?token=t")).expect("base");
        let input: String = lines.iter().map(|(_, line)| line.as_str()).collect();
        let output = rewrite(ManifestFormat::Dash, &input, &manifest, &mut callback(mode)).expect("an MPD");
        let mut output_lines: Vec<&str> = output.split_inclusive('\n').collect();
        let has_mpd_base = lines.iter().any(|(kind, _)| *kind == MpdLine::Base(0));
        if !has_mpd_base {
            let after = lines.iter().position(|(kind, line)| *kind == MpdLine::Open(0) || line.contains("ProgramInformation"));
            let at = lines.iter().rposition(|(kind, line)| *kind == MpdLine::Open(0) || line.contains("ProgramInformation")).max(after).expect("an MPD line") + 1;
            let inserted = output_lines.remove(at);
            let expected_dir = match mode {
                Mode::Proxy => format!("{ROUTER}/btv/live/dash/ch1/"),
                Mode::Manifest => format!("{EDGE}/btv/live/dash/ch1/"),
            };
            prop_assert_eq!(inserted, format!("  <BaseURL>{expected_dir}</BaseURL>\n"));
        }
        prop_assert_eq!(output_lines.len(), lines.len());
        for ((kind, before), after) in lines.iter().zip(&output_lines) {
            if matches!(kind, MpdLine::Open(_) | MpdLine::Other) {
                prop_assert_eq!(before.as_str(), *after);
            }
        }
        let mut output_kinds: Vec<(MpdLine, &str)> = lines.iter().map(|(kind, _)| *kind).zip(output_lines.iter().copied()).collect();
        if !has_mpd_base {
            let at = output_kinds.iter().position(|(kind, _)| *kind != MpdLine::Other && *kind != MpdLine::Open(0)).expect("a Period");
            let inserted = output.split_inclusive('\n').nth(at).expect("the inserted line");
            output_kinds.insert(at, (MpdLine::Base(0), inserted));
        }
        let before: Vec<(MpdLine, &str)> = lines.iter().map(|(kind, line)| (*kind, line.as_str())).collect();
        let expected: Vec<Option<String>> = effective_urls(&before, &manifest).iter().map(|url| moved(url, &manifest, mode)).collect();
        let mut actual = effective_urls(&output_kinds, &manifest);
        if !has_mpd_base {
            actual.remove(0);
        }
        prop_assert_eq!(actual, expected);
    }
}
