// The stack config: one schema, used by the Pulumi program (before any resource is declared) and by the
// driver (before it changes anything). A bad value fails with the key, the value and what is allowed.
import { z } from "zod";

export const CONFIG_NAMESPACE = "picasso-widget";
export const SLOTS = ["blue", "green"] as const;
export type Slot = (typeof SLOTS)[number];
const ENVIRONMENTS = ["dev", "staging", "production", "local"] as const;
export type Environment = (typeof ENVIRONMENTS)[number];

export function otherSlot(slot: Slot): Slot {
  return slot === "blue" ? "green" : "blue";
}

// Release ids become S3 key prefixes and URI segments: no "/", no "..", and short enough that the
// routing record stays far below the 1,024-character KeyValueStore value limit.
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-keyvaluestores
const RELEASE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const RELEASE_RULE = "1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit, without '..'";

export function releaseIdProblem(id: string): string | undefined {
  return RELEASE_ID.test(id) && !id.includes("..") ? undefined : RELEASE_RULE;
}

const releaseId = z.string({ error: RELEASE_RULE }).refine((id) => releaseIdProblem(id) === undefined, { error: RELEASE_RULE });
const percent = z
  .number({ error: "an integer from 0 to 100" })
  .int({ error: "an integer from 0 to 100" })
  .min(0, { error: "an integer from 0 to 100" })
  .max(100, { error: "an integer from 0 to 100" });
const fraction = z.number({ error: "a number from 0 to 1" }).min(0, { error: "a number from 0 to 1" }).max(1, { error: "a number from 0 to 1" });
const ratio = z.number({ error: "a number from 1 to 10" }).min(1, { error: "a number from 1 to 10" }).max(10, { error: "a number from 1 to 10" });
const urlPath = z.string({ error: "a path starting with '/'" }).regex(/^\/[^\s]*$/, { error: "a path starting with '/'" });

const slotState = z.strictObject({ release: releaseId.optional() }, { error: "an object { release?: <release id> }" });

export const rolloutSchema = z.strictObject(
  {
    /** Green-side (new slot) weights in percent; strictly increasing and ending at 100. */
    steps: z
      .array(z.number({ error: "each step an integer from 1 to 100" }).int({ error: "each step an integer from 1 to 100" }).min(1, { error: "each step an integer from 1 to 100" }).max(100, { error: "each step an integer from 1 to 100" }), { error: "a list of integers from 1 to 100" })
      .min(1, { error: "at least one step" })
      .refine((s) => s.every((w, i) => i === 0 || w > s[i - 1]), { error: "steps strictly increasing" })
      .refine((s) => s[s.length - 1] === 100, { error: "the last step must be 100" })
      .default([10, 25, 50, 75, 100]),
    /** Seconds to probe at each step before judging. @default 60 */
    bakeSeconds: z.number({ error: "a number of seconds from 0 to 3600" }).min(0, { error: "a number of seconds from 0 to 3600" }).max(3600, { error: "a number of seconds from 0 to 3600" }).default(60),
    /** Probe requests per slot per step (spread over the bake). @default 200 */
    probesPerStep: z.number({ error: "an integer from 1 to 100000" }).int({ error: "an integer from 1 to 100000" }).min(1, { error: "an integer from 1 to 100000" }).max(100_000, { error: "an integer from 1 to 100000" }).default(200),
    /** Fewer samples than this for a slot makes the step inconclusive. @default 20 */
    minSamples: z.number({ error: "an integer from 1 to 100000" }).int({ error: "an integer from 1 to 100000" }).min(1, { error: "an integer from 1 to 100000" }).max(100_000, { error: "an integer from 1 to 100000" }).default(20),
    /** Absolute error-rate limit for the new slot. @default 0.05 */
    maxErrorRate: fraction.default(0.05),
    /** New slot's error rate may be at most this times the stable slot's. @default 2 */
    maxErrorRatio: ratio.default(2),
    /** New slot's p95 latency may be at most this times the stable slot's. @default 1.5 */
    maxP95Ratio: ratio.default(1.5),
    /** What an inconclusive step counts as. @default "fail" */
    inconclusive: z.enum(["fail", "pass"], { error: "'fail' or 'pass'" }).default("fail"),
    /** Failing checks in a row (each a fresh bake at the same weight) before a step rolls back. @default 2 */
    failureThreshold: z.number({ error: "an integer from 1 to 10" }).int({ error: "an integer from 1 to 10" }).min(1, { error: "an integer from 1 to 10" }).max(10, { error: "an integer from 1 to 10" }).default(2),
    /** Confidence each statistical rule needs before it reports an excess (1 - its false-alarm rate per check). @default 0.99 */
    confidence: z.number({ error: "a number from 0.5 to 0.9999" }).min(0.5, { error: "a number from 0.5 to 0.9999" }).max(0.9999, { error: "a number from 0.5 to 0.9999" }).default(0.99),
    /** Fewest errors (or transport failures) a rule needs before it may fail a check. @default 5 */
    minErrors: z.number({ error: "an integer from 1 to 1000" }).int({ error: "an integer from 1 to 1000" }).min(1, { error: "an integer from 1 to 1000" }).max(1000, { error: "an integer from 1 to 1000" }).default(5),
    /** Absolute limit for probes that got no response at all (judged apart from HTTP errors, on no slot). @default 0.01 */
    maxTransportErrorRate: fraction.default(0.01),
  },
  { error: "an object with steps, bakeSeconds, probesPerStep, minSamples, maxErrorRate, maxErrorRatio, maxP95Ratio, inconclusive, failureThreshold, confidence, minErrors, maxTransportErrorRate" },
);

