// What the driver takes from an earlier update and what it keeps from the live stack file, and each stack's AWS settings.
import { expect } from "chai";
import { ROUTING_KEYS, syncSecretsFromLive, withRevision } from "../../automation/stackConfig";
import { awsSettings } from "../../automation/targets";

describe("stack config: earlier updates, live secrets, AWS settings", function () {
  const earlier = {
    "picasso-widget:weights": { value: '{"blue":0,"green":100}', secret: false },
    "picasso-widget:previewToken": { value: "ERROR_UNABLE_TO_DECRYPT", secret: true },
    "picasso-widget:webhookSecret": { value: "old-secret", secret: true },
    "picasso-widget:revision": { value: "7", secret: false },
  };
  const live = {
    "picasso-widget:weights": { value: '{"blue":100,"green":0}', secret: false },
    "picasso-widget:previewToken": { value: "rotated-token-0123456789", secret: true },
    "picasso-widget:revision": { value: "9", secret: false },
  };

  it("never takes a secret from an earlier update: a rotated token stays rotated, ERROR_UNABLE_TO_DECRYPT never becomes a value", () => {
    const synced = syncSecretsFromLive(earlier, live);
    expect(synced["picasso-widget:previewToken"]).to.deep.equal({ value: "rotated-token-0123456789", secret: true });
    expect(synced).to.not.have.property("picasso-widget:webhookSecret");
    expect(synced["picasso-widget:weights"].value).to.equal('{"blue":0,"green":100}');
  });

  it("takes the preview token from the live file even where a stack keeps it in plain text (the local stack)", () => {
    const plainLive = { ...live, "picasso-widget:previewToken": { value: "local-preview-token-0123456789", secret: false } };
    const plainEarlier = { ...earlier, "picasso-widget:previewToken": { value: "leaked-token-0123456789", secret: false } };
    expect(syncSecretsFromLive(plainEarlier, plainLive)["picasso-widget:previewToken"].value).to.equal("local-preview-token-0123456789");
  });

  it("names exactly the routing keys a rollback restores, and replaces the revision", () => {
    expect(ROUTING_KEYS).to.deep.equal(["picasso-widget:slots", "picasso-widget:stable", "picasso-widget:weights"]);
    expect(withRevision(live, 12)["picasso-widget:revision"]).to.deep.equal({ value: "12", secret: false });
  });

  it("gives each stack's S3 client its own region, profile and endpoint from the provider config", () => {
    const config = {
      "aws:region": { value: "eu-west-1", secret: false },
      "aws:profile": { value: "picasso-production", secret: false },
      "aws:endpoints": { value: '[{"s3":"http://127.0.0.1:9000"}]', secret: false },
      "aws:s3UsePathStyle": { value: "true", secret: false },
    };
    expect(awsSettings(config)).to.deep.equal({ region: "eu-west-1", profile: "picasso-production", endpoint: "http://127.0.0.1:9000", forcePathStyle: true });
    expect(awsSettings({})).to.deep.equal({});
    expect(() => awsSettings({ "aws:endpoints": { value: "not json", secret: false } })).to.throw('aws:endpoints = "not json": expected a list');
  });
});
