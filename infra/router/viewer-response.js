// Viewer-response function (cloudfront-js-2.0): exposes which slot and release served the response, sets the
// Cache-Control viewers get, and gives first-time viewers their sticky bucket cookie.
// Event and return shapes: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
// Limits: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-functions
const BUCKET_COOKIE = 'bg-bucket';
// The embedding settings of the stack config (picasso-widget:embedding), baked in by the program: the stickiness
// cookie's attributes and the Cache-Control viewers get for an entry point.
const VIEWER = {"cookie":"Path=/; Max-Age=86400; Secure; SameSite=None; Partitioned","entry":"private, no-cache"}; // @viewer
// A release-qualified URL (/_r/<slot>/<release>/..., see viewer-request.js) always answers the same bytes.
const IMMUTABLE = 'public, max-age=31536000, immutable';

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
// Cache-Control is the viewer's own: the object's says how long CloudFront may keep it (the cache policy's TTLs bound
// it), while a viewer may keep only a release-qualified URL; any other URL's answer depends on the routing and the cookie.
function viewerHeaders(headers, cacheControl) {
  const out = { 'cache-control': { value: cacheControl } };
  for (const name in headers) {
    if (name === 'cache-control') continue;
    const renamed = name === 'x-amz-meta-slot' ? 'x-bluegreen-slot' : name === 'x-amz-meta-release' ? 'x-bluegreen-release' : name;
    out[renamed] = headers[name];
  }
  return out;
}

// CloudFront calls the top-level function named handler; nothing in the file references it.
// eslint-disable-next-line @typescript-eslint/no-unused-vars
async function handler(event) {
  const response = event.response;
  // event.request is the request as the viewer sent it (not as viewer-request rewrote it).
  const qualified = event.request.uri.slice(0, 4) === '/_r/';
  response.headers = viewerHeaders(response.headers, qualified ? IMMUTABLE : VIEWER.entry);
  // A release-qualified request was not routed by weight: no bucket to give. Otherwise the bucket viewer-request used
  // for a first-time viewer is recomputed from the requestId both functions see.
  if (!qualified && !validBucket(event.request.cookies[BUCKET_COOKIE])) {
    response.cookies[BUCKET_COOKIE] = { value: String(bucketOf(event.context.requestId)), attributes: VIEWER.cookie };
  }
  return response;
}
