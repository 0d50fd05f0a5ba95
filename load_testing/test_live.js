// Live channels: GET /btv/live/{hls,mpd}[_{wv,pr,cenc}]/epg_{0..249}[.m3u8|.mpd], 302 to the channel's stream.
//
// Classic flags:  k6 run --vus 300 --rps 200 --duration 300s load_testing/test_live.js
// Open model:     SCENARIO=open RATE=200 DURATION=30s k6 run load_testing/test_live.js
// With a router:  load_testing/run.sh test_live.js [k6 args]   (builds, starts and stops it)
//
// Checks and thresholds: see lib/common.js and load_testing/README.md.

import { buildOptions, live } from './lib/common.js';

export { setup } from './lib/common.js';

export const options = buildOptions();

export default function () {
  live();
}
