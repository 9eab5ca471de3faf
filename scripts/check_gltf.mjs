#!/usr/bin/env node
// Checks kai's GLB files with independent readers.
//
//   node scripts/check_gltf.mjs validate FILE...
//       Runs the Khronos glTF validator on each file, prints its error, warning, info
//       and hint counts and the messages, and fails when any file has an error.
//   node scripts/check_gltf.mjs compare COMPRESSED.glb PLAIN.glb
//       Decodes both files with glTF Transform (with the meshoptimizer decoder for
//       EXT_meshopt_compression) and fails unless they contain the same triangles. Each
//       triangle is compared by its corners' positions, normals and colours, so the
//       vertex and triangle order may differ, but the values must be equal. Colours are
//       compared as normalized floats to within 1e-6.
//
// The tools are installed from scripts/gltf-check/package-lock.json (exact versions)
// into $KAI_CACHE_DIR/gltf-tools (default ~/.cache/kai/gltf-tools), again whenever the
// lock file changes. Needs Node 18 or newer and npm with access to the npm registry on
// the first run.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const scriptDir = path.dirname(fileURLToPath(import.meta.url));
const manifestDir = path.join(scriptDir, 'gltf-check');

function cacheRoot() {
  if (process.env.KAI_CACHE_DIR) return process.env.KAI_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'kai');
}

/** Installs the pinned tools unless the installed lock file equals the committed one. */
function installTools() {
  const tools = path.join(cacheRoot(), 'gltf-tools');
  const lock = path.join(manifestDir, 'package-lock.json');
  const installedLock = path.join(tools, 'installed-lock.json');
  const committedLock = fs.readFileSync(lock);
  if (fs.existsSync(installedLock) && fs.readFileSync(installedLock).equals(committedLock)) {
    return tools;
  }
  fs.rmSync(tools, { recursive: true, force: true });
  fs.mkdirSync(tools, { recursive: true });
  fs.copyFileSync(path.join(manifestDir, 'package.json'), path.join(tools, 'package.json'));
  fs.copyFileSync(lock, path.join(tools, 'package-lock.json'));
  console.error(`installing the glTF tools into ${tools}`);
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: tools,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  // Written last, so an interrupted install is repeated.
  fs.writeFileSync(installedLock, committedLock);
  return tools;
}

async function importTool(tools, name) {
  const { createRequire } = await import('node:module');
  const require = createRequire(path.join(tools, 'package.json'));
  return import(pathToFileURL(require.resolve(name)).href);
}

async function validate(tools, files) {
  const validatorModule = await importTool(tools, 'gltf-validator');
  const validator = validatorModule.default ?? validatorModule;
  let failed = 0;
  for (const file of files) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {
      uri: path.basename(file),
      maxIssues: 1000,
      // kai writes no external resources, so any reference to one is a failure.
      externalResourceFunction: (uri) => Promise.reject(new Error(`external resource ${uri}`)),
    });
    const issues = report.issues;
    console.log(
      `${file}: ${issues.numErrors} errors, ${issues.numWarnings} warnings, ` +
        `${issues.numInfos} infos, ${issues.numHints} hints`,
    );
    for (const message of issues.messages) {
      const severity = ['error', 'warning', 'info', 'hint'][message.severity] ?? message.severity;
      console.log(`  ${severity} ${message.code} at ${message.pointer ?? '-'}: ${message.message}`);
    }
    if (issues.numErrors > 0) failed += 1;
  }
  if (failed > 0) {
    console.error(`${failed} of ${files.length} files have validation errors`);
    process.exit(1);
  }
}

