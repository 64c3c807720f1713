// Reference integrity: every URL the artifact's HTML, CSS, JS and web manifests reference relatively must be a file of
// the artifact. A missing one passes every server-side check (the health path and `/` answer 200) and only fails in
// viewers' browsers, as a 403: with Origin Access Control, S3 answers 403, not 404, for a key that does not exist.
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html
//
// Pure (bytes in, problems out) and regex-based rather than a parser dependency: the check runs on built output, where
// references take few shapes, and a reference it cannot see costs what it costs today, while one it invents refuses a
// good release. So it reads only literal references, blanks comments first, and skips what a browser would not fetch
// from this origin.
import { UsageError } from "./errors";

/** What else the stack will ask for: the verification paths in stack config, as URL paths from the artifact's root. */
export interface ConfiguredPaths {
  healthPath?: string;
  smokePaths?: readonly string[];
}

export interface ReferenceProblem {
  /** The artifact file holding the reference, or the stack config key naming the path. */
  file: string;
  /** 1-based line of the reference; absent for a stack config path. */
  line?: number;
  /** The reference as written. */
  reference: string;
  /** `missing`: no such file in the artifact; `escapes`: it resolves above the artifact's root. */
  reason: "missing" | "escapes";
}

/** Throws a UsageError (exit 2, nothing changed) naming the first reference that does not resolve inside the artifact. */
export function checkArtifact(files: ReadonlyMap<string, Uint8Array>, paths: ConfiguredPaths = {}): void {
  const problems = referenceProblems(files, paths);
  if (problems.length === 0) return;
  const [first] = problems;
  const where = first.line === undefined ? first.file : `${first.file}:${first.line}`;
  const why = first.reason === "missing" ? "which the artifact does not contain" : "which resolves outside the artifact";
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more unresolved references)` : "";
  throw new UsageError(`${where}: references ${JSON.stringify(first.reference)}, ${why}${more}`);
}

/** Every relative reference of the artifact, and every configured path, that is not a file of the artifact. */
export function referenceProblems(files: ReadonlyMap<string, Uint8Array>, paths: ConfiguredPaths = {}): ReferenceProblem[] {
  const problems: ReferenceProblem[] = [];
  const manifests = new Set([...files.keys()].filter((f) => f.endsWith(".webmanifest")));
  const check = (file: string, refs: readonly Reference[]) => {
    const lines = lineStarts(files.get(file)!);
    for (const ref of refs) {
      const target = resolve(ref.base ?? file, ref.url);
      if (target === undefined) continue;
      const line = lineOf(lines, ref.index);
      if (target === ESCAPES) problems.push({ file, line, reference: ref.url, reason: "escapes" });
      else if (!files.has(target)) problems.push({ file, line, reference: ref.url, reason: "missing" });
      else if (ref.manifest) manifests.add(target);
    }
  };
  const sorted = [...files.keys()].sort();
  for (const file of sorted) {
    const scan = SCANNERS[extension(file)];
    if (scan) check(file, scan(decode(files.get(file)!), file));
  }
  // Second pass: a manifest is known as one only once an HTML file has linked it (any name is allowed).
  for (const file of [...manifests].sort()) check(file, scanWebManifest(decode(files.get(file)!)));

  // Configured paths are URL paths on the distribution, which serves the artifact at its root.
  const configured: [string, string | undefined][] = [
    ["picasso-widget:verification.healthPath", paths.healthPath],
    ...(paths.smokePaths ?? []).map((p, i): [string, string] => [`picasso-widget:verification.smoke[${i}].path`, p]),
  ];
  for (const [key, urlPath] of configured) {
    if (urlPath === undefined) continue;
    const target = resolve("", urlPath);
    if (target === ESCAPES) problems.push({ file: key, reference: urlPath, reason: "escapes" });
    else if (target !== undefined && !files.has(target)) problems.push({ file: key, reference: urlPath, reason: "missing" });
  }
  return problems;
}

/**
 * The URLs one HTML, CSS or JS file references, as written, in the order they appear (none for other files): what a
 * browser loading the file would fetch, for a check that follows them over HTTP (tests/e2e/skew.test.ts).
 */
export function referencesIn(file: string, text: string): string[] {
  const scan = SCANNERS[extension(file)];
  return scan ? scan(text, file).map((r) => r.url) : [];
}

interface Reference {
  url: string;
  /** Offset in the file's text, for the line number. */
  index: number;
  /** The path the reference resolves against when it is not the file's own (an HTML `<base href>`). */
  base?: string;
  /** The target is a web manifest, whose own references are checked too. */
  manifest?: boolean;
}

const SCANNERS: Record<string, (text: string, file: string) => Reference[]> = {
  ".html": scanHtml,
  ".htm": scanHtml,
  ".css": (text) => scanCss(text, 0),
  ".js": (text) => scanJs(text, 0),
  ".mjs": (text) => scanJs(text, 0),
};

const ESCAPES = Symbol("escapes");

function sameDocument(url: string): boolean {
  return /^\s*(?:$|[#?])/.test(url);
}

/**
 * The artifact path a reference from `from` (an artifact path) names, as the router serves it: a trailing `/` means the
 * folder's index.html (infra/router/viewer-request.js). Undefined for what is not fetched from this artifact:
 * absolute URLs (any scheme, including data: and mailto:), protocol-relative `//host/...`, and same-document `#`/`?`.
 */
