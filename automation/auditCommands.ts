// `bluegreen audit verify --stack S`: checks a stack's audit trail end to end and names the first bad line.
import { S3Client } from "@aws-sdk/client-s3";
import type { Argv, CommandModule } from "yargs";
import { AuditLog, S3AuditStore } from "./audit";
import { OperatorNeededError, UsageError } from "./errors";
import { isLocalStack, localAuditLog } from "./targets";

interface VerifyArgs {
  stack: string;
  bucket?: string;
}

function auditLogOf(args: VerifyArgs): AuditLog {
  if (isLocalStack(args.stack)) return localAuditLog(args.stack);
  if (!args.bucket) {
    throw new UsageError(`--bucket = (missing): expected the audit bucket of stack ${args.stack} (an AWS stack keeps its audit log in S3)`);
  }
  return new AuditLog(new S3AuditStore(new S3Client({}), args.bucket, args.stack));
}

async function verifyAudit(args: VerifyArgs): Promise<number> {
  const log = auditLogOf(args);
  const verdict = await log.verify();
  // A tampered trail is not bad input and nothing rolled back: a person has to find out what changed it.
  if (!verdict.ok) {
    throw new OperatorNeededError(
      `audit log ${log.store.location}: line ${verdict.line}: ${verdict.reason}; see docs/RUNBOOK.md, "The audit log does not verify"`,
    );
  }
  process.stdout.write(`audit log ${log.store.location}: ${verdict.count} records, chain intact\n`);
  return verdict.count;
}

const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: "verify",
  describe: "Check that no audit record was edited, removed or reordered",
  builder: (y: Argv) =>
    y
      .option("stack", { type: "string", demandOption: true, describe: "The stack whose audit log to check" })
      .option("bucket", { type: "string", describe: "The audit bucket (AWS stacks; local stacks use the state folder)" }),
  handler: async (args) => {
    await verifyAudit(args);
  },
};

export const auditCommand: CommandModule = {
  command: "audit",
  describe: "The audit trail of deploys, promotions, approvals and rollbacks",
  builder: (y: Argv) => y.command(verifyCommand).demandCommand(1, "name an audit command: verify"),
  handler: () => undefined,
};
