#!/usr/bin/env node
// PouchDB side of the agent benchmark (run by bench/agent_bench.py; usable alone too).
//
// Three node processes, like the PDV Sync run (server, agent A, agent B):
//   - server: express-pouchdb on 127.0.0.1 at a random port, one database "bench";
//   - client A and client B: each a local PouchDB live-syncing (both directions, retry)
//     with the server's database, as a PouchDB point-of-sale app would.
// This process only orchestrates them over IPC. Then the same measurements as the PDV Sync
// agent benchmark:
//   1. throughput: N product docs bulk-written to A in batches, time until B's local
//      changes feed has shown all of them;
//   2. live latency: sequential renames of one doc on A, time from before A's put until
//      B's changes feed shows it (p50/p95/p99). Timestamps are CLOCK_MONOTONIC
//      (process.hrtime), the same clock in every process of the machine;
//   3. idle: client B's process CPU time over a few seconds, and its RSS.
// Prints one JSON object on stdout; progress goes to stderr.
//
//   node bench.js [--dir DIR] [--docs 10000] [--batch 100] [--updates 200]
//                 [--adapter leveldb|memory] [--idle 10] [--timeout 120] [--budget 60]
// --timeout bounds the throughput run, --budget the latency run (as many updates as fit).
//
// Only 127.0.0.1. Everything lives under --dir (a fresh temp folder by default), removed at
// the end; the caller may remove it too. Children exit when this process goes away.
'use strict';

const { fork } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const log = (...a) => process.stderr.write(`[pouch] ${a.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function parseArgs(argv) {
  const opts = { docs: 10000, batch: 100, updates: 200, adapter: 'leveldb', idle: 10, timeout: 120, budget: 60, dir: null };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in opts) || argv[i + 1] === undefined) throw new Error(`bad option ${argv[i]}`);
    opts[key] = ['adapter', 'dir'].includes(key) ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!['leveldb', 'memory'].includes(opts.adapter)) throw new Error('--adapter: leveldb or memory');
  return opts;
}

function loadPouch(adapter) {
  const PouchDB = require('pouchdb');
  if (adapter === 'memory') PouchDB.plugin(require('pouchdb-adapter-memory'));
  return { PouchDB, dbOpts: adapter === 'memory' ? { adapter: 'memory' } : {} };
}

function product(i, stamp) {
  return {
    _id: `p-${String(i).padStart(6, '0')}`,
    name: `Produto ${i}`,
    description: 'Pão francês artesanal, fermentação natural, 50 g',
    price: '12.50',
    category: 'Padaria',
    imageUrlId: `img-${i}`,
    stock_quantity: 100,
    createdAt: stamp,
    updatedAt: stamp,
  };
}

// -- child roles -------------------------------------------------------------------------

async function runServer(opts) {
  const { PouchDB, dbOpts } = loadPouch(opts.adapter);
  const expressPouchdb = require('express-pouchdb');
  const prefix = path.join(opts.dir, 'server') + path.sep;
  fs.mkdirSync(prefix, { recursive: true });
  const app = expressPouchdb(PouchDB.defaults({ ...dbOpts, prefix }), {
    mode: 'minimumForPouchDB',
    inMemoryConfig: true,
    logPath: path.join(opts.dir, 'express-pouchdb.log'),
  });
  const server = await new Promise((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
  const url = `http://127.0.0.1:${server.address().port}/bench`;
  await new PouchDB(url).info(); // creates the database
  process.send({ type: 'ready', url });
}

