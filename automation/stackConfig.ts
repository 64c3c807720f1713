// Reading and writing the stack config through the port. The driver only ever writes the routing keys
// (slots, stable, weights, revision); restoring writes back an exact earlier ConfigMap.
import { CONFIG_NAMESPACE, ConfigError, checkPreviewToken, parseStackConfig, rawFromConfigMap, type StackConfig } from "../infra/config";
import { RESTORE_REVISION_ENV } from "../infra/routing";
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

/** Makes the stack config exactly `target`: same values and secret flags, keys added since removed. */
export async function restoreConfig(stack: DeploymentStack, target: ConfigMap): Promise<void> {
  const current = await stack.getAllConfig();
  for (const k of Object.keys(current)) if (!(k in target)) await stack.removeConfig(k);
  await stack.setAllConfig(target);
}

/** Runs `fn` with the program's stale-revision guard told that lowering the revision to `revision` is deliberate. */
export async function whileRestoring<T>(revision: number, fn: () => Promise<T>): Promise<T> {
  const before = process.env[RESTORE_REVISION_ENV];
  process.env[RESTORE_REVISION_ENV] = String(revision);
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env[RESTORE_REVISION_ENV];
    else process.env[RESTORE_REVISION_ENV] = before;
  }
}
