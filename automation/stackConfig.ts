// Reading and writing the stack config through the port. The driver only ever writes the routing keys
// (slots, stable, weights, revision); a revert writes back the exact pre-rollout ConfigMap under a new revision.
import { CONFIG_NAMESPACE, ConfigError, checkPreviewToken, parseStackConfig, rawFromConfigMap, type StackConfig } from "../infra/config";
import { UsageError } from "./errors";
import type { ConfigMap, DeploymentStack } from "./port";

export interface LiveConfig {
  config: StackConfig;
  previewToken?: string;
  map: ConfigMap;
}

export function parseConfigMap(map: ConfigMap, stackName: string): LiveConfig {
  const { raw, previewToken } = rawFromConfigMap(map);
  try {
    checkPreviewToken(previewToken, stackName);
    return { config: parseStackConfig(raw, stackName, { hasPreviewToken: previewToken !== undefined }), previewToken, map };
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

export async function readLiveConfig(stack: DeploymentStack): Promise<LiveConfig> {
  return parseConfigMap(await stack.getAllConfig(), stack.name);
}

const key = (name: string) => `${CONFIG_NAMESPACE}:${name}`;

/** Writes the routing keys of `next` as JSON values: the program decodes every value of its namespace as JSON. */
export async function writeRouting(stack: DeploymentStack, next: StackConfig): Promise<void> {
  await stack.setAllConfig({
    [key("slots")]: { value: JSON.stringify(next.slots), secret: false },
    [key("stable")]: { value: next.stable, secret: false },
    [key("weights")]: { value: JSON.stringify(next.weights), secret: false },
    [key("revision")]: { value: String(next.revision), secret: false },
  });
}

/**
 * Makes the stack config exactly `target`: same values and secret flags, keys added since removed. `current` is the
 * config as just read, when the caller has it (one CLI call less).
 */
export async function restoreConfig(stack: DeploymentStack, target: ConfigMap, current?: ConfigMap): Promise<void> {
  current ??= await stack.getAllConfig();
  for (const k of Object.keys(current)) if (!(k in target)) await stack.removeConfig(k);
  await stack.setAllConfig(target);
}

/** `map` with the routing revision replaced: every routing change carries a revision above every one deployed. */
export function withRevision(map: ConfigMap, revision: number): ConfigMap {
  return { ...map, [key("revision")]: { value: String(revision), secret: false } };
}

/**
 * An earlier update's config with the secrets of the live stack file. The driver never changes a secret, so the live
 * value is the current one: a rotated (leaked) preview token must not come back from history, and after a
 * secrets-provider change the CLI prints ERROR_UNABLE_TO_DECRYPT for an old update's secrets
 * (pkg/cmd/pulumi/stack/stack_history.go), which must never become a value.
 */
export function syncSecretsFromLive(earlier: ConfigMap, live: ConfigMap): ConfigMap {
  // The preview token counts as a secret even where a stack keeps it in plain text (the local stack file does).
  const fromLive = (k: string, v: { secret?: boolean }) => v.secret === true || k === key("previewToken");
  const out: ConfigMap = {};
  for (const [k, v] of Object.entries(earlier)) if (!fromLive(k, v)) out[k] = v;
  for (const [k, v] of Object.entries(live)) if (fromLive(k, v)) out[k] = v;
  return out;
}

/** The routing keys: the only keys a rollback restores from an earlier update. */
export const ROUTING_KEYS = ["slots", "stable", "weights"].map(key);
