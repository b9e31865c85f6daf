import { startTestBox } from "/work/main/test/e2e/harness.ts";
const box = await startTestBox();
console.log(JSON.stringify({port: box.port, tlsPort: box.tlsPort, ca: box.caFile}));
await new Promise((r) => setTimeout(r, 300000));
await box.stop();
