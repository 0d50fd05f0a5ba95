"""Router configs for the load tests, derived from conf/cti-kaltura.yaml (the template) by
exact text edits. Every edit must match exactly once, so that a changed template fails
loudly instead of yielding some other config; comments and layout stay as they are.

    load_test   listeners 127.0.0.1:PORT and [::1]:PORT, management 127.0.0.1:MGMT_PORT,
                pid file and upgrade socket in a private directory, health checks off
                (lib/router.sh lt_make_config)
    routing     router.routing.file
    bench       one worker thread, no work stealing, access log off, optionally VOD in
                proxy mode (bench/lib.sh bench_router_config)
    trusted_proxies, access_log_json, http_setting
                chaos/hostile.sh's variants
Also edit_once for other files of the template's kind (soak.sh's routing variants), and
write_atomic. The command line is `python3 -m ctk config` (__main__.py).
"""

import os
import re


class EditError(Exception):
    pass


def edit_once(text, pattern, replacement, where="config", flags=0):
    """re.subn that must replace exactly one match."""
    new, n = re.subn(pattern, replacement, text, flags=flags)
    if n != 1:
        raise EditError(f"{where}: expected one match of {pattern!r}, found {n}")
    return new


def edits(text, pairs, where):
    for pattern, replacement in pairs:
        text = edit_once(text, pattern, replacement, where)
    return text


def load_test(text, port, mgmt_port, runtime_dir, health=False, where="config"):
    pairs = [
        (r'(?m)^(\s*- )"127\.0\.0\.1:\d+"', rf'\1"127.0.0.1:{port}"'),
        (r'(?m)^(\s*- )"\[::1\]:\d+"', rf'\1"[::1]:{port}"'),
        (r'(?m)^(\s*management_listen:\s*).*$', rf'\1"127.0.0.1:{mgmt_port}"'),
        (r'(?m)^(pid_file:\s*).*$', rf'\1"{runtime_dir}/cti-kaltura.pid"'),
        (r'(?m)^(upgrade_sock:\s*).*$', rf'\1"{runtime_dir}/cti-kaltura-upgrade.sock"'),
    ]
    if not health:
        pairs.append((r'(?m)^(  health:\n(?:    #.*\n)*    enabled:\s*)(?:true|false)\b', r'\1false'))
    return edits(text, pairs, where)


def routing(text, path, where="config"):
    return edit_once(text, r'(?m)^(\s*file:\s*).*$', rf'\1"{path}"', where)


def bench(text, vod_proxy=False, where="config"):
    text = edits(text, [(r"(?m)^threads:\s*\d+\s*$", "threads: 1"),
                        (r"(?m)^work_stealing:.*$", "work_stealing: false")], where)
    extra = "  access_log:\n    enabled: false\n"
    if vod_proxy:
        extra += "  routes:\n    vod: {mode: proxy}\n  proxy:\n    connect_timeout_ms: 1000\n"
    return edit_once(text, r"(?m)^router:\s*\n", lambda m: m.group(0) + extra, f"{where} (top-level router:)")


def trusted_proxies(text, cidrs, where="config"):
    return edit_once(text, r"(?ms)^(    trusted_proxies:\n)(      - .*?\n)+",
                     lambda m: m.group(1) + "".join(f'      - "{c}"\n' for c in cidrs), f"{where} (trusted_proxies)")


def access_log_json(text):
    return text.rstrip("\n") + "\n  access_log:\n    enabled: true\n    format: json\n"


def http_setting(text, key, value, where="config"):
    """router.http.KEY: VALUE, replacing the template's line, or added first under http:."""
    new, n = re.subn(rf"(?m)^(    {key}:\s*)\S+", rf"\g<1>{value}", text)
    if n == 0:
        return edit_once(text, r"(?m)^(  http:\n)", rf"\g<1>    {key}: {value}\n", f"{where} (router.http.{key})")
    if n != 1:
        raise EditError(f"{where}: router.http.{key} set {n} times")
    return new


def write_atomic(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