/** Reads every triangle primitive of a file into corner records. */
async function readTriangles(tools, file) {
  const { NodeIO } = await importTool(tools, '@gltf-transform/core');
  const { ALL_EXTENSIONS } = await importTool(tools, '@gltf-transform/extensions');
  const { MeshoptDecoder } = await importTool(tools, 'meshoptimizer');
  await MeshoptDecoder.ready;
  const io = new NodeIO()
    .registerExtensions(ALL_EXTENSIONS)
    .registerDependencies({ 'meshopt.decoder': MeshoptDecoder });
  const document = await io.read(file);
  const root = document.getRoot();
  const triangles = [];
  let vertices = 0;
  const attributes = new Set();
  const extensions = root.listExtensionsUsed().map((e) => e.extensionName);
  for (const mesh of root.listMeshes()) {
    for (const primitive of mesh.listPrimitives()) {
      if (primitive.getMode() !== 4) throw new Error(`${file}: primitive mode ${primitive.getMode()} is not triangles`);
      const position = primitive.getAttribute('POSITION');
      const normal = primitive.getAttribute('NORMAL');
      const color = primitive.getAttribute('COLOR_0');
      for (const name of primitive.listSemantics()) attributes.add(name);
      const count = position.getCount();
      vertices += count;
      const colorScale = color && color.getNormalized()
        ? { 1: 255, 2: 65535, 4: 1 }[color.getArray().BYTES_PER_ELEMENT]
        : 1;
      const record = (v) => {
        const values = [...position.getElement(v, [])];
        if (normal) values.push(...normal.getElement(v, []));
        if (color) {
          // Only RGB: an opaque VEC4 and a VEC3 describe the same colour.
          const raw = Array.from(color.getArray().subarray(v * color.getElementSize(), v * color.getElementSize() + 3));
          values.push(...raw.map((c) => Math.round((c / colorScale) * 1e6) / 1e6));
        }
        return values.join(',');
      };
      const indices = primitive.getIndices();
      const indexAt = indices ? (i) => indices.getScalar(i) : (i) => i;
      const indexCount = indices ? indices.getCount() : count;
      for (let i = 0; i + 2 < indexCount; i += 3) {
        const corners = [record(indexAt(i)), record(indexAt(i + 1)), record(indexAt(i + 2))];
        // Rotate to start at the smallest corner; the winding is kept.
        let first = 0;
        for (let k = 1; k < 3; k++) if (corners[k] < corners[first]) first = k;
        triangles.push([0, 1, 2].map((k) => corners[(first + k) % 3]).join(' | '));
      }
    }
  }
  return { triangles, vertices, attributes: [...attributes].sort(), extensions };
}

async function compare(tools, compressedFile, plainFile) {
  const compressed = await readTriangles(tools, compressedFile);
  const plain = await readTriangles(tools, plainFile);

  console.log(
    `${compressedFile}: ${compressed.triangles.length} triangles, ${compressed.vertices} vertices, ` +
      `attributes ${compressed.attributes.join(' ')}, extensions [${compressed.extensions.join(' ')}]`,
  );
  console.log(
    `${plainFile}: ${plain.triangles.length} triangles, ${plain.vertices} vertices, ` +
      `attributes ${plain.attributes.join(' ')}, extensions [${plain.extensions.join(' ')}]`,
  );

  const problems = [];
  if (compressed.attributes.join() !== plain.attributes.join()) {
    problems.push(`attributes differ: ${compressed.attributes} vs ${plain.attributes}`);
  }
  const counts = new Map();
  for (const t of plain.triangles) counts.set(t, (counts.get(t) ?? 0) + 1);
  let unmatched = 0;
  for (const t of compressed.triangles) {
    const left = counts.get(t) ?? 0;
    if (left === 0) unmatched += 1;
    else counts.set(t, left - 1);
  }
  const missing = [...counts.values()].reduce((a, b) => a + b, 0);
  if (unmatched > 0 || missing > 0) {
    problems.push(`${unmatched} triangles of the compressed file are not in the plain one, ${missing} of the plain file are missing`);
  }

  if (problems.length > 0) {
    for (const p of problems) console.error(`mismatch: ${p}`);
    process.exit(1);
  }
  console.log('same triangles');
}

const [mode, ...files] = process.argv.slice(2);
if (mode === 'validate' && files.length > 0) {
  await validate(installTools(), files);
} else if (mode === 'compare' && files.length === 2) {
  await compare(installTools(), files[0], files[1]);
} else {
  console.error('usage: node scripts/check_gltf.mjs validate FILE... | compare COMPRESSED.glb PLAIN.glb');
  process.exit(2);
}
