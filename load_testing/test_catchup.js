// Catch-up: GET /btv/catchup/{hls,mpd}[_{wv,pr,cenc}]/p_epg_{0..19}[.m3u8|.mpd], 302 to /dvr/<prefix>/<record path>.
//
// Classic flags:  k6 run --vus 300 --rps 200 --duration 300s load_testing/test_catchup.js
// Open model:     SCENARIO=open RATE=200 DURATION=30s k6 run load_testing/test_catchup.js
// With a router:  load_testing/run.sh test_catchup.js [k6 args]   (builds, starts and stops it)
//
// Checks and thresholds: see lib/common.js and load_testing/README.md.

import { buildOptions, catchup } from './lib/common.js';

export { setup } from './lib/common.js';

export const options = buildOptions();

export default function () {
  catchup();
}
