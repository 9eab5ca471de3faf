#!/usr/bin/env node
// Measures the Node binding's overhead on text embedding against the same calls in Rust.
//
// All sides embed the first sentences of benches/data/sentences.txt with all-minilm-l6-v2
// on the CPU with the same number of threads, one call per batch, at batch sizes 1 and 32.
// Rust runs as the release binary `bench-embed-overhead`. Node awaits, in this process,
// `TextEmbedder.embed` (the model loaded on its own) and `Kai.embedText` (the model taken
// from the model cache of a store opened in a temporary folder). The sides take turns
// over several rounds, and the side that goes first rotates each round, so drift on a
// shared machine affects all of them alike. Each side's figures are its median and its
// fastest pass over the rounds. Noise from other processes only adds time, so the fastest
// passes are the steadier comparison.
//
// The script builds both sides in the release profile (`cargo build --release --locked`)
// into CARGO_TARGET_DIR (default ~/.cache/kai/target) and loads the native module from a
// copy in a temporary folder, so kai-node/kai.node, the dev build that the tests load,
// stays as it is:
//
//     node benches/node_overhead.mjs --threads 2
//
// It prints a Markdown table with the time per call of each side and the overhead
// (Node / Rust - 1). The target is an overhead under 5 % at batch 32.

import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism, cpus, homedir, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
// kai_core::embed::text::DEFAULT_BATCH_SIZE, which the Node classes use.
const maxBatchSize = 32
const usage = 'usage: node benches/node_overhead.mjs [--threads N] [--sentences N] [--rounds N] ' +
  '[--batch-sizes 1,32] [--corpus FILE] [--no-kai]'

function parseOptions() {
  const { values } = parseArgs({
    options: {
      threads: { type: 'string', default: '2' },
      sentences: { type: 'string', default: '320' },
      rounds: { type: 'string', default: '9' },
      'batch-sizes': { type: 'string', default: '1,32' },
      corpus: { type: 'string', default: join(root, 'benches', 'data', 'sentences.txt') },
      'no-kai': { type: 'boolean', default: false },
    },
  })
  const positive = (name, text) => {
    const value = Number(text)
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`invalid --${name} ${JSON.stringify(text)}: expected a positive integer; ${usage}`)
    }
    return value
  }
  const batchSizes = values['batch-sizes'].split(',').map((size) => positive('batch-sizes', size))
  // The Node classes take no batch size, so a larger batch would run as several forward
  // passes there and as one in Rust.
  const largest = Math.max(...batchSizes)
  if (largest > maxBatchSize) {
    throw new Error(`invalid --batch-sizes: ${largest} is above ${maxBatchSize}, the core's default batch size`)
  }
  return {
    threads: positive('threads', values.threads),
    sentences: positive('sentences', values.sentences),
    rounds: positive('rounds', values.rounds),
    batchSizes,
    corpus: resolve(values.corpus),
    kai: !values['no-kai'],
  }
}

function cargoBuild(args, env) {
  const result = spawnSync('cargo', ['build', '--release', '--locked', ...args], {
    cwd: root,
    env,
    stdio: 'inherit',
  })
  if (result.error) {
    throw result.error
  }
  if (result.status !== 0) {
    throw new Error(`cargo build ${args.join(' ')} failed with exit status ${result.status}`)
  }
}

// Builds the Rust binary and the native module. Returns the binary's path and the path of
// a copy of the module, named kai.node because require() loads only .node files as addons.
function build(target, env, workDir) {
  cargoBuild(['-p', 'kai-benches', '--bin', 'bench-embed-overhead'], env)
  cargoBuild(['-p', 'kai-node'], env)
  const library = process.platform === 'darwin' ? 'libkai_node.dylib' : 'libkai_node.so'
  const module = join(workDir, 'kai.node')
  copyFileSync(join(target, 'release', library), module)
  return { binary: join(target, 'release', 'bench-embed-overhead'), module }
}

function timeRust(binary, options, env) {
  const args = [
    '--corpus', options.corpus,
    '--sentences', String(options.sentences),
    '--batch-sizes', options.batchSizes.join(','),
  ]
  const result = spawnSync(binary, args, { env, encoding: 'utf8', maxBuffer: 1 << 20 })
  if (result.error) {
    throw result.error
  }
  if (result.status !== 0) {
    throw new Error(`${binary} failed with exit status ${result.status}: ${result.stderr}`)
  }
  return new Map(JSON.parse(result.stdout).map((timing) => [timing.batch_size, timing.seconds]))
}

function batchesOf(corpus, size) {
  const batches = []
  for (let start = 0; start < corpus.length; start += size) {
    batches.push(corpus.slice(start, start + size))
  }
  return batches
}