const smokeCheck = z.strictObject(
  {
    path: urlPath,
    status: z.number({ error: "an HTTP status from 100 to 599" }).int({ error: "an HTTP status from 100 to 599" }).min(100, { error: "an HTTP status from 100 to 599" }).max(599, { error: "an HTTP status from 100 to 599" }).default(200),
    contains: z.string().optional(),
  },
  { error: "an object { path, status?, contains? }" },
);

/** The real-browser gate (automation/browserGate.ts): a headless Chromium loads the candidate, embedded on another
 * origin, before any viewer traffic, and the stable slot in the same run. */
export const browserGateSchema = z.strictObject(
  {
    /** @default true */
    enabled: z.boolean({ error: "true or false" }).default(true),
    /** What the widget renders once its script ran (the example widget adds this class). @default ".picasso-widget" */
    selector: z.string({ error: "a CSS selector" }).min(1, { error: "a CSS selector" }).max(200, { error: "a CSS selector of at most 200 characters" }).default(".picasso-widget"),
    /** Loads per slot; medians are judged. @default 3 */
    loads: z.number({ error: "an integer from 1 to 20" }).int({ error: "an integer from 1 to 20" }).min(1, { error: "an integer from 1 to 20" }).max(20, { error: "an integer from 1 to 20" }).default(3),
    /** Each wait (navigation, render) gives up after this. @default 15000 */
    timeoutMs: z.number({ error: "an integer from 1000 to 120000" }).int({ error: "an integer from 1000 to 120000" }).min(1000, { error: "an integer from 1000 to 120000" }).max(120_000, { error: "an integer from 1000 to 120000" }).default(15_000),
    /** A candidate median this much worse than the stable slot's fails (0.5: 50 percent worse). @default 0.5 */
    maxRegression: z.number({ error: "a number from 0 to 10" }).min(0, { error: "a number from 0 to 10" }).max(10, { error: "a number from 0 to 10" }).default(0.5),
    /** Run the gate again after each traffic step's judgement too, not only before any viewer traffic. @default false */
    everyStep: z.boolean({ error: "true or false" }).default(false),
  },
  { error: "an object with enabled, selector, loads, timeoutMs, maxRegression, everyStep" },
);

