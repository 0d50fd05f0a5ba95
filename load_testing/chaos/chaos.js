// Chaos soak load: a steady open-model rate (constant-arrival-rate, RATE default 300 req/s for
// DURATION) of the uniform live / catch-up / VOD / static mix of lib/common.js, while
// chaos_driver.py makes the admin API flap, edges die and return, reloads the config and
// upgrades the binary. Run it through chaos.sh.
//
// Every request is checked as in lib/common.js (302, http(s)://, query carried, the stream /
// record / requested path), plus: the Location host is one of the chaos fake edges
// (EDGE_HOSTS, comma-separated host:port): host:port for live and catch-up, the host alone for
// VOD and static (those always redirect to http://host, no port: docs/admin-api.md, "Redirect
// URLs"). Pass: checks rate==1.0 and http_req_failed rate==0.
// Latency is reported, not judged: the machine is shared, and an upgrade or a reload under two
// busy cores may cost a few milliseconds.

import { check } from 'k6';
import { buildOptions, anyRequest } from '../lib/common.js';

export { setup } from '../lib/common.js';

const EDGE_HOSTS = new Set((__ENV.EDGE_HOSTS || '').split(',').filter(Boolean));
const EDGE_NAMES = new Set([...EDGE_HOSTS].map((h) => h.replace(/:\d+$/, '')));

const base = buildOptions({ defaultRate: 300, defaultDuration: '300s', alwaysOpen: true, perKind: true });
for (const name of Object.keys(base.thresholds)) {
  if (name.startsWith('http_req_duration')) delete base.thresholds[name];
}
export const options = base;

let warningsLeft = 3;

function locationHost(res) {
  const location = res.headers.Location || '';
  const m = /^https?:\/\/([^/?#]+)/.exec(location);
  return m ? m[1] : null;
}

export default function () {
  const res = anyRequest();
  if (EDGE_HOSTS.size === 0) return;
  const host = locationHost(res);
  const plain = /^https?:\/\/[^/]+\/(vod|static)(\/|$|\?)/.test(res.request.url);
  const ok = check(res, {
    'Location host is a chaos edge': () => host !== null && (plain ? EDGE_NAMES.has(host) : EDGE_HOSTS.has(host)),
  });
  if (!ok && warningsLeft > 0) {
    warningsLeft -= 1;
    console.warn(`Location host ${host} is not a chaos edge (status ${res.status})`);
  }
}
