// Runs a CloudFront Function (runtime cloudfront-js-2.0) for the sandbox's edges.
//
// The function's own source runs unchanged in a vm context; only its two imports are
// provided here: 'cloudfront' (kvs() reads the store view the Python side sends for the edge
// that runs the request) and 'crypto' (Node's, cut down to what CloudFront documents:
// createHash/createHmac with md5, sha1 or sha256; digest as a Buffer or in hex, base64 or
// base64url). Date is frozen at the time the Python side sends, per request, as CloudFront
// freezes it at the function's start: tests move it and skew it per edge.
//
// JSON lines on stdin and stdout, one request at a time, in order:
//   {"init": {"code": "..."}}                  -> {"ready": true} | {"error": "..."}
//   {"id": n, "edge": e, "now": <unix ms>,
//    "store"?: {"data": {...} | null},         (sent when the edge's view changed; null:
//                                                the edge cannot read its store)
//    "event": {<viewer-request event>}}        -> {"id": n, "result": {...}, "logs": [...],
//                                                  "micros": t} | {"id": n, "error": "..."}
// The worker exits when its stdin closes, so it never outlives the process that started it.
import crypto from 'node:crypto';
import readline from 'node:readline';
import vm from 'node:vm';

const ALGORITHMS = new Set(['md5', 'sha1', 'sha256']);
const ENCODINGS = new Set(['hex', 'base64', 'base64url']);
const stores = new Map(); // edge -> {key: value} | null
let current = { edge: 0, logs: [] };
let handler = null;

const context = vm.createContext({});
vm.runInContext(
  `const RealDate = Date;
  globalThis.__originlockNow = 0;
  globalThis.Date = class FunctionDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) { super(globalThis.__originlockNow); } else { super(...args); }
    }
    static now() { return globalThis.__originlockNow; }
  };`,
  context,
);
context.console = {
  log: (...args) => {
    current.logs.push(args.map(String).join(' '));
  },
};
context.Buffer = Buffer;

function digester(inner) {
  return {
    update(data) {
      inner.update(data);
      return this;
    },
    digest(encoding) {
      if (encoding === undefined) {
        return inner.digest();
      }
      if (!ENCODINGS.has(encoding)) {
        throw new Error(`digest encoding not supported by CloudFront Functions: ${encoding}`);
      }
      return inner.digest(encoding);
    },
  };
}

function checkAlgorithm(algorithm) {
  if (!ALGORITHMS.has(algorithm)) {
    throw new Error(`hash algorithm not supported by CloudFront Functions: ${algorithm}`);
  }
}

const cryptoModule = {
  createHash(algorithm) {
    checkAlgorithm(algorithm);
    return digester(crypto.createHash(algorithm));
  },
  createHmac(algorithm, key) {
    checkAlgorithm(algorithm);
    return digester(crypto.createHmac(algorithm, key));
  },
};

function storeOfCurrentEdge() {
  const data = stores.get(current.edge);
  if (data === undefined || data === null) {
    throw new Error('KeyValueStore read failed');
  }
  return data;
}

const kvsHandle = {
  async get(key, options) {
    const data = storeOfCurrentEdge();
    if (!Object.prototype.hasOwnProperty.call(data, key)) {
      throw new Error(`Key not found: ${key}`);
    }
    const format = (options && options.format) || 'string';
    if (format === 'json') {
      return JSON.parse(data[key]);
    }
    if (format === 'bytes') {
      return Buffer.from(data[key], 'utf8');
    }
    return data[key];
  },
  async exists(key) {
    return Object.prototype.hasOwnProperty.call(storeOfCurrentEdge(), key);
  },
  async meta() {
    const data = storeOfCurrentEdge();
    return { keyCount: Object.keys(data).length };
  },
};

const cloudfrontModule = { kvs: () => kvsHandle };

function synthetic(value) {
  return new vm.SyntheticModule(
    ['default'],
    function init() {
      this.setExport('default', value);
    },
    { context },
  );
}

async function load(code) {
  // CloudFront calls the global "handler"; a module keeps it private, so export it.
  const module = new vm.SourceTextModule(`${code}\nexport { handler };\n`, {
    context,
    identifier: 'cloudfront-function.js',
  });
  await module.link(async (specifier) => {
    if (specifier === 'cloudfront') {
      return synthetic(cloudfrontModule);
    }
    if (specifier === 'crypto') {
      return synthetic(cryptoModule);
    }
    throw new Error(`module not available in CloudFront Functions: ${specifier}`);
  });
  await module.evaluate();
  if (typeof module.namespace.handler !== 'function') {
    throw new Error('the function defines no handler');
  }
  handler = module.namespace.handler;
}

async function invoke(message) {
  if (message.store !== undefined) {
    stores.set(message.edge, message.store.data);
  }
  current = { edge: message.edge, logs: [] };
  context.__originlockNow = message.now;
  const started = process.hrtime.bigint();
  const result = await handler(message.event);
  const micros = Number(process.hrtime.bigint() - started) / 1000;
  return { id: message.id, result, logs: current.logs, micros };
}

function describe(err) {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

async function handle(line) {
  let message;
  try {
    message = JSON.parse(line);
  } catch (err) {
    return { error: `not JSON: ${describe(err)}` };
  }
  if (message.init !== undefined) {
    try {
      await load(message.init.code);
      return { ready: true };
    } catch (err) {
      return { error: describe(err) };
    }
  }
  if (handler === null) {
    return { id: message.id, error: 'no function loaded' };
  }
  try {
    return await invoke(message);
  } catch (err) {
    return { id: message.id, error: describe(err) };
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
let queue = Promise.resolve();
lines.on('line', (line) => {
  queue = queue.then(async () => {
    process.stdout.write(`${JSON.stringify(await handle(line))}\n`);
  });
});
lines.on('close', () => {
  queue.then(() => process.exit(0));
});
