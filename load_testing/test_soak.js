// Soak: a steady open-model rate (constant-arrival-rate, RATE default 300 req/s for DURATION
// default 60s) of the uniform live/catch-up/VOD/static mix. Run it through soak.sh, which
// meanwhile rewrites the routing snapshot file and sends SIGHUP every few seconds: every valid
// request must still get its 302 (checks rate==1.0, http_req_failed rate==0), with no latency
// spike past the p95/p99 thresholds while snapshots are swapped.
//
//   load_testing/soak.sh                          (60 s at 300 req/s)
//   DURATION=20s RATE=100 load_testing/soak.sh
//
// Edges going down and up through health checks are out of scope for now: soak.sh runs the
// router with health checks off, and only the routing data changes.

import { buildOptions, anyRequest } from './lib/common.js';

export { setup } from './lib/common.js';

export const options = buildOptions({ defaultRate: 300, defaultDuration: '60s', alwaysOpen: true, perKind: true });

export default function () {
  anyRequest();
}