function resolve(from: string, url: string): string | typeof ESCAPES | undefined {
  // Browsers strip surrounding whitespace and read `\` as `/` in http(s) URLs (WHATWG URL, "special" schemes).
  const ref = url.trim().replace(/\\/g, "/");
  if (sameDocument(ref) || ref.startsWith("//") || /^[a-z][a-z0-9+.-]*:/i.test(ref)) return undefined;
  const urlPath = ref.replace(/[?#].*$/s, "");
  const segments = urlPath.startsWith("/") ? [] : from.split("/").slice(0, -1);
  const parts = (urlPath.startsWith("/") ? urlPath.slice(1) : urlPath).split("/");
  // Above the root a browser stays at the root, but the author meant a file outside the artifact.
  let escapes = false;
  parts.forEach((raw, i) => {
    const part = decodeSegment(raw);
    if (part === "..") {
      if (segments.length === 0) escapes = true;
      segments.pop();
    }
    if (part !== "." && part !== "..") segments.push(part);
    else if (i === parts.length - 1) segments.push("");
  });
  if (escapes) return ESCAPES;
  const joined = segments.join("/");
  return joined === "" || joined.endsWith("/") ? `${joined}index.html` : joined;
}

/** S3 keys hold the decoded name: `my%20icon.png` is the file `my icon.png`. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

// ---------------------------------------------------------------------------------------------------------- HTML

const TAG = /<([a-zA-Z][^\s/>]*)((?:[^>"']|"[^"]*"|'[^']*')*)>/g;
const ATTRIBUTE = /([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'=<>`]+))?/g;
const URL_ATTRIBUTES = new Set(["src", "href", "xlink:href", "poster"]);
const SRCSET_ATTRIBUTES = new Set(["srcset", "imagesrcset"]);
/** Elements whose content is text, not markup: their content is scanned as JS or CSS, or not at all. */
const RAW_TEXT = new Set(["script", "style", "textarea", "title", "xmp", "noembed", "noframes"]);
/** Script types a browser runs as JS; others (JSON-LD, templates, import maps) are data. */
const JS_TYPES = /^(?:|module|text\/javascript|application\/javascript|text\/ecmascript|application\/ecmascript)$/i;

function scanHtml(source: string, file: string): Reference[] {
  const text = blank(source, /<!--[\s\S]*?(?:-->|$)/g);
  const baseTag = baseHref(text);
  const base = baseTag && resolve(file, baseTag.value);
  // An absolute base sends every relative reference of the document elsewhere: nothing here to check.
  if (baseTag && base === undefined && !sameDocument(baseTag.value)) return [];
  // A base above the root is the one problem of the document: reported once, as its own reference.
  if (base === ESCAPES) return [{ url: baseTag!.value, index: baseTag!.index }];
  const refs: Reference[] = [];
  const push = (found: Reference[]) => refs.push(...found.map((r) => (base === undefined ? r : { ...r, base })));
  TAG.lastIndex = 0;
  for (let m = TAG.exec(text); m; m = TAG.exec(text)) {
    const tag = m[1].toLowerCase();
    const attrsAt = m.index + 1 + m[1].length;
    const attrs = attributes(m[2], attrsAt);
    const rel = (attrs.get("rel")?.value ?? "").toLowerCase().split(/\s+/);
    for (const [name, { value, index }] of attrs) {
      if (URL_ATTRIBUTES.has(name) && tag !== "base") push([{ url: value, index, manifest: tag === "link" && rel.includes("manifest") }]);
      else if (SRCSET_ATTRIBUTES.has(name)) push(srcsetUrls(value).map(({ url, offset }) => ({ url, index: index + offset })));
      else if (name === "style") push(scanCss(value, index));
    }
    if (!RAW_TEXT.has(tag) || m[0].endsWith("/>")) continue;
    const start = TAG.lastIndex;
    const close = text.slice(start).search(new RegExp(`</${tag}[\\s>/]`, "i"));
    const end = close < 0 ? text.length : start + close;
    const content = text.slice(start, end);
    if (tag === "script" && !attrs.has("src") && JS_TYPES.test(attrs.get("type")?.value.trim() ?? "")) push(scanJs(content, start));
    if (tag === "style") push(scanCss(content, start));
    TAG.lastIndex = end;
  }
  return refs;
}

/**
 * The first `<base href>` sets the URL every relative reference of the document resolves against, wherever it stands
 * (HTML, "document base URL"): the value of its href, with the value's index.
 */
function baseHref(text: string): { value: string; index: number } | undefined {
  const tag = /<base\b((?:[^>"']|"[^"]*"|'[^']*')*)>/i.exec(text);
  return tag ? attributes(tag[1], tag.index + "<base".length).get("href") : undefined;
}

function attributes(text: string, at: number): Map<string, { value: string; index: number }> {
  const found = new Map<string, { value: string; index: number }>();
  ATTRIBUTE.lastIndex = 0;
  for (let m = ATTRIBUTE.exec(text); m; m = ATTRIBUTE.exec(text)) {
    const name = m[1].toLowerCase();
    // The first of two same-named attributes wins (HTML tokenizer: "duplicate attribute" parse error).
    if (found.has(name)) continue;
    const raw = m[2] ?? "";
    const quoted = /^["']/.test(raw);
    const value = quoted ? raw.slice(1, -1) : raw;
    // The index is the value's, so that a reference in a multi-line style or srcset gets its own line.
    found.set(name, { value: decodeEntities(value), index: at + m.index + m[0].length - raw.length + (quoted ? 1 : 0) });
  }
  return found;
}

const NAMED_ENTITIES: Record<string, string> = { amp: "&", quot: '"', apos: "'", lt: "<", gt: ">", nbsp: "\u00a0" };

function decodeEntities(value: string): string {
  return value.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name: string) => {
    if (name[0] !== "#") return NAMED_ENTITIES[name.toLowerCase()] ?? whole;
    const code = name[1] === "x" || name[1] === "X" ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

/** The URLs of a srcset: comma-separated candidates of a URL and optional descriptors (HTML, "srcset attribute"). */
function srcsetUrls(srcset: string): { url: string; offset: number }[] {
  const urls: { url: string; offset: number }[] = [];
  let i = 0;
  while (i < srcset.length) {
    while (i < srcset.length && /[\s,]/.test(srcset[i])) i++;
    const offset = i;
    let url = "";
    while (i < srcset.length && !/\s/.test(srcset[i])) url += srcset[i++];
    // A URL ending in commas has no descriptors: the commas separate it from the next candidate.
    if (url.endsWith(",")) {
      urls.push({ url: url.replace(/,+$/, ""), offset });
      continue;
    }
    if (url) urls.push({ url, offset });
    let depth = 0;
    while (i < srcset.length && !(srcset[i] === "," && depth === 0)) {
      if (srcset[i] === "(") depth++;
      else if (srcset[i] === ")") depth = Math.max(0, depth - 1);
      i++;
    }
  }
  return urls;
}

// ----------------------------------------------------------------------------------------------------------- CSS

const CSS_URL = /(?<![\w-])url\(\s*(?:"((?:\\.|[^"\\\n])*)"|'((?:\\.|[^'\\\n])*)'|([^)\s"']*))\s*\)/gi;
const CSS_IMPORT_STRING = /@import\s+(?:"((?:\\.|[^"\\\n])*)"|'((?:\\.|[^'\\\n])*)')/gi;

/** `url()` (quoted or not, in any property and `@import url()`) and `@import "..."`; `at` offsets the indexes. */
function scanCss(source: string, at: number): Reference[] {
  const text = blank(source, /\/\*[\s\S]*?(?:\*\/|$)/g);
  const refs: Reference[] = [];
  for (const pattern of [CSS_URL, CSS_IMPORT_STRING]) {
    pattern.lastIndex = 0;
    for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
      const url = (m[1] ?? m[2] ?? m[3] ?? "").replace(/\\(.)/g, "$1");
      refs.push({ url, index: at + m.index });
    }
  }
  return refs.sort((a, b) => a.index - b.index);
}

// ------------------------------------------------------------------------------------------------------------ JS

/** `import ... from "x"`, `import "x"`, `export ... from "x"`, minified or not; not `a.import` nor `import.meta`. */
const JS_STATIC = /(?<![\w$.])(?:import|export)\s*(?:[\w$*{}\s,]*?\s*from\s*)?(["'])([^"'\n]*)\1/g;
/** `import("x")` with a literal (a template without substitutions included); computed specifiers cannot be checked. */
const JS_DYNAMIC = /(?<![\w$.])import\s*\(\s*(["'`])([^"'`\n$]*)\1\s*[,)]/g;
/** `new URL("x", import.meta.url)`: how bundlers and authors name a module's own assets (workers, images, wasm). */
const JS_ASSET = /(?<![\w$.])new\s+URL\s*\(\s*(["'`])([^"'`\n$]*)\1\s*,\s*import\.meta\.url\s*\)/g;
/** Comments, with strings matched first so that `"https://..."` is not read as the start of one. */
const JS_COMMENT_OR_STRING = /"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`|\/\*[\s\S]*?(?:\*\/|$)|\/\/[^\n]*/g;

function scanJs(source: string, at: number): Reference[] {
  const text = source.replace(JS_COMMENT_OR_STRING, (m) => (m.startsWith("/") ? m.replace(/[^\n]/g, " ") : m));
  const refs: Reference[] = [];
  for (const pattern of [JS_STATIC, JS_DYNAMIC]) {
    pattern.lastIndex = 0;
    for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
      // A bare specifier ("lodash") is not a URL: an import map or nothing resolves it.
      if (/^(?:\.{1,2})?\//.test(m[2])) refs.push({ url: m[2], index: at + m.index + m[0].lastIndexOf(m[1] + m[2]) });
    }
  }
  JS_ASSET.lastIndex = 0;
  for (let m = JS_ASSET.exec(text); m; m = JS_ASSET.exec(text)) refs.push({ url: m[2], index: at + m.index + m[0].indexOf(m[1] + m[2]) });
  return refs.sort((a, b) => a.index - b.index);
}

// ---------------------------------------------------------------------------------------------------- Manifests

/**
 * A web manifest's `src` (icons, screenshots, shortcut icons), `url` (shortcuts) and `start_url` members; they resolve
 * against the manifest's own URL (W3C Web Application Manifest, "processing"). Not JSON: a browser ignores the
 * manifest, so there is nothing to check.
 */
function scanWebManifest(text: string): Reference[] {
  try {
    JSON.parse(text);
  } catch {
    return [];
  }
  const refs: Reference[] = [];
  const member = /"(src|url|start_url)"\s*:\s*("(?:\\.|[^"\\])*")/g;
  for (let m = member.exec(text); m; m = member.exec(text)) refs.push({ url: JSON.parse(m[2]) as string, index: m.index });
  return refs;
}

// -------------------------------------------------------------------------------------------------------- Text

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

function extension(file: string): string {
  const dot = file.lastIndexOf(".");
  return dot < file.lastIndexOf("/") + 1 ? "" : file.slice(dot).toLowerCase();
}

/** Replaces each match with spaces, keeping newlines, so offsets and line numbers stay those of the source. */
function blank(text: string, pattern: RegExp): string {
  return text.replace(pattern, (m) => m.replace(/[^\n]/g, " "));
}

function lineStarts(bytes: Uint8Array): number[] {
  const text = decode(bytes);
  const starts = [0];
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) starts.push(i + 1);
  return starts;
}

function lineOf(starts: readonly number[], index: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= index) lo = mid;
    else hi = mid - 1;
  }
  return lo + 1;
}
