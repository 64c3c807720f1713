#!/usr/bin/env node
// The CLI is TypeScript run through tsx, so `npx bluegreen` works right after `npm ci` with no build step.
require("tsx/cjs");
require("../automation/cli.ts").run();
