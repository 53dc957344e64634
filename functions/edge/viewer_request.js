// originlock, edge-signed mode: signs every viewer request for the origin's authorizer.
// CloudFront Functions, runtime cloudfront-js-2.0, event type viewer-request; see
// docs/edge-signed.md. The origin header becomes "v1.<window>.<kid>.<mac>", where
// mac = base64url(HMAC-SHA256(key, "originlock:v1:<distributionId>:<window>:<kid>")).
//
// Placeholders, replaced at deploy time (infra and the sandbox, via functions/edge):
//   __HEADER_NAME__     the origin header name, lowercase
//   __WINDOW_SECONDS__  the length of a token's time window, in seconds
// No key is ever written here: the signing key is read from the associated KeyValueStore.
import cf from 'cloudfront';
import crypto from 'crypto';

const HEADER_NAME = '__HEADER_NAME__';
const WINDOW_SECONDS = parseInt('__WINDOW_SECONDS__', 10);
const KEY_NAME = 'signing-key';
const KEY_FORMAT = /^[A-Za-z0-9_-]{43}$/;
const kvs = cf.kvs();

// Every copy of the origin header a viewer sent goes, whatever its case: the origin sees the
// value computed here, or no value at all.
function removeOriginHeader(headers) {
  for (const name in headers) {
    if (name.toLowerCase() === HEADER_NAME) {
      delete headers[name];
    }
  }
}

function token(key, distributionId, nowMillis) {
  const windowNumber = Math.floor(nowMillis / 1000 / WINDOW_SECONDS);
  const kid = crypto.createHash('sha256').update('originlock:kid:' + key).digest('hex').substring(0, 8);
  const mac = crypto
    .createHmac('sha256', key)
    .update('originlock:v1:' + distributionId + ':' + windowNumber + ':' + kid)
    .digest('base64url');
  return 'v1.' + windowNumber + '.' + kid + '.' + mac;
}

// Without a usable key (store unreadable, key missing or malformed) the request is forwarded
// without the header: the origin's authorizer then answers 401, and no viewer-chosen value
// ever passes.
async function handler(event) {
  const request = event.request;
  removeOriginHeader(request.headers);
  const distributionId = event.context.distributionId;
  if (!(WINDOW_SECONDS > 0) || typeof distributionId !== 'string' || distributionId === '') {
    return request;
  }
  let key;
  try {
    key = await kvs.get(KEY_NAME);
  } catch (err) {
    return request;
  }
  if (typeof key !== 'string' || !KEY_FORMAT.test(key)) {
    return request;
  }
  request.headers[HEADER_NAME] = { value: token(key, distributionId, Date.now()) };
  return request;
}
