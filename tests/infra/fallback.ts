// What a deployed viewer-request function serves when its KeyValueStore read fails: run the declared code in the
// runtime shim with no store, rather than reading the rendered text.
import { compileCloudFrontFunction, isResponse, viewerRequestEvent } from "../../automation/local/cloudfrontRuntime";

/** "<slot>/<release>" of the KVS-failure fallback baked into `code`, or the status it answers with. */
export async function servedOnKvsFailure(code: string): Promise<string> {
  const { output, originId } = await compileCloudFrontFunction(code, { kvs: () => undefined }).run(viewerRequestEvent({ uri: "/version.json" }));
  if (isResponse(output)) return `status ${output.statusCode}`;
  const release = output.uri.split("/")[2];
  return `${originId}/${release}`;
}
