// Run face-api's face_expression model (npm @vladmandic/face-api, MIT) on face crops, with TF.js' WASM
// backend, and write its 7 class probabilities per face as JSON. Used by benchmarks/peers.py (--face-api-dir).
//
//   node face_api_expressions.mjs FACES.u8 N,H,W OUT.json
//
// FACES.u8: N grey HxW uint8 crops; each is given to faceExpressionNet.predictExpressions as an RGB tensor
// (grey replicated), which pads to a square, resizes to 112x112 and normalises as face-api does.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// the CommonJS build on @tensorflow/tfjs with the WASM backend (pure WebAssembly, no native bindings; TFJS_BACKEND=cpu
// selects the pure-JS one: same numbers, ~10x slower)
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const tf = faceapi.tf;
const [facesPath, shapeText, outPath] = process.argv.slice(2);
const [n, h, w] = shapeText.split(',').map(Number);
await tf.setBackend(process.env.TFJS_BACKEND || 'wasm');
await tf.ready();
const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
await faceapi.nets.faceExpressionNet.loadFromDisk(modelDir);
const raw = fs.readFileSync(facesPath);
const labels = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'];
const probs = [];
const started = Date.now();
for (let i = 0; i < n; i++) {
  const grey = tf.tensor3d(new Uint8Array(raw.buffer, raw.byteOffset + i * h * w, h * w), [h, w, 1], 'int32');
  const rgb = tf.tidy(() => tf.concat([grey, grey, grey], 2).toFloat());
  const result = await faceapi.nets.faceExpressionNet.predictExpressions(rgb);
  probs.push(labels.map((k) => result[k]));
  tf.dispose([grey, rgb]);
}
const seconds = (Date.now() - started) / 1000;
const pkg = JSON.parse(fs.readFileSync(path.join(modelDir, '..', 'package.json'), 'utf8'));
fs.writeFileSync(outPath, JSON.stringify({ labels, probs, ms_per_face: (1000 * seconds) / n, version: pkg.version,
  tfjs: tf.version_core, backend: tf.getBackend() }));
console.log(`${n} faces, ${seconds}s on ${tf.getBackend()}`);