// Times `embed(batch)` awaited once per batch, after the same 4 untimed calls as the Rust side.
async function timeCalls(embed, batches) {
  for (const batch of batches.slice(0, 4)) {
    await embed(batch)
  }
  const started = performance.now()
  for (const batch of batches) {
    const vectors = await embed(batch)
    if (vectors.length !== batch.length) {
      throw new Error(`expected ${batch.length} vectors, got ${vectors.length}`)
    }
  }
  return (performance.now() - started) / 1e3
}

async function timeTextEmbedder(binding, corpus, options) {
  const seconds = new Map()
  for (const size of options.batchSizes) {
    // A fresh model per batch size, as the Rust side loads one. It keeps the core's default
    // batch size of 32, so each call runs as one forward pass, as `with_batch_size(N)`
    // makes it in Rust for N up to 32.
    const embedder = binding.TextEmbedder.load()
    seconds.set(size, await timeCalls((batch) => embedder.embed(batch), batchesOf(corpus, size)))
  }
  return seconds
}

async function timeKai(kai, corpus, options) {
  const seconds = new Map()
  for (const size of options.batchSizes) {
    seconds.set(size, await timeCalls((batch) => kai.embedText(batch), batchesOf(corpus, size)))
  }
  return seconds
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

function percent(node, rust) {
  const value = 100 * (node / rust - 1)
  return `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(2)} %`
}

function table(passes, names, calls, options) {
  const nodeNames = names.filter((name) => name !== 'Rust')
  const header = ['batch size', 'calls', 'pass', 'Rust (ms per call)']
  for (const name of nodeNames) {
    header.push(`${name} (ms per call)`, 'overhead')
  }
  const lines = [
    `${options.sentences} sentences, ${options.threads} threads, ${options.rounds} rounds; ` +
      `${cpus()[0]?.model ?? process.arch}, ${availableParallelism()} logical CPUs, Node ${process.version}.`,
    '',
    `| ${header.join(' | ')} |`,
    `| ---: | ---: | --- | ${header.slice(3).map(() => '---:').join(' | ')} |`,
  ]
  for (const size of options.batchSizes) {
    const n = calls.get(size)
    for (const [label, pick] of [['median', median], ['fastest', (values) => Math.min(...values)]]) {
      const rust = pick(passes.get('Rust').get(size))
      const cells = [size, n, label, (1e3 * rust / n).toFixed(3)]
      for (const name of nodeNames) {
        const node = pick(passes.get(name).get(size))
        cells.push((1e3 * node / n).toFixed(3), percent(node, rust))
      }
      lines.push(`| ${cells.join(' | ')} |`)
    }
  }
  return lines.join('\n')
}

async function main() {
  const options = parseOptions()
  // Set before the native module first runs a kernel, because candle's thread pool reads
  // it once. The Rust binary inherits the same environment.
  process.env.RAYON_NUM_THREADS = String(options.threads)
  process.env.KAI_DEVICE = 'cpu'
  const target = resolve(process.env.CARGO_TARGET_DIR || join(homedir(), '.cache', 'kai', 'target'))
  const env = { ...process.env, CARGO_TARGET_DIR: target }

  const workDir = mkdtempSync(join(tmpdir(), 'kai-node-overhead-'))
  try {
    const { binary, module } = build(target, env, workDir)
    const binding = createRequire(import.meta.url)(module)

    const corpus = readFileSync(options.corpus, 'utf8').split('\n').slice(0, options.sentences)
    while (corpus.length && corpus.at(-1) === '') {
      corpus.pop()
    }
    options.sentences = corpus.length
    const calls = new Map(options.batchSizes.map((size) => [size, Math.ceil(corpus.length / size)]))

    const sides = [
      ['Rust', async () => timeRust(binary, options, env)],
      ['TextEmbedder.embed', async () => timeTextEmbedder(binding, corpus, options)],
    ]
    let kai
    if (options.kai) {
      kai = await binding.Kai.open({ store: join(workDir, 'store'), device: 'cpu' })
      sides.push(['Kai.embedText', async () => timeKai(kai, corpus, options)])
    }
    const names = sides.map(([name]) => name)
    const passes = new Map(names.map((name) => [name, new Map(options.batchSizes.map((size) => [size, []]))]))

    for (let round = 0; round < options.rounds; round++) {
      const first = round % sides.length
      for (const [name, measure] of [...sides.slice(first), ...sides.slice(0, first)]) {
        const timings = await measure()
        for (const [size, seconds] of timings) {
          passes.get(name).get(size).push(seconds)
        }
        const summary = [...timings].map(([size, seconds]) => `batch ${size} ${seconds.toFixed(3)} s`)
        console.error(`round ${round + 1} ${name}: ${summary.join(', ')}`)
      }
    }
    await kai?.close()
    console.log(table(passes, names, calls, options))
  } finally {
    rmSync(workDir, { recursive: true, force: true })
  }
}

await main()
