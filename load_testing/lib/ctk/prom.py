"""Prometheus text exposition format (what the router's GET /metrics answers), read into
samples and summed by name and labels.

    samples(text)                  -> [(name, {label: value}, float)], comments skipped
    total(text, name, labels)      -> sum of the samples of `name` whose labels include
                                      `labels` (a dict, or matchers like 'kind="invalid"')
    by_label(text, name, label)    -> {value of `label`: sum}
    scrape(url)                    -> the text at url (management API, no proxy)
"""

import re

from .rawhttp import url_get

_SAMPLE = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _labels(text):
    out, pos = {}, 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise ValueError(f"bad labels: {text!r}")
        out[m.group(1)] = re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e.group(0)], m.group(2))
        pos = m.end()
    return out


def samples(text):
    """Every sample line as (name, labels, value); lines that do not parse are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            out.append((m.group(1), _labels(m.group(2) or ""), float(m.group(3))))
        except ValueError:
            continue
    return out


def matchers(specs):
    """{'kind': 'invalid'} from ['kind="invalid"', ...] (quotes optional)."""
    out = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        out[name.strip()] = value.strip().strip('"')
    return out


def total(text, name, labels=None):
    """Sum of the samples of `name` that carry every label of `labels` (a dict, or matcher
    strings); 0.0 when there is none."""
    want = matchers(labels) if isinstance(labels, (list, tuple)) else dict(labels or {})
    return sum(v for n, ls, v in samples(text) if n == name and all(ls.get(k) == x for k, x in want.items()))


def by_label(text, name, label):
    """{value of `label`: sum of the samples of `name` with it}."""
    out = {}
    for n, ls, v in samples(text):
        if n == name and label in ls:
            out[ls[label]] = out.get(ls[label], 0.0) + v
    return out


def scrape(url, timeout=5.0):
    """The metrics text at url; raises OSError when it does not answer 200."""
    status, body = url_get(url, timeout=timeout)
    if status != 200:
        raise OSError(f"{url}: {status} {body[:80]!r}")
    return body.decode("utf-8", "replace")
