// The stale-stack-file guard (design section 5). Only the driver raises the routing revision; a `pulumi up`
// from an older stack file carries a lower one and would move traffic backwards. The dynamic provider's
// check() sees the revision in state (olds) and the requested one (news) and fails the update before any
// routing change is applied (the router depends on this resource).
// https://www.pulumi.com/docs/iac/concepts/resources/dynamic-providers/
import * as pulumi from "@pulumi/pulumi";
import { revisionProblem } from "../routing";

export interface RevisionGuardInputs {
  /** Stack name, for the `pulumi config refresh --stack <name>` hint. */
  stack: string;
  /** The routing revision from stack config. */
  revision: number;
}

/**
 * The guard's rule, shared with the local engine: a lower revision than the deployed one is refused, with no exception.
 * Every routing change the driver makes (reverts and rollbacks included) carries a revision above every one ever
 * deployed, so a stack file refreshed mid-rollout can never pass after a revert.
 */
export function checkRevision(olds: Partial<RevisionGuardInputs>, news: RevisionGuardInputs): pulumi.dynamic.CheckResult<RevisionGuardInputs> {
  const reason = revisionProblem(olds.revision, news.revision, news.stack);
  return reason === undefined ? { inputs: news } : { inputs: news, failures: [{ property: "revision", reason }] };
}

const provider: pulumi.dynamic.ResourceProvider<RevisionGuardInputs, RevisionGuardInputs> = {
  async check(olds, news) {
    return checkRevision(olds, news);
  },
  async diff(_id, olds, news) {
    return { changes: olds.revision !== news.revision || olds.stack !== news.stack };
  },
  async create(inputs) {
    return { id: `revision-guard-${inputs.stack}`, outs: inputs };
  },
  async update(_id, _olds, news) {
    return { outs: news };
  },
};

/** Arguments of {@link RevisionGuard}. */
export interface RevisionGuardArgs {
  stack: pulumi.Input<string>;
  revision: pulumi.Input<number>;
}

export class RevisionGuard extends pulumi.dynamic.Resource {
  public declare readonly revision: pulumi.Output<number>;

  constructor(name: string, args: RevisionGuardArgs, opts?: pulumi.CustomResourceOptions) {
    super(provider, name, { stack: args.stack, revision: args.revision }, opts, "picasso-widget", "RevisionGuard");
  }
}