const verificationSchema = z.strictObject(
  {
    healthPath: urlPath.default("/version.json"),
    smoke: z.array(smokeCheck, { error: "a list of { path, status?, contains? }" }).default([{ path: "/", status: 200 }]),
    /** Check HSTS/nosniff/frame-options/referrer-policy on every probe. @default true */
    securityHeaders: z.boolean({ error: "true or false" }).default(true),
    browserGate: browserGateSchema.default(browserGateSchema.parse({})),
  },
  { error: "an object with healthPath, smoke, securityHeaders, browserGate" },
);

// An origin as browsers send it in the Origin header: scheme, lower-case host, optional port, no path.
// https://developer.mozilla.org/docs/Web/HTTP/Headers/Origin
const ORIGIN = /^https?:\/\/[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(?::\d{1,5})?$/;
// A CSP host source may also start with "*." (any subdomain). https://www.w3.org/TR/CSP3/#grammardef-host-source
const HOST_SOURCE = /^https?:\/\/(?:\*\.)?[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(?::\d{1,5})?$/;
const origins = (pattern: RegExp, rule: string) =>
  z
    .array(z.string({ error: rule }).refine((o) => o === "*" || pattern.test(o), { error: rule }), { error: `a list of ${rule}` })
    .min(1, { error: `at least one of ${rule}` })
    .max(50, { error: "at most 50 origins" })
    .refine((list) => !list.includes("*") || list.length === 1, { error: '"*" alone, or a list of origins without it' });

/** How customers' pages embed the widget (issue 13): who may frame it and read its assets, its cookie, viewers' caching. */
export const embeddingSchema = z.strictObject(
  {
    /** Origins whose pages may fetch the widget's assets (CORS, Access-Control-Allow-Origin). @default ["*"] */
    corsOrigins: origins(ORIGIN, '"*", or origins such as https://customer.example (scheme, lower-case host, optional port)').default(["*"]),
    /** Origins whose pages may frame the widget (CSP frame-ancestors, instead of X-Frame-Options). @default ["*"] */
    frameAncestors: origins(HOST_SOURCE, '"*", or origins such as https://customer.example or https://*.customer.example').default(["*"]),
    /** The stickiness cookie's SameSite: "None" lets a customer's page send it (with Secure and Partitioned). @default "None" */
    cookieSameSite: z.enum(["None", "Lax", "Strict"], { error: "'None', 'Lax' or 'Strict'" }).default("None"),
    /** Partitioned (CHIPS): the cookie is kept per top-level site, so browsers blocking third-party cookies may still keep it. @default true */
    cookiePartitioned: z.boolean({ error: "true or false" }).default(true),
    /** Seconds a viewer may reuse an entry point's answer (the redirect to a release): 0 revalidates every time. @default 0 */
    entryMaxAgeSeconds: z.number({ error: "an integer from 0 to 86400" }).int({ error: "an integer from 0 to 86400" }).min(0, { error: "an integer from 0 to 86400" }).max(86_400, { error: "an integer from 0 to 86400" }).default(0),
  },
  { error: "an object with corsOrigins, frameAncestors, cookieSameSite, cookiePartitioned, entryMaxAgeSeconds" },
);

const githubLogin = z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/, { error: "GitHub logins" });
const approvalsSchema = z
  .strictObject(
    {
      /** Roles whose approval a promotion into this stack requires. */
      required: z.array(z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, { error: "role names of a-z 0-9 -" }), { error: "a list of role names" }).default([]),
      /** Who holds each role (GitHub logins). */
      holders: z.record(z.string(), z.array(githubLogin, { error: "a list of GitHub logins" }), { error: "a map of role to GitHub logins" }).default({}),
    },
    { error: "an object { required: [role], holders: { role: [login] } }" },
  )
  .refine((a) => a.required.every((role) => (a.holders[role] ?? []).length > 0), { error: "every required role must have at least one holder" });

