/**
 * A free loopback port between 20000 and 32767, for a server a test starts as a separate program
 * on a port chosen beforehand (pebble, `hearth home` with fixed ports). A port taken from the
 * kernel with port 0 lies in its ephemeral range (32768 and up), where other tests' port-0
 * listeners and their outgoing connections' source ports land: under CI's parallel load one of them
 * took such a port before the program bound it. Below that range only an explicit choice lands.
 */
export function freeLowPort(): number {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_768);
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
      return port;
    } catch (e) {
      if (!(e instanceof Deno.errors.AddrInUse)) throw e;
    }
  }
}
