/** What the benchmarks read about a running process from Linux's /proc. */

/** CPU time (user + system) a process has used so far, ms (/proc/PID/stat, clock ticks). */
export function cpuMsOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces) in parentheses: utime and stime are
  // the 14th and 15th fields of the line (proc(5)).
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10; // USER_HZ is 100 on Linux
}
