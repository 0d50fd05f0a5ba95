// A uniform mix of live, catch-up, VOD and static requests (one kind chosen at random per request).
//
// Classic flags:  k6 run --vus 300 --rps 200 --duration 300s load_testing/test_requests.js
// Open model:     SCENARIO=open RATE=200 DURATION=30s k6 run load_testing/test_requests.js
// With a router:  load_testing/run.sh test_requests.js [k6 args]   (builds, starts and stops it)
//
// Checks and thresholds: see lib/common.js and load_testing/README.md.

import { buildOptions, anyRequest } from './lib/common.js';

export { setup } from './lib/common.js';

export const options = buildOptions({ perKind: true });

export default function () {
  anyRequest();
}
