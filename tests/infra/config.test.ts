// Bad stack config fails before anything is declared, with one message naming the key, the value and
// what is allowed. The first group goes through the real program (runProgram), the bulk through the schema.
import { expect } from "chai";
import { ProgramError, runProgram } from "../../automation/local/program";
import type { ConfigMap } from "../../automation/port";
import { ConfigError, parseStackConfig } from "../../infra/config";

const TOKEN = "staging-preview-token-0b9c8d7e6f5a";

/** A valid mid-rollout staging config (raw values, as the program decodes them). */
function validRaw(): Record<string, unknown> {
  return {
    environment: "staging",
    slots: { blue: { release: "r1" }, green: { release: "r2" } },
    stable: "blue",
    weights: { blue: 90, green: 10 },
    revision: 3,
    rollout: { steps: [10, 25, 50, 100], bakeSeconds: 30, maxErrorRate: 0.02 },
  };
}

function configMap(raw: Record<string, unknown>, previewToken?: string): ConfigMap {
  const map: ConfigMap = { "aws:region": { value: "us-east-1", secret: false } };
  for (const [key, value] of Object.entries(raw)) map[`picasso-widget:${key}`] = { value: typeof value === "string" ? value : JSON.stringify(value), secret: false };
  if (previewToken !== undefined) map["picasso-widget:previewToken"] = { value: previewToken, secret: true };
  return map;
}