const stackConfigSchema = z
  .strictObject({
    environment: z.enum(ENVIRONMENTS, { error: `one of ${ENVIRONMENTS.join(", ")}` }),
    slots: z.strictObject({ blue: slotState, green: slotState }, { error: "an object { blue: { release }, green: { release } }" }),
    stable: z.enum(SLOTS, { error: "'blue' or 'green'" }),
    weights: z
      .strictObject({ blue: percent, green: percent }, { error: "an object { blue, green } of integers summing to 100" })
      .refine((w) => w.blue + w.green === 100, { error: "integers summing to 100" }),
    /** The routing revision; only the driver raises it (a lower one means a stale stack file). */
    revision: z.number({ error: "a non-negative integer" }).int({ error: "a non-negative integer" }).min(0, { error: "a non-negative integer" }).default(0),
    rollout: rolloutSchema.default(rolloutSchema.parse({})),
    verification: verificationSchema.default(verificationSchema.parse({})),
    approvals: approvalsSchema.default({ required: [], holders: {} }),
    embedding: embeddingSchema.default(embeddingSchema.parse({})),
    domain: z.string().regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, { error: "a lower-case DNS name such as widget.example.com" }).optional(),
    // CloudFront only accepts ACM certificates from us-east-1.
    // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cnames-and-https-requirements.html
    certificateArn: z.string().regex(/^arn:aws:acm:us-east-1:\d{12}:certificate\/[0-9a-f-]{36}$/, { error: "an ACM certificate ARN in us-east-1" }).optional(),
    /** Releases kept per slot bucket (those still referenced are always kept). @default 5 */
    retention: z.number({ error: "an integer from 2 to 100" }).int({ error: "an integer from 2 to 100" }).min(2, { error: "an integer from 2 to 100" }).max(100, { error: "an integer from 2 to 100" }).default(5),
    /** Slack-compatible webhooks notified on completion, revert and rollback. */
    webhooks: z.array(z.string().regex(/^https?:\/\/\S+$/, { error: "http(s) URLs" }), { error: "a list of http(s) URLs" }).default([]),
  }, { error: "an object" })
  .superRefine((c, ctx) => {
    // A fresh stack's stable slot may have no release yet (it answers 503); traffic never shifts to an empty slot.
    const idle = otherSlot(c.stable);
    if (c.weights[idle] > 0 && !c.slots[idle].release) {
      ctx.addIssue({ code: "custom", path: ["weights", idle], message: `0 while slots.${idle} has no release` });
    }
    if ((c.domain === undefined) !== (c.certificateArn === undefined)) {
      ctx.addIssue({ code: "custom", path: [c.domain === undefined ? "domain" : "certificateArn"], message: "set together with " + (c.domain === undefined ? "certificateArn" : "domain") });
    }
  });

export type StackConfig = z.infer<typeof stackConfigSchema>;
export type RolloutConfig = StackConfig["rollout"];
export type EmbeddingConfig = StackConfig["embedding"];

/** What the router functions give viewers (infra/routerCode.ts bakes it in): the cookie's attributes, an entry point's Cache-Control. */
export function viewerSettings(embedding: EmbeddingConfig): { cookie: string; entry: string } {
  // Secure always: the distribution redirects HTTP to HTTPS, SameSite=None requires it, and so does Partitioned.
  // https://developer.mozilla.org/docs/Web/HTTP/Headers/Set-Cookie#partitioned
  const cookie = `Path=/; Max-Age=86400; Secure; SameSite=${embedding.cookieSameSite}${embedding.cookiePartitioned ? "; Partitioned" : ""}`;
  // private: the answer depends on the viewer's cookie, so no shared cache in front of CloudFront may keep it.
  const entry = embedding.entryMaxAgeSeconds === 0 ? "private, no-cache" : `private, max-age=${embedding.entryMaxAgeSeconds}`;
  return { cookie, entry };
}

