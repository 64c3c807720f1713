// The narrow port the driver depends on: exactly the methods it uses on the automation API's `Stack`.
// Its one implementation is the SDK's `Stack` (`Stack.select`, for local stacks too, through the Pulumi CLI stand-in);
// the port stays as a seam for unit tests that need a stack without a CLI.
import type { ConfigMap, OutputMap, Stack, UpOptions, UpResult, UpdateSummary } from "@pulumi/pulumi/automation";

export interface DeploymentStack {
  readonly name: string;
  getAllConfig(): Promise<ConfigMap>;
  setAllConfig(config: ConfigMap, path?: boolean): Promise<void>;
  removeConfig(key: string, path?: boolean): Promise<void>;
  up(opts?: UpOptions): Promise<UpResult>;
  history(pageSize?: number, page?: number, showSecrets?: boolean): Promise<UpdateSummary[]>;
  outputs(): Promise<OutputMap>;
}

// Compile-time proof that the real automation-API Stack satisfies the port.
type Satisfies<T extends DeploymentStack> = T;
export type RealStackIsADeploymentStack = Satisfies<Stack>;

export type { ConfigMap, OutputMap, UpOptions, UpResult, UpdateSummary };