/** Runs the program and returns its error; fails the test if the program succeeds. */
async function programError(stackName: string, config: ConfigMap): Promise<ProgramError> {
  const outcome = await runProgram({ stackName, config }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(outcome, "the program should have failed").to.be.instanceOf(ProgramError);
  return outcome as ProgramError;
}

describe("stack config rejected by the program before any resource is declared", function () {
  it("accepts the valid baseline (so the failures below are the bad values' doing)", async function () {
    const result = await runProgram({ stackName: "staging", config: configMap(validRaw(), TOKEN) });
    expect(result.resources.length).to.be.greaterThan(0);
  });

  const cases: { title: string; stack: string; config: () => ConfigMap; message: RegExp }[] = [
    {
      title: "weights summing to 99",
      stack: "staging",
      config: () => configMap({ ...validRaw(), weights: { blue: 90, green: 9 } }, TOKEN),
      message: /^stack staging: picasso-widget:weights = \{"blue":90,"green":9\}: expected integers summing to 100$/,
    },
    {
      title: "an unknown key",
      stack: "staging",
      config: () => configMap({ ...validRaw(), colour: "teal" }, TOKEN),
      message: /^stack staging: picasso-widget:colour = "teal": expected a known key \(environment, slots, .*previewToken\)$/,
    },
    {
      title: "a missing preview token on a non-local stack",
      stack: "staging",
      config: () => configMap(validRaw()),
      message: /^stack staging: picasso-widget:previewToken = \(missing\): expected a secret of at least 16 characters \(pulumi config set --secret previewToken <token> --stack staging\)$/,
    },
    {
      title: "an environment that does not match the stack name",
      stack: "staging",
      config: () => configMap({ ...validRaw(), environment: "production" }, TOKEN),
      message: /^stack staging: picasso-widget:environment = "production": expected the stack's environment \(staging\)$/,
    },
    {
      title: "a preview token that is too short (without echoing it)",
      stack: "staging",
      config: () => configMap(validRaw(), "hunter2"),
      message: /^stack staging: picasso-widget:previewToken = \(secret, 7 characters\): expected a secret of at least 16 characters$/,
    },
  ];

  for (const c of cases) {
    it(`fails on ${c.title}, with no resource declared`, async function () {
      const err = await programError(c.stack, c.config());
      expect(err.programErrorName).to.equal("ConfigError");
      expect(err.message).to.match(c.message);
      expect(err.message).to.not.contain("hunter2");
      expect(err.declaredResources).to.equal(0);
    });
  }
});

describe("stack config rejected by the schema", function () {
  const cases: { title: string; change: (raw: Record<string, unknown>) => void; message: RegExp }[] = [
    { title: "a weight of 101", change: (r) => (r.weights = { blue: 101, green: -1 }), message: /picasso-widget:weights\.blue = 101: expected an integer from 0 to 100$/ },
    { title: "a fractional weight", change: (r) => (r.weights = { blue: 89.5, green: 10.5 }), message: /picasso-widget:weights\.blue = 89\.5: expected an integer from 0 to 100$/ },
    { title: "stable: red", change: (r) => (r.stable = "red"), message: /picasso-widget:stable = "red": expected 'blue' or 'green'$/ },
    {
      title: "steps not increasing",
      change: (r) => (r.rollout = { steps: [10, 50, 25, 100] }),
      message: /picasso-widget:rollout\.steps = \[10,50,25,100\]: expected steps strictly increasing$/,
    },
    { title: "a step above 100", change: (r) => (r.rollout = { steps: [10, 150] }), message: /picasso-widget:rollout\.steps\.1 = 150: expected each step an integer from 1 to 100$/ },
    {
      title: "a release id containing /",
      change: (r) => (r.slots = { blue: { release: "r1" }, green: { release: "r2/evil" } }),
      message: /picasso-widget:slots\.green\.release = "r2\/evil": expected 1-64 characters of A-Z a-z 0-9 \. _ -, starting with a letter or digit, without '\.\.'$/,
    },
    {
      title: "a release id containing ..",
      change: (r) => (r.slots = { blue: { release: "r1" }, green: { release: "r2..r1" } }),
      message: /picasso-widget:slots\.green\.release = "r2\.\.r1": expected 1-64 characters .* without '\.\.'$/,
    },
    { title: "maxErrorRate 1.5", change: (r) => (r.rollout = { maxErrorRate: 1.5 }), message: /picasso-widget:rollout\.maxErrorRate = 1\.5: expected a number from 0 to 1$/ },
    { title: "a negative bakeSeconds", change: (r) => (r.rollout = { bakeSeconds: -5 }), message: /picasso-widget:rollout\.bakeSeconds = -5: expected a number of seconds from 0 to 3600$/ },
    { title: "failureThreshold 0", change: (r) => (r.rollout = { failureThreshold: 0 }), message: /picasso-widget:rollout\.failureThreshold = 0: expected an integer from 1 to 10$/ },
    { title: "confidence 1 (no test could ever fail)", change: (r) => (r.rollout = { confidence: 1 }), message: /picasso-widget:rollout\.confidence = 1: expected a number from 0\.5 to 0\.9999$/ },
    { title: "minErrors 2.5", change: (r) => (r.rollout = { minErrors: 2.5 }), message: /picasso-widget:rollout\.minErrors = 2\.5: expected an integer from 1 to 1000$/ },
    { title: "maxTransportErrorRate -0.1", change: (r) => (r.rollout = { maxTransportErrorRate: -0.1 }), message: /picasso-widget:rollout\.maxTransportErrorRate = -0\.1: expected a number from 0 to 1$/ },
    { title: "a domain without certificateArn", change: (r) => (r.domain = "widget.example.com"), message: /picasso-widget:certificateArn = \(missing\): expected set together with domain$/ },
    {
      title: "a certificate ARN outside us-east-1",
      change: (r) => {
        r.domain = "widget.example.com";
        r.certificateArn = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
      },
      message: /picasso-widget:certificateArn = "arn:aws:acm:eu-west-1:123456789012:certificate\/[0-9a-f-]+": expected an ACM certificate ARN in us-east-1$/,
    },
    {
      title: "traffic on a slot with no release",
      change: (r) => (r.slots = { blue: { release: "r1" }, green: {} }),
      message: /picasso-widget:weights\.green = 10: expected 0 while slots\.green has no release$/,
    },
    {
      title: "a CORS origin with a path",
      change: (r) => (r.embedding = { corsOrigins: ["https://customer.example/page"] }),
      message: /picasso-widget:embedding\.corsOrigins\.0 = "https:\/\/customer\.example\/page": expected "\*", or origins such as https:\/\/customer\.example \(scheme, lower-case host, optional port\)$/,
    },
    {
      title: "a wildcard host in corsOrigins (frame-ancestors allows one)",
      change: (r) => (r.embedding = { corsOrigins: ["https://*.customer.example"], frameAncestors: ["https://*.customer.example"] }),
      message: /picasso-widget:embedding\.corsOrigins\.0 = "https:\/\/\*\.customer\.example": expected "\*", or origins/,
    },
    {
      title: '"*" next to other origins',
      change: (r) => (r.embedding = { frameAncestors: ["*", "https://customer.example"] }),
      message: /picasso-widget:embedding\.frameAncestors = \["\*","https:\/\/customer\.example"\]: expected "\*" alone, or a list of origins without it$/,
    },
    { title: "an empty frameAncestors", change: (r) => (r.embedding = { frameAncestors: [] }), message: /picasso-widget:embedding\.frameAncestors = \[\]: expected at least one of / },
    { title: "cookieSameSite: none", change: (r) => (r.embedding = { cookieSameSite: "none" }), message: /picasso-widget:embedding\.cookieSameSite = "none": expected 'None', 'Lax' or 'Strict'$/ },
    { title: "entryMaxAgeSeconds a day and a second", change: (r) => (r.embedding = { entryMaxAgeSeconds: 86_401 }), message: /picasso-widget:embedding\.entryMaxAgeSeconds = 86401: expected an integer from 0 to 86400$/ },
  ];

  it("gives the analysis keys defaults, so a stack file written before them still parses", function () {
    const config = parseStackConfig(validRaw(), "staging", { hasPreviewToken: true });
    expect(config.rollout).to.deep.include({ maxErrorRate: 0.02, failureThreshold: 2, confidence: 0.99, minErrors: 5, maxTransportErrorRate: 0.01 });
    expect(config.embedding).to.deep.equal({ corsOrigins: ["*"], frameAncestors: ["*"], cookieSameSite: "None", cookiePartitioned: true, entryMaxAgeSeconds: 0 });
  });

  for (const c of cases) {
    it(`rejects ${c.title}, naming the key, the value and what is allowed`, function () {
      const raw = validRaw();
      c.change(raw);
      expect(() => parseStackConfig(raw, "staging", { hasPreviewToken: true }))
        .to.throw(ConfigError)
        .with.property("message")
        .that.matches(new RegExp(`^stack staging: ${c.message.source}`));
    });
  }
});
