/**
 * Micro-benchmark: median µs per seal of a 10 KB message, age-encryption's
 * Encrypter against Hearth's native-crypto sealer (src/crypto/age_seal.ts).
 *
 * Run: `npx -y deno@2.9.6 run -A bench/seal_bench.ts [iterations]`
 */
import * as age from "age-encryption";
import { generateAccountKey, sealToRecipient } from "../src/crypto/age.ts";

const SIZE = 10 * 1024;
const iterations = Number(Deno.args[0] ?? 2000);
const warmup = Math.max(100, iterations / 10);

async function medianMicros(seal: () => Promise<Uint8Array>): Promise<number> {
  for (let i = 0; i < warmup; i++) await seal();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await seal();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1] * 1000;
}

const { recipient } = await generateAccountKey();
const data = crypto.getRandomValues(new Uint8Array(SIZE));

const library = await medianMicros(async () => {
  const e = new age.Encrypter();
  e.addRecipient(recipient);
  return await e.encrypt(data);
});
const hearth = await medianMicros(() => sealToRecipient(data, recipient));

console.log(`seal 10 KB, median of ${iterations}:`);
console.log(`  age-encryption Encrypter  ${library.toFixed(1)} µs`);
console.log(`  hearth sealToRecipient    ${hearth.toFixed(1)} µs`);
console.log(`  speed-up                  ${(library / hearth).toFixed(1)}×`);
