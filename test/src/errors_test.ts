import { ok as assert } from "node:assert/strict";
import { isDiskFull, isIoError } from "../../src/errors.ts";

Deno.test("disk errors are told from bugs, through causes", () => {
  const eio = Object.assign(new Error("Input/output error (os error 5)"), { code: "EIO" });
  const full = new Error("No space left on device (os error 28)");
  const sqlite = new Error("disk I/O error");
  assert(isIoError(eio) && !isDiskFull(eio));
  assert(isIoError(full) && isDiskFull(full));
  assert(isIoError(new Error("commit failed", { cause: sqlite })));
  assert(!isIoError(new TypeError("Cannot read properties of undefined")));
  assert(!isIoError(new Error("os error 50")));
});
