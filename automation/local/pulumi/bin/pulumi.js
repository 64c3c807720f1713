#!/usr/bin/env node
// The Pulumi CLI stand-in's client in plain Node.js, for machines without curl (bin/pulumi, the shell client, runs it
// then). Plain JavaScript with no dependency: a call costs a Node start and one loopback request; the commands run in
// the local cloud's long-lived process (automation/local/pulumiCli.ts).
// The local cloud is found through $BLUEGREEN_ENGINE_URL, else through the backend: PULUMI_BACKEND_URL=file://<dir>
// names the local cloud's state folder, where a running cloud advertises itself in engine.json.
"use strict";
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { fileURLToPath } = require("node:url");

const argv = process.argv.slice(2);

function engineUrl() {
  if (process.env.BLUEGREEN_ENGINE_URL) return process.env.BLUEGREEN_ENGINE_URL;
  const backend = process.env.PULUMI_BACKEND_URL;
  if (!backend || !backend.startsWith("file://")) return undefined;
  try {
    return JSON.parse(fs.readFileSync(path.join(fileURLToPath(backend), "engine.json"), "utf8")).url;
  } catch {
    return undefined;
  }
}

// `pulumi version` answers without the cloud: the SDK asks it before anything else (PulumiCommand.get).
if (argv[0] === "version") {
  process.stdout.write("v3.248.0\n");
  process.exit(0);
}

const url = engineUrl();
if (url === undefined) {
  process.stderr.write("error: the local cloud is not running for this backend (PULUMI_BACKEND_URL); start it with: npx bluegreen local up\n");
  process.exit(255);
}

// The same request as bin/pulumi's: the working folder, then each argument, NUL-terminated.
const body = [process.cwd(), ...argv].map((a) => `${a}\0`).join("");
const req = http.request(`${url}/pulumi`, { method: "POST", headers: { "content-type": "application/octet-stream", "content-length": Buffer.byteLength(body) } }, (res) => {
  const chunks = [];
  res.on("data", (c) => chunks.push(c));
  res.on("end", () => {
    const code = Number(res.headers["x-pulumi-exit-code"] ?? 255);
    const stderr = Buffer.from(String(res.headers["x-pulumi-stderr"] ?? ""), "base64");
    process.stdout.write(Buffer.concat(chunks), () => process.stderr.write(stderr, () => process.exit(code)));
  });
});
req.on("error", (err) => {
  process.stderr.write(`error: cannot reach the local cloud at ${url}: ${err.message}; start it with: npx bluegreen local up\n`);
  process.exit(255);
});
req.end(body);
