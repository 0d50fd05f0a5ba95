// Static files: GET /static/<w>/<w>.png (10 lorem words), 302 to http(s)://<edge>/static/<same path>.
//
// Classic flags:  k6 run --vus 300 --rps 200 --duration 300s load_testing/test_static.js
// Open model:     SCENARIO=open RATE=200 DURATION=30s k6 run load_testing/test_static.js
// With a router:  load_testing/run.sh test_static.js [k6 args]   (builds, starts and stops it)
//
// Checks and thresholds: see lib/common.js and load_testing/README.md.

import { buildOptions, staticFile } from './lib/common.js';

export { setup } from './lib/common.js';

export const options = buildOptions();

export default function () {
  staticFile();
}
