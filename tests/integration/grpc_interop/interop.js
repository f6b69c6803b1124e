// interop.js - @grpc/grpc-js, an implementation nobody here wrote, on the
// other end of lib/grpc. Raw-bytes generic methods (identity serializers),
// so no .proto is needed.
//
//   node interop.js client HOST:PORT identity|gzip   -> exit 0 if every check passes
//   node interop.js server identity|gzip              -> prints "listening PORT"
'use strict';
const grpc = require('@grpc/grpc-js');

const ident = (b) => b;
const method = (name) => ({
  path: `/vitals.test.Echo/${name}`,
  requestStream: false,
  responseStream: false,
  requestSerialize: ident,
  requestDeserialize: ident,
  responseSerialize: ident,
  responseDeserialize: ident,
});
const service = { Unary: method('Unary'), Deferred: method('Deferred'), Missing: method('Missing') };

function payload(n, seed) {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = i % 64 < 48 ? 97 + (i % 7) : (x >>> 16) & 0xff;
  }
  return b;
}

function compressionOption(name) {
  // grpc-js compression algorithms: 0 identity, 1 deflate, 2 gzip.
  return name === 'gzip' ? { 'grpc.default_compression_algorithm': 2 } : {};
}

async function runClient(target, comp) {
  const Client = grpc.makeGenericClientConstructor(service, 'Echo');
  const client = new Client(target, grpc.credentials.createInsecure(), compressionOption(comp));
  const call = (name, buf, md) =>
    new Promise((resolve) => {
      const meta = new grpc.Metadata();
      for (const [k, v] of Object.entries(md || {})) meta.set(k, v);
      client[name](buf, meta, { deadline: Date.now() + 10000 }, (err, resp) => resolve({ err, resp }));
    });
  let bad = 0;
  const check = (what, ok, detail) => {
    console.log(`${ok ? 'ok ' : 'BAD'} ${what}${detail ? ' ' + detail : ''}`);
    if (!ok) bad++;
  };
  for (const n of [0, 10, 100 * 1024, 3 * 1024 * 1024]) {
    const req = payload(n, n);
    const { err, resp } = await call('Unary', req, { authorization: 'Bearer js' });
    check(`echo ${n} bytes (${comp})`, !err && Buffer.compare(resp, req) === 0, err ? err.message : '');
  }
  {
    const req = Buffer.from('deferred');
    const { err, resp } = await call('Deferred', req);
    check('deferred response', !err && resp.equals(req), err ? err.message : '');
  }
  {
    const { err } = await call('Unary', Buffer.from('fail:9'));
    check('error status 9 + message', err && err.code === 9 && err.details === 'failed as asked: 100%\n',
      err ? `code=${err.code} details=${JSON.stringify(err.details)}` : 'no error');
  }
  {
    const { err } = await call('Missing', Buffer.from('x'));
    check('unknown method -> UNIMPLEMENTED', err && err.code === grpc.status.UNIMPLEMENTED,
      err ? `code=${err.code}` : 'no error');
  }
  {
    // 50 concurrent calls on one channel.
    const reqs = Array.from({ length: 50 }, (_, i) => payload(1000 + i, i));
    const res = await Promise.all(reqs.map((r, i) => call(i % 2 ? 'Deferred' : 'Unary', r)));
    check('50 concurrent calls', res.every((x, i) => !x.err && x.resp.equals(reqs[i])));
  }
  client.close();
  return bad;
}

function runServer(comp) {
  const server = new grpc.Server(compressionOption(comp));
  const echo = (callObj, cb) => {
    const req = callObj.request;
    const s = req.toString('latin1');
    if (s.startsWith('fail:')) {
      cb({ code: parseInt(s.slice(5), 10), details: 'failed as asked: 100%\n' });
      return;
    }
    const auth = callObj.metadata.get('authorization')[0];
    if (auth !== 'Bearer interop') {
      cb({ code: grpc.status.UNAUTHENTICATED, details: `bad authorization ${auth}` });
      return;
    }
    cb(null, req);
  };
  server.addService(service, {
    Unary: echo,
    Deferred: (c, cb) => setTimeout(() => echo(c, cb), 50),
  });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      console.error(err);
      process.exit(2);
    }
    console.log(`listening ${port}`);
  });
  process.on('SIGTERM', () => server.forceShutdown() || process.exit(0));
}

const [mode, a, b] = process.argv.slice(2);
if (mode === 'client') {
  runClient(a, b || 'identity').then((bad) => process.exit(bad ? 1 : 0), (e) => {
    console.error(e);
    process.exit(2);
  });
} else if (mode === 'server') {
  runServer(a || 'identity');
} else {
  console.error('usage: interop.js client HOST:PORT [identity|gzip] | server [identity|gzip]');
  process.exit(2);
}