async function runClient(opts, name, url) {
  const { PouchDB, dbOpts } = loadPouch(opts.adapter);
  const db = new PouchDB(path.join(opts.dir, `client-${name}`), dbOpts);
  const sync = db.sync(url, { live: true, retry: true });
  sync.on('error', (err) => log(`${name}: sync error`, err && err.message));
  await new Promise((r) => sync.once('paused', r)); // caught up once: replication is up

  // What B sees: its own local changes feed (what a PouchDB app listens to).
  const seen = new Set();
  let expect = null; // {count}
  const waiters = new Map(); // id -> {name}
  db.changes({ since: 'now', live: true, include_docs: true }).on('change', (c) => {
    if (expect && c.id.startsWith('p-')) {
      seen.add(c.id);
      if (seen.size >= expect.count) {
        process.send({ type: 'all', at: nowMs(), count: seen.size });
        expect = null;
      }
    }
    const w = waiters.get(c.id);
    if (w && c.doc && c.doc.name === w.name) {
      waiters.delete(c.id);
      process.send({ type: 'seen', at: nowMs(), id: c.id });
    }
  });

  process.on('message', async (msg) => {
    try {
      if (msg.cmd === 'expect') {
        expect = { count: msg.count };
        process.send({ type: 'armed' });
      } else if (msg.cmd === 'write') {
        const stamp = new Date().toISOString();
        const start = nowMs();
        for (let i = 0; i < msg.docs; i += msg.batch) {
          const docs = [];
          for (let j = i; j < Math.min(i + msg.batch, msg.docs); j++) docs.push(product(j, stamp));
          const res = await db.bulkDocs(docs);
          const bad = res.filter((r) => !r.ok);
          if (bad.length) throw new Error(`bulkDocs refused ${bad.length} docs: ${JSON.stringify(bad[0])}`);
        }
        process.send({ type: 'written', start, end: nowMs() });
      } else if (msg.cmd === 'waitFor') {
        waiters.set(msg.id, { name: msg.name });
        process.send({ type: 'armed' });
      } else if (msg.cmd === 'rename') {
        const doc = await db.get(msg.id);
        doc.name = msg.name;
        doc.updatedAt = new Date().toISOString();
        const start = nowMs();
        await db.put(doc);
        process.send({ type: 'renamed', start, end: nowMs() });
      } else if (msg.cmd === 'count') {
        process.send({ type: 'count', count: (await db.info()).doc_count });
      } else if (msg.cmd === 'usage') {
        const cpu = process.cpuUsage();
        process.send({ type: 'usage', at: nowMs(), cpuMs: (cpu.user + cpu.system) / 1000,
          rssMB: process.memoryUsage().rss / (1024 * 1024), pid: process.pid });
      }
    } catch (err) {
      process.send({ type: 'error', error: String(err && err.stack ? err.stack : err) });
    }
  });
  process.send({ type: 'ready' });
}

// -- orchestrator --------------------------------------------------------------------------

