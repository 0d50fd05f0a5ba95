//! A model of the reference scanner: the first, byte-at-a-time version of
//! `url::scan_reference`, kept to check that the SIMD version gives the same answer for any
//! input, including spaces, control characters, variables and fragments.

use proptest::prelude::*;

use super::url::{scan_reference, ReferenceParts, ScannedReference};

/// Bytes the scanner stops at: controls and space (refused), `#`, `?`, `:`, `/`, `.`, `{`.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte <= 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[0x7f] = true;
    table[b'#' as usize] = true;
    table[b'?' as usize] = true;
    table[b':' as usize] = true;
    table[b'/' as usize] = true;
    table[b'.' as usize] = true;
    table[b'{' as usize] = true;
    table
};

/// The scanner as it was first written: splits `reference` like `split_reference` in a single pass over its bytes; `None` for a
/// reference with a space or a control character before its fragment, or an `EXT-X-DEFINE`
/// variable (`{$name}`), which cannot be resolved before substitution.
fn scan_reference_by_table(reference: &str) -> Option<ScannedReference<'_>> {
    let bytes = reference.as_bytes();
    let mut query_at = None;
    let mut fragment_at = None;
    let mut first_colon = None;
    let mut first_slash = None;
    let mut dot_segments = false;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if !SPECIAL[usize::from(byte)] {
            at += 1;
            continue;
        }
        match byte {
            b'#' => {
                fragment_at = Some(at);
                break;
            }
            b'?' => {
                query_at = query_at.or(Some(at));
            }
            b':' => first_colon = first_colon.or(Some(at)),
            b'/' => first_slash = first_slash.or(Some(at)),
            b'.' => {
                // Conservative: a '.' that starts a segment (or follows a scheme's ':').
                let segment_start = at == 0 || matches!(bytes[at - 1], b'/' | b':');
                dot_segments |= query_at.is_none() && segment_start;
            }
            b'{' => {
                if bytes.get(at + 1) == Some(&b'$') {
                    return None;
                }
            }
            _ => return None,
        }
        at += 1;
    }
    let path_end = query_at.or(fragment_at).unwrap_or(bytes.len());
    let scheme_end = first_colon.filter(|&colon| {
        colon < path_end
            && first_slash.is_none_or(|slash| colon < slash)
            && scheme_len_model(&reference[..=colon]) == Some(colon)
    });
    let mut path_start = scheme_end.map_or(0, |colon| colon + 1);
    let authority = if reference[path_start..path_end].starts_with("//") {
        let authority_start = path_start + 2;
        let authority_end = reference[authority_start..path_end]
            .find('/')
            .map_or(path_end, |slash| authority_start + slash);
        path_start = authority_end;
        Some(&reference[authority_start..authority_end])
    } else {
        None
    };
    let query =
        query_at.map(|question| &reference[question + 1..fragment_at.unwrap_or(bytes.len())]);
    Some(ScannedReference {
        parts: ReferenceParts {
            scheme: scheme_end.map(|colon| &reference[..colon]),
            authority,
            path: &reference[path_start..path_end],
            query,
            fragment: fragment_at.map(|hash| &reference[hash + 1..]),
        },
        dot_segments,
    })
}

/// Length of a leading `scheme` followed by `:` (as `url::scheme_len`).
fn scheme_len_model(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    for (index, &byte) in bytes.iter().enumerate().skip(1) {
        match byte {
            b':' => return Some(index),
            b'+' | b'-' | b'.' => {}
            _ if byte.is_ascii_alphanumeric() => {}
            _ => return None,
        }
    }
    None
}

#[test]
fn the_scanner_agrees_with_the_model_on_examples() {
    for reference in [
        "",
        "ch1-1764780000.ts?token=a1b2c3d4e5f6",
        "../a/./b.ts?x=/./y#f",
        "http://edge:8080/a.ts",
        "//keys.example/k",
        "skd://key-id",
        "a b.ts",
        "a.ts#frag with space",
        "seg{$n}.ts",
        "seg{x}.ts#{$n}",
        "seg.ts?{$",
        "a\x7f.ts",
        "1a:b",
        "a/b:c",
        ".hidden",
        "x:./y",
        "?q#f",
        "#",
        "verylongsegmentname-0123456789abcdef0123456789abcdef.m4s?token=0123456789abcdef0123456789",
    ] {
        assert_eq!(
            scan_reference(reference),
            scan_reference_by_table(reference),
            "{reference:?}"
        );
    }
}

proptest! {
    #[test]
    fn the_scanner_agrees_with_the_model(reference in "[a-zA-Z0-9:/?#.%{$@+ \t\r\x00\x7f\u{e9}-]{0,48}") {
        prop_assert_eq!(scan_reference(&reference), scan_reference_by_table(&reference));
    }
}
