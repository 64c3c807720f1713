// The routing record: the one KeyValueStore value the viewer-request function reads on every request.
// Weights change by rewriting this value (seconds to propagate, no function republish).
import { createHash } from "node:crypto";
import type { Slot, StackConfig } from "./config";

/** The KVS key holding the record. */
export const ROUTING_KEY = "routing";

/** KeyValueStore values are limited to 1 KB.
 * https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-keyvaluestores */
export const MAX_ROUTING_RECORD_CHARS = 1024;

export interface RoutingRecord {
  /** Routing revision (raised only by the driver). */
  rev: number;
  stable: Slot;
  /** Percent of first-time viewers per slot; sums to 100. */
  weights: Record<Slot, number>;
  /** Release id per slot ("" when the slot holds none). */
  releases: Record<Slot, string>;
  /** SHA-256 (hex) of the preview token; "" disables the preview route. */
  preview: string;
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

export function routingRecord(config: StackConfig, previewTokenHash: string): RoutingRecord {
  return {
    rev: config.revision,
    stable: config.stable,
    weights: { blue: config.weights.blue, green: config.weights.green },
    releases: { blue: config.slots.blue.release ?? "", green: config.slots.green.release ?? "" },
    preview: previewTokenHash,
  };
}

/**
 * The record as stored: space-separated `label=value` fields in this fixed order, for example
 * `rev=7 stable=blue weight.blue=75 weight.green=25 release.blue=1.4.2 release.green=1.5.0 preview=<sha256 hex>`
 * (an empty release or preview is an empty value). Plain text rather than JSON because the viewer-request function
 * decodes it on every request: one regular-expression match costs about a third of JSON.parse (bench/README.md), and
 * the labels keep it readable for a hand edit (docs/RUNBOOK.md). The values are release ids (A-Z a-z 0-9 . _ -, as
 * config validation allows) and a hex digest, and the pattern admits only those characters: a hand edit with a stray
 * space, slash or other character makes the router fall back. It does not repeat the rest of the release-id rule
 * (length, first character, no ".."); the encoder is only given validated ids. (These classes also match faster than
 * \S, which has to test for Unicode spaces.)
 */
/** The pattern the viewer-request function matches (infra/router/viewer-request.js cannot import it; a test keeps the two equal). */
export const ROUTING_RECORD_PATTERN = /^rev=(\d+) stable=(blue|green) weight\.blue=(\d+) weight\.green=(\d+) release\.blue=([\w.-]*) release\.green=([\w.-]*) preview=(\w*)$/;

export function encodeRoutingRecord(record: RoutingRecord): string {
  const { rev, stable, weights, releases, preview } = record;
  const spaced = [releases.blue, releases.green, preview].find((v) => /\s/.test(v));
  if (spaced !== undefined) throw new Error(`routing record value "${spaced}" contains whitespace; the record is space-separated`);
  const text = `rev=${rev} stable=${stable} weight.blue=${weights.blue} weight.green=${weights.green} release.blue=${releases.blue} release.green=${releases.green} preview=${preview}`;
  if (!ROUTING_RECORD_PATTERN.test(text)) throw new Error(`routing record "${text}" is not in the format the viewer-request function reads`);
  if (text.length > MAX_ROUTING_RECORD_CHARS) {
    throw new Error(`routing record is ${text.length} characters; CloudFront KeyValueStore values are limited to ${MAX_ROUTING_RECORD_CHARS}`);
  }
  return text;
}

/** The inverse of encodeRoutingRecord; undefined for text that is not a record (the router then serves its fallback). */
export function decodeRoutingRecord(text: string): RoutingRecord | undefined {
  const m = ROUTING_RECORD_PATTERN.exec(text);
  if (m === null) return undefined;
  return { rev: Number(m[1]), stable: m[2] as Slot, weights: { blue: Number(m[3]), green: Number(m[4]) }, releases: { blue: m[5], green: m[6] }, preview: m[7] };
}

/**
 * The stale-stack-file guard: a `pulumi up` from a stack file older than what is deployed would move
 * traffic backwards. The revision in the file must not be lower than the deployed one.
 * Returns the failure message, or undefined when the new revision is acceptable.
 */
export function revisionProblem(deployed: number | undefined, requested: number, stackName: string): string | undefined {
  if (deployed === undefined || requested >= deployed) return undefined;
  return (
    `picasso-widget:revision = ${requested} is older than the deployed routing revision ${deployed}: ` +
    `this stack file is stale. Run \`pulumi config refresh --stack ${stackName}\` (or use \`bluegreen\`), then retry.`
  );
}
