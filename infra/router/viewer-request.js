// Viewer-request function (cloudfront-js-2.0): picks the blue or green slot for every request and rewrites the
// URI to that slot's release prefix. Runtime 2.0 (import, async/await, const):
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-javascript-runtime-20.html
// Event and return shapes: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
// Limits (10 KB of code, no network, bounded compute): https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-functions
import cf from 'cloudfront';
import crypto from 'crypto';

// Served when the KeyValueStore read fails; the program bakes the stable slot and its release into this line.
const FALLBACK = {"slot":"blue","release":""}; // @fallback
const ROUTING_KEY = 'routing';
const PREVIEW_HEADER = 'x-bluegreen-preview';
const BUCKET_COOKIE = 'bg-bucket';

// CloudFront Functions cannot share modules, so bucketOf and validBucket are copied verbatim in
// viewer-response.js: both must compute the same bucket from the same requestId.
function bucketOf(requestId) {
  // FNV-1a 32-bit; the multiply by the FNV prime is spelled as shifts so it stays exact in doubles.
  let h = 0x811c9dc5;
  for (let i = 0; i < requestId.length; i++) {
    h ^= requestId.charCodeAt(i);
    h = (h + (h << 1) + (h << 4) + (h << 7) + (h << 8) + (h << 24)) >>> 0;
  }
  return h % 100;
}

function validBucket(cookie) {
  return cookie !== undefined && /^[0-9]{1,2}$/.test(cookie.value);
}

// Returns the routing record, or undefined when the store is unreachable, the key is missing (get() throws) or
// the value is not a record: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-custom-methods.html
async function routingRecord() {
  try {
    // cf.kvs() without an id reads the one store associated with the function.
    const record = await cf.kvs().get(ROUTING_KEY, { format: 'json' });
    if ((record.stable === 'blue' || record.stable === 'green') && record.weights && record.releases) return record;
    // eslint-disable-next-line @typescript-eslint/no-unused-vars -- optional catch binding is not listed among the runtime's features
  } catch (e) {
    // Fall through to FALLBACK: a routing outage must not take the site down.
  }
  return undefined;
}

function previewSlot(header, previewHash) {
  if (header === undefined || !previewHash) return undefined;
  // The token may itself contain ':'; the slot is what follows the last one.
  const at = header.value.lastIndexOf(':');
  const slot = header.value.slice(at + 1);
  if (at < 1 || (slot !== 'blue' && slot !== 'green')) return undefined;
  // Only the token's SHA-256 is stored, so the plaintext is never in code, KVS or state.
  const hash = crypto.createHash('sha256').update(header.value.slice(0, at)).digest('hex');
  return hash === previewHash ? slot : undefined;
}

function weightedSlot(record, request, requestId) {
  const cookie = request.cookies[BUCKET_COOKIE];
  const bucket = validBucket(cookie) ? Number(cookie.value) : bucketOf(requestId);
  const next = record.stable === 'blue' ? 'green' : 'blue';
  // bucket < weight: raising the new slot's weight only ever moves viewers from stable to new.
  return bucket < record.weights[next] ? next : record.stable;
}

// CloudFront calls the top-level function named handler; nothing in the file references it.
// eslint-disable-next-line @typescript-eslint/no-unused-vars
async function handler(event) {
  const request = event.request;
  const preview = request.headers[PREVIEW_HEADER];
  // The header carries the secret token: never forward it, whether or not it matched.
  delete request.headers[PREVIEW_HEADER];

  const record = await routingRecord();
  let slot = FALLBACK.slot;
  let release = FALLBACK.release;
  if (record !== undefined) {
    slot = previewSlot(preview, record.preview) || weightedSlot(record, request, event.context.requestId);
    release = record.releases[slot];
  }
  if (typeof release !== 'string' || release === '') {
    // Nothing deployed in this slot yet: answer directly instead of fetching a prefix that does not exist.
    return { statusCode: 503, statusDescription: 'Service Unavailable', headers: { 'cache-control': { value: 'no-store' } } };
  }

  // Origins "blue" and "green" exist on the distribution; this picks one per request:
  // https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/helper-functions-origin-modification.html
  cf.selectRequestOriginById(slot);
  // The slot is part of the URI, hence of the cache key, so blue and green objects never share a cache entry.
  const uri = request.uri.charAt(request.uri.length - 1) === '/' ? request.uri + 'index.html' : request.uri;
  request.uri = '/' + slot + '/' + release + uri;
  return request;
}
