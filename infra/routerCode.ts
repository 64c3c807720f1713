// Loads the CloudFront Function sources from infra/router/*.js: the exact bytes the program deploys are
// the bytes the tests and the local edge execute.
import { transformSync } from "esbuild";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import type { Slot } from "./config";

const ROUTER_DIR = path.join(__dirname, "router");
const VIEWER_REQUEST_FILE = path.join(ROUTER_DIR, "viewer-request.js");
const VIEWER_RESPONSE_FILE = path.join(ROUTER_DIR, "viewer-response.js");

/** CloudFront Functions code is limited to 10 KB.
 * https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-functions */
export const MAX_FUNCTION_CODE_BYTES = 10 * 1024;

// The viewer-request source carries one line `const FALLBACK = {...}; // @fallback`: the slot and
// release served when the KeyValueStore read fails. The program bakes the stable slot into it.
const FALLBACK_LINE = /^const FALLBACK = .*; \/\/ @fallback$/m;

// Both sources carry one line `const VIEWER = {...}; // @viewer`: what the stack's embedding config says viewers get.
const VIEWER_LINE = /^const VIEWER = .*; \/\/ @viewer$/m;

export interface Fallback {
  slot: Slot;
  release: string;
}

/** What viewers get, from the stack config's `embedding` (infra/config.ts viewerSettings). */
export interface ViewerSettings {
  /** Set-Cookie attributes of the stickiness cookie. */
  cookie: string;
  /** Cache-Control of an entry point: the redirect to a release-qualified URL, and any other unqualified URL. */
  entry: string;
}

export function viewerRequestCode(fallback: Fallback, viewer: ViewerSettings): string {
  const source = bake(VIEWER_REQUEST_FILE, readFileSync(VIEWER_REQUEST_FILE, "utf8"), VIEWER_LINE, `const VIEWER = ${JSON.stringify(viewer)}; // @viewer`);
  return render(VIEWER_REQUEST_FILE, bake(VIEWER_REQUEST_FILE, source, FALLBACK_LINE, `const FALLBACK = ${JSON.stringify(fallback)}; // @fallback`));
}

export function viewerResponseCode(viewer: ViewerSettings): string {
  return render(VIEWER_RESPONSE_FILE, bake(VIEWER_RESPONSE_FILE, readFileSync(VIEWER_RESPONSE_FILE, "utf8"), VIEWER_LINE, `const VIEWER = ${JSON.stringify(viewer)}; // @viewer`));
}

function bake(file: string, source: string, line: RegExp, replacement: string): string {
  if (!line.test(source)) throw new Error(`${file} lacks the line ${line.source}`);
  // A function, so that "$" in a value is not read as a replacement pattern.
  return source.replace(line, () => replacement);
}

const IMPORT_LINE = /^import .* from '(cloudfront|crypto)';$/gm;

/**
 * The deployed code: the source without its comments and layout (the sources document every rule; the edge needs
 * none of it, and a function's size counts against the 10 KB limit). Only whitespace and comments go: names, the
 * `handler` entry point and the import lines stay exactly as written, each import on its own line.
 */
function render(file: string, source: string): string {
  const imports = source.match(IMPORT_LINE) ?? [];
  const body = source.replace(IMPORT_LINE, "");
  // es2017: the runtime documents async/await but not later syntax such as optional catch bindings.
  const minified = transformSync(body, { minify: true, legalComments: "none", target: "es2017" }).code;
  const code = `${imports.join("\n")}\n${minified}`;
  const bytes = Buffer.byteLength(code, "utf8");
  if (bytes > MAX_FUNCTION_CODE_BYTES) throw new Error(`${file} is ${bytes} bytes; CloudFront Functions are limited to ${MAX_FUNCTION_CODE_BYTES}`);
  return code;
}