class Child {
  constructor(role, opts, extra = []) {
    this.role = role;
    this.queue = [];
    this.waiting = [];
    this.proc = fork(__filename, ['--role', role, ...extra, '--dir', opts.dir, '--adapter', opts.adapter],
      { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.proc.on('message', (m) => {
      const i = this.waiting.findIndex((w) => w.type === m.type || m.type === 'error');
      if (i >= 0) {
        const w = this.waiting.splice(i, 1)[0];
        if (m.type === 'error') w.reject(new Error(`${role}: ${m.error}`));
        else w.resolve(m);
      } else this.queue.push(m);
    });
    this.proc.on('exit', (code) => {
      for (const w of this.waiting.splice(0)) w.reject(new Error(`${role} exited (${code})`));
    });
  }

  next(type, timeoutMs) {
    const i = this.queue.findIndex((m) => m.type === type || m.type === 'error');
    if (i >= 0) {
      const m = this.queue.splice(i, 1)[0];
      return m.type === 'error' ? Promise.reject(new Error(`${this.role}: ${m.error}`)) : Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const w = { type, resolve, reject };
      this.waiting.push(w);
      if (timeoutMs) {
        const t = setTimeout(() => {
          const k = this.waiting.indexOf(w);
          if (k >= 0) this.waiting.splice(k, 1);
          resolve(null);
        }, timeoutMs);
        const done = w.resolve;
        w.resolve = (m) => { clearTimeout(t); done(m); };
      }
    });
  }

  async ask(cmd, type, timeoutMs) {
    this.proc.send(cmd);
    return this.next(type, timeoutMs);
  }

  kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

function percentile(sorted, p) {
  // Nearest rank on a sorted array, the same rule as the Python side.
  if (!sorted.length) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

async function orchestrate(opts) {
  const ownDir = !opts.dir;
  opts.dir = opts.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'pouch-bench-'));
  fs.mkdirSync(opts.dir, { recursive: true });
  const children = [];
  try {
    const server = new Child('server', opts);
    children.push(server);
    const { url } = await server.next('ready', 30000) || {};
    if (!url) throw new Error('the PouchDB server did not start');
    log(`express-pouchdb on ${url} (${opts.adapter}); 3 processes: server, A, B`);
    const a = new Child('client', opts, ['--name', 'a', '--url', url]);
    const b = new Child('client', opts, ['--name', 'b', '--url', url]);
    children.push(a, b);
    for (const c of [a, b]) if (!(await c.next('ready', 30000))) throw new Error('a PouchDB client did not start');

    // 1. throughput
    await b.ask({ cmd: 'expect', count: opts.docs }, 'armed');
    a.proc.send({ cmd: 'write', docs: opts.docs, batch: opts.batch });
    const written = await a.next('written', opts.timeout * 1000);
    if (!written) throw new Error(`A did not accept ${opts.docs} docs within ${opts.timeout} s`);
    const all = await b.next('all', opts.timeout * 1000);
    if (!all) throw new Error(`B did not get all ${opts.docs} docs within ${opts.timeout} s`);
    const { count } = await b.ask({ cmd: 'count' }, 'count');
    const endToEnd = (all.at - written.start) / 1000;
    log(`throughput: accepted in ${((written.end - written.start) / 1000).toFixed(2)} s, ` +
      `on B after ${endToEnd.toFixed(2)} s (${Math.round(opts.docs / endToEnd)} docs/s; B doc_count ${count})`);
    await sleep(500);

    // 2. live latency
    const id = product(0, '')._id;
    const latencies = [];
    let timeouts = 0;
    const stopAt = nowMs() + opts.budget * 1000;
    for (let i = 0; i < opts.updates; i++) {
      if (nowMs() > stopAt) {
        log(`latency: budget of ${opts.budget} s spent after ${i} updates`);
        break;
      }
      const name = `Produto 0 renomeado ${i}`;
      await b.ask({ cmd: 'waitFor', id, name }, 'armed');
      const renamed = await a.ask({ cmd: 'rename', id, name }, 'renamed', 5000);
      const seen = renamed && await b.next('seen', 5000);
      if (seen) latencies.push(seen.at - renamed.start);
      else timeouts++;
    }
    latencies.sort((x, y) => x - y);
    const mean = latencies.length ? latencies.reduce((s, x) => s + x, 0) / latencies.length : null;
    const latency = {
      count: latencies.length, timeouts, mean, asked: opts.updates,
      p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99),
      max: latencies.length ? latencies[latencies.length - 1] : null,
    };
    log(`latency: p50 ${latency.p50 && latency.p50.toFixed(1)} ms, p95 ${latency.p95 && latency.p95.toFixed(1)} ms, ` +
      `p99 ${latency.p99 && latency.p99.toFixed(1)} ms`);

    // 3. idle: client B's own process
    await sleep(1000);
    const u0 = await b.ask({ cmd: 'usage' }, 'usage');
    await sleep(opts.idle * 1000);
    const u1 = await b.ask({ cmd: 'usage' }, 'usage');
    const idle = {
      seconds: (u1.at - u0.at) / 1000,
      cpuPercent: ((u1.cpuMs - u0.cpuMs) / (u1.at - u0.at)) * 100,
      rssMB: u1.rssMB,
    };
    log(`idle B: ${idle.cpuPercent.toFixed(2)} % CPU, ${idle.rssMB.toFixed(0)} MB RSS`);

    return {
      system: 'PouchDB',
      versions: {
        node: process.version,
        pouchdb: require('pouchdb/package.json').version,
        expressPouchdb: require('express-pouchdb/package.json').version,
      },
      adapter: opts.adapter,
      processes: 3,
      docs: opts.docs,
      batch: opts.batch,
      throughput: {
        acceptSeconds: (written.end - written.start) / 1000,
        endToEndSeconds: endToEnd,
        docsPerSecond: opts.docs / endToEnd,
        docCountOnB: count,
      },
      latency,
      idle,
    };
  } finally {
    for (const c of children) c.kill();
    if (ownDir) fs.rmSync(opts.dir, { recursive: true, force: true });
  }
}

async function main() {
  const argv = process.argv.slice(2);
  const r = argv.indexOf('--role');
  if (r >= 0) {
    const role = argv[r + 1];
    const rest = argv.filter((_, i) => i !== r && i !== r + 1);
    const pick = (key) => {
      const k = rest.indexOf(`--${key}`);
      const v = k >= 0 ? rest.splice(k, 2)[1] : undefined;
      return v;
    };
    const name = pick('name');
    const url = pick('url');
    const opts = parseArgs(rest);
    process.on('disconnect', () => process.exit(0)); // the orchestrator went away
    if (role === 'server') await runServer(opts);
    else await runClient(opts, name, url);
    return null; // stays up until killed
  }
  const out = await orchestrate(parseArgs(argv));
  process.stdout.write(JSON.stringify(out) + '\n');
  return 0;
}

main().then(
  (code) => { if (code !== null) process.exit(code); },
  (err) => {
    process.stderr.write(`[pouch] failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  },
);
