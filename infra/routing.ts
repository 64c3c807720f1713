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

export function encodeRoutingRecord(record: RoutingRecord): string {
  const text = JSON.stringify(record);
  if (text.length > MAX_ROUTING_RECORD_CHARS) {
    throw new Error(`routing record is ${text.length} characters; CloudFront KeyValueStore values are limited to ${MAX_ROUTING_RECORD_CHARS}`);
  }
  return text;
}

/**
 * Set by the driver (through the workspace's environment, which the engine passes to the program and its dynamic
 * providers) while it deliberately restores an older config: a revert or a rollback from history. Its value is the
 * revision being restored; nothing else may lower the revision.
 */
export const RESTORE_REVISION_ENV = "BLUEGREEN_RESTORE_REVISION";

/**
 * The stale-stack-file guard: a `pulumi up` from a stack file older than what is deployed would move
 * traffic backwards. The revision in the file must not be lower than the deployed one.
 * Returns the failure message, or undefined when the new revision is acceptable.
 */
export function revisionProblem(deployed: number | undefined, requested: number, stackName: string, restoring: string | undefined): string | undefined {
  if (deployed === undefined || requested >= deployed || restoring === String(requested)) return undefined;
  return (
    `picasso-widget:revision = ${requested} is older than the deployed routing revision ${deployed}: ` +
    `this stack file is stale. Run \`pulumi config refresh --stack ${stackName}\` (or use \`bluegreen\`), then retry.`
  );
}
