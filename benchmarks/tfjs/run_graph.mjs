// Run a TF.js graph model on inputs given as raw float32, with TF.js' pure-JS CPU backend (no native
// bindings), and write the named outputs as JSON. Used once to make the parity fixtures of
// tests/fixtures/human_models/ (see benchmarks/tfjs/make_fixture.py, which calls it).
//
//   node run_graph.mjs MODEL.json INPUT.f32 N,H,W,C OUTPUT.json output_name [output_name ...]
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { loadGraphModel } from '@tensorflow/tfjs-converter';

const [modelPath, inputPath, shapeText, outPath, ...outputs] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
const handler = {
  load: async () => {
    const group = spec.weightsManifest[0];
    const buffers = spec.weightsManifest.flatMap((g) => g.paths).map((p) => fs.readFileSync(path.join(path.dirname(modelPath), p)));
    const data = Buffer.concat(buffers);
    return {
      modelTopology: spec.modelTopology,
      format: spec.format,
      generatedBy: spec.generatedBy,
      convertedBy: spec.convertedBy,
      signature: spec.signature,
      userDefinedMetadata: spec.userDefinedMetadata,
      weightSpecs: spec.weightsManifest.flatMap((g) => g.weights),
      weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
    };
  },
};
await tf.setBackend('cpu');
const model = await loadGraphModel(handler);
const shape = shapeText.split(',').map(Number);
const raw = fs.readFileSync(inputPath);
const input = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4), shape);
const started = Date.now();
const result = await model.executeAsync(input, outputs);
const list = Array.isArray(result) ? result : [result];
const out = { backend: tf.getBackend(), tfjs: tf.version_core, seconds: (Date.now() - started) / 1000, outputs: {} };
for (let i = 0; i < outputs.length; i++) {
  out.outputs[outputs[i]] = { shape: list[i].shape, values: Array.from(await list[i].data()) };
}
fs.writeFileSync(outPath, JSON.stringify(out));
console.log(`${outputs.length} outputs, ${out.seconds}s on ${out.backend}`);
