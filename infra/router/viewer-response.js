// Viewer-response function (cloudfront-js-2.0): exposes which slot and release served the response, and gives
// first-time viewers their sticky bucket cookie.
// Event and return shapes: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
// Limits: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-functions
const BUCKET_COOKIE = 'bg-bucket';
const BUCKET_COOKIE_ATTRIBUTES = 'Path=/; Max-Age=86400; Secure; SameSite=Lax';

// CloudFront Functions cannot share modules, so bucketOf and validBucket are copied verbatim from
// viewer-request.js: both must compute the same bucket from the same requestId.
function bucketOf(requestId) {
  // FNV-1a 32-bit; the multiply by the FNV prime is spelled as shifts so it stays exact in doubles.
  let h = 0x811c9dc5;
  for (let i = 0; i < requestId.length; i++) {
    h ^= requestId.charCodeAt(i);
    h = (h + (h << 1) + (h << 4) + (h << 7) + (h << 8) + (h << 24)) >>> 0;
  }
  return h % 100;
}

const BUCKET_VALUE = /^[0-9]{1,2}$/;
function validBucket(cookie) {
  return cookie !== undefined && BUCKET_VALUE.test(cookie.value);
}

// Object metadata set at upload: the function cannot know which origin served, but the object says so. The
// headers are copied into a new map under their new names rather than deleted in place: CloudFront sends whatever
// map the returned response carries, and in V8 (the local shim) a delete costs twice the rest of this function.
function viewerHeaders(headers) {
  const out = {};
  for (const name in headers) {
    const renamed = name === 'x-amz-meta-slot' ? 'x-bluegreen-slot' : name === 'x-amz-meta-release' ? 'x-bluegreen-release' : name;
    out[renamed] = headers[name];
  }
  return out;
}

// CloudFront calls the top-level function named handler; nothing in the file references it.
// eslint-disable-next-line @typescript-eslint/no-unused-vars
async function handler(event) {
  const response = event.response;
  response.headers = viewerHeaders(response.headers);
  // event.request is the request as the viewer sent it (not as viewer-request rewrote it), so the bucket
  // viewer-request used for a first-time viewer is recomputed from the requestId both functions see.
  if (!validBucket(event.request.cookies[BUCKET_COOKIE])) {
    response.cookies[BUCKET_COOKIE] = { value: String(bucketOf(event.context.requestId)), attributes: BUCKET_COOKIE_ATTRIBUTES };
  }
  return response;
}