/** The config keys the schema reads, in the `picasso-widget` namespace (previewToken is read apart: it is a secret). */
const CONFIG_KEYS = Object.keys(stackConfigSchema.shape ?? {}) as (keyof StackConfig)[];

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const p of path) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

function show(v: unknown): string {
  return v === undefined ? "(missing)" : JSON.stringify(v);
}

/**
 * Validates raw config values (already JSON-decoded) for the stack `stackName`.
 * Throws a ConfigError naming the first bad key, its value and what is allowed.
 */
export function parseStackConfig(raw: Record<string, unknown>, stackName: string, opts: { hasPreviewToken: boolean }): StackConfig {
  const result = stackConfigSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue.path.map(String);
    let shown = issue.path;
    // Unknown keys are reported on the key itself, not on its parent object.
    if (issue.code === "unrecognized_keys") {
      path.push(issue.keys[0]);
      shown = [...issue.path, issue.keys[0]];
    }
    const key = `${CONFIG_NAMESPACE}:${path.join(".") || "(root)"}`;
    const allowed =
      issue.code !== "unrecognized_keys" ? issue.message : issue.path.length === 0 ? `a known key (${CONFIG_KEYS.join(", ")}, previewToken)` : "no such key here";
    throw new ConfigError(`stack ${stackName}: ${key} = ${show(valueAt(raw, shown))}: expected ${allowed}`);
  }
  const config = result.data;
  const envOfStack = stackName.split("/").pop() ?? stackName;
  // A stack's environment is its name, or the prefix of "<environment>-<suffix>" (local stand-ins such as local-staging).
  if (envOfStack !== config.environment && !envOfStack.startsWith(`${config.environment}-`) && !(config.environment === "local" && envOfStack.startsWith("local"))) {
    throw new ConfigError(`stack ${stackName}: ${CONFIG_NAMESPACE}:environment = ${show(config.environment)}: expected the stack's environment (${envOfStack})`);
  }
  if (config.environment !== "local" && !opts.hasPreviewToken) {
    throw new ConfigError(
      `stack ${stackName}: ${CONFIG_NAMESPACE}:previewToken = (missing): expected a secret of at least 16 characters (pulumi config set --secret previewToken <token> --stack ${stackName})`,
    );
  }
  return config;
}

/** Minimum preview-token length: it guards an unlisted route to an unreleased slot. */
const MIN_PREVIEW_TOKEN_LENGTH = 16;

export function checkPreviewToken(token: string | undefined, stackName: string): void {
  if (token !== undefined && token.length < MIN_PREVIEW_TOKEN_LENGTH) {
    // Never echo a secret: say only how long it is.
    throw new ConfigError(`stack ${stackName}: ${CONFIG_NAMESPACE}:previewToken = (secret, ${token.length} characters): expected a secret of at least ${MIN_PREVIEW_TOKEN_LENGTH} characters`);
  }
}

/**
 * Decodes a Pulumi ConfigMap (automation API `getAllConfig()` shape: values are strings, objects as JSON)
 * into the raw object the schema reads. Keys outside the namespace are ignored.
 */
export function rawFromConfigMap(map: Record<string, { value: string; secret?: boolean }>): { raw: Record<string, unknown>; previewToken?: string } {
  const raw: Record<string, unknown> = {};
  let previewToken: string | undefined;
  for (const [fullKey, { value }] of Object.entries(map)) {
    const [ns, key] = fullKey.split(":", 2);
    if (ns !== CONFIG_NAMESPACE || key === undefined) continue;
    if (key === "previewToken") {
      previewToken = value;
      continue;
    }
    raw[key] = decodeConfigValue(value);
  }
  return { raw, previewToken };
}

/** Pulumi config values are strings; objects, arrays, numbers and booleans arrive JSON-encoded. */
function decodeConfigValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}
