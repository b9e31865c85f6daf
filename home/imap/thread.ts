/**
 * THREAD (RFC 5256): ORDEREDSUBJECT (§2.1) and REFERENCES (§2.2), and the
 * response syntax (§4). Base subjects compare with i;ascii-casemap, as SORT
 * SUBJECT does; the sent date is the Date: header, else the internal date.
 *
 * @module
 */

import { loadMessageInfos, type SearchableMessage } from "./search.ts";
import { asciiCasemap, compareCodePoints } from "./sort.ts";

/** One node of a thread tree; `number` is null for a dummy (a missing parent kept as a root). */
export interface ThreadNode {
  number: number | null;
  children: ThreadNode[];
}

/** What threading needs of one message. */
interface Meta {
  number: number;
  seq: number;
  date: number;
  subject: string; // base subject, i;ascii-casemap folded
  isReply: boolean;
  messageId: string | null;
  references: string[];
}

/**
 * Threads the messages; nodes carry UIDs when `useUid`, sequence numbers otherwise.
 *
 * @example
 * ```ts
 * formatThreads(await threadMessages("REFERENCES", view, true)); // "(2)(3 6 (4 23)(44 7 96))"
 * ```
 */
export async function threadMessages(
  algorithm: "REFERENCES" | "ORDEREDSUBJECT",
  messages: readonly SearchableMessage[],
  useUid = false,
): Promise<ThreadNode[]> {
  const infos = await loadMessageInfos(messages);
  const metas: Meta[] = messages.map((m, i) => {
    const h = infos[i].headers;
    return {
      number: useUid ? m.uid : m.seq,
      seq: m.seq,
      date: h.date ?? m.internalDate,
      subject: asciiCasemap(h.baseSubject),
      isReply: isReplyOrForward(h.subject),
      messageId: h.messageId || null,
      // RFC 5256 §2.2 step 1: without References, the first In-Reply-To id stands in.
      references: h.references.length > 0
        ? h.references.filter((r) => r)
        : h.inReplyTo
        ? [h.inReplyTo]
        : [],
    };
  }).sort((a, b) => a.seq - b.seq);
  return algorithm === "ORDEREDSUBJECT" ? orderedSubject(metas) : references(metas);
}

/**
 * The response text after `* THREAD ` (RFC 5256 §4): a lone child follows its
 * parent in the same list; two or more children each get their own list.
 */
export function formatThreads(nodes: readonly ThreadNode[]): string {
  return nodes.map(formatThread).join("");
}

function formatThread(node: ThreadNode): string {
  const parts: string[] = [];
  let cur = node;
  for (;;) {
    if (cur.number !== null) parts.push(String(cur.number));
    if (cur.children.length === 1) {
      cur = cur.children[0];
      continue;
    }
    if (cur.children.length > 1) parts.push(cur.children.map(formatThread).join(""));
    break;
  }
  return `(${parts.join(" ")})`;
}

function byDate(a: Meta, b: Meta): number {
  return a.date - b.date || a.seq - b.seq;
}

/** RFC 5256 §2.1: one thread per base subject; the earliest message is the parent of the rest. */
function orderedSubject(metas: Meta[]): ThreadNode[] {
  const sorted = [...metas].sort((a, b) => compareCodePoints(a.subject, b.subject) || byDate(a, b));
  const threads: { root: Meta; node: ThreadNode }[] = [];
  let current: ThreadNode | null = null;
  for (let i = 0; i < sorted.length; i++) {
    const m = sorted[i];
    const node: ThreadNode = { number: m.number, children: [] };
    if (current && sorted[i - 1].subject === m.subject) current.children.push(node);
    else {
      current = node;
      threads.push({ root: m, node });
    }
  }
  return threads.sort((a, b) => byDate(a.root, b.root)).map((t) => t.node);
}

/**
 * Subjects that mark a reply or forward for §2.2 step 5: a `Re:`/`Fw:`/`Fwd:`
 * leader (possibly after or with `[blob]`s), a `[Fwd: …]` wrapper or a
 * `(fwd)` trailer; the same things the base-subject extraction removes.
 */
function isReplyOrForward(subject: string): boolean {
  return /^\s*(\[[^\][]*\]\s*)*(re|fwd?)\s*(\[[^\][]*\])?\s*:/i.test(subject) ||
    /^\s*\[fwd:/i.test(subject) || /\(fwd\)\s*$/i.test(subject);
}

class Container {
  parent: Container | null = null;
  children: Container[] = [];
  constructor(public msg: Meta | null) {}
}

function link(parent: Container, child: Container): void {
  child.parent = parent;
  parent.children.push(child);
}

function unlink(child: Container): void {
  const siblings = child.parent!.children;
  siblings.splice(siblings.indexOf(child), 1);
  child.parent = null;
}

/** True when `child` is `parent` or one of its ancestors, so that the link would make a loop. */
function wouldLoop(parent: Container, child: Container): boolean {
  if (child === parent) return true;
  if (child.children.length === 0) return false; // the common case: no walk up the chain
  for (let c: Container | null = parent; c; c = c.parent) if (c === child) return true;
  return false;
}

/** RFC 5256 §2.2. */
function references(metas: Meta[]): ThreadNode[] {
  // Step 1: the id table, and parent/child links from References.
  const byId = new Map<string, Container>();
  const all: Container[] = [];
  const lookup = (id: string): Container => {
    let c = byId.get(id);
    if (!c) {
      c = new Container(null);
      byId.set(id, c);
      all.push(c);
    }
    return c;
  };
  for (const m of metas) {
    let self: Container;
    const known = m.messageId ? byId.get(m.messageId) : undefined;
    if (m.messageId && known && known.msg === null) {
      self = known;
      self.msg = m;
    } else {
      // 1A: no Message-ID, or a duplicate of one already seen: a unique container.
      self = new Container(m);
      if (m.messageId && !known) byId.set(m.messageId, self);
      all.push(self);
    }
    // 1B: link consecutive references unless already parented or it would loop.
    let prev: Container | null = null;
    for (const id of m.references) {
      const c = lookup(id);
      if (prev && c.parent === null && !wouldLoop(prev, c)) link(prev, c);
      prev = c;
    }
    // 1C: the last reference is the parent, replacing any guessed one.
    if (self.parent) unlink(self);
    if (prev && !wouldLoop(prev, self)) link(prev, self);
  }

  // Steps 2-4: the root set, with dummies pruned.
  let roots = pruneDummies(all.filter((c) => c.parent === null));

  // Step 5 needs each dummy's first child to be its earliest one.
  sortSiblings(roots);
  roots = groupBySubject(roots);

  // Step 6: siblings by sent date, a dummy by its first child.
  sortSiblings(roots);
  return roots.map(toNode);
}

/** RFC 5256 §2.2 step 4, bottom-up without recursion (reference chains can be long). */
function pruneDummies(roots: Container[]): Container[] {
  for (const c of postOrder(roots)) {
    if (c.msg !== null || c.parent === null) continue;
    // 4A drops an empty dummy; 4B puts a dummy's children in its place.
    const siblings = c.parent.children;
    for (const child of c.children) child.parent = c.parent;
    siblings.splice(siblings.indexOf(c), 1, ...c.children);
  }
  const out: Container[] = [];
  for (const c of roots) {
    if (c.msg !== null || c.children.length > 1) out.push(c);
    else if (c.children.length === 1) {
      // 4B: only a lone child is promoted to the root set.
      c.children[0].parent = null;
      out.push(c.children[0]);
    }
  }
  return out;
}

/** RFC 5256 §2.2 step 5: roots with the same base subject become one thread. */
function groupBySubject(roots: Container[]): Container[] {
  const subjectOf = (c: Container): string => (c.msg ?? c.children[0].msg!).subject;
  const table = new Map<string, Container>();
  for (const c of roots) {
    const subject = subjectOf(c);
    if (subject === "") continue;
    const old = table.get(subject);
    if (
      !old || (c.msg === null && old.msg !== null) ||
      (old.msg !== null && c.msg !== null && old.msg.isReply && !c.msg.isReply)
    ) table.set(subject, c);
  }
  const out = [...roots];
  const position = new Map(roots.map((c, i) => [c, i]));
  const removed = new Set<Container>();
  for (const c of roots) {
    if (removed.has(c) || c.parent !== null) continue; // already merged into another root
    const subject = subjectOf(c);
    const old = subject === "" ? undefined : table.get(subject);
    if (!old || old === c) continue;
    if (old.msg === null && c.msg === null) {
      for (const child of c.children) link(old, child);
      c.children = [];
      removed.add(c);
    } else if (old.msg === null) {
      link(old, c);
      removed.add(c);
    } else if (c.msg === null) {
      link(c, old);
      removed.add(old);
      table.set(subject, c);
    } else if (!old.msg.isReply && c.msg.isReply) {
      link(old, c);
      removed.add(c);
    } else if (old.msg.isReply && !c.msg.isReply) {
      link(c, old);
      removed.add(old);
      table.set(subject, c);
    } else {
      const dummy = new Container(null);
      out[position.get(old)!] = dummy;
      link(dummy, old);
      link(dummy, c);
      removed.add(c);
      table.set(subject, dummy);
    }
  }
  return out.filter((c) => !removed.has(c));
}

function sortSiblings(roots: Container[]): void {
  const key = (c: Container): Meta => c.msg ?? c.children[0].msg!;
  const cmp = (a: Container, b: Container) => byDate(key(a), key(b));
  // Children before parents, so that a dummy's first child is already its earliest.
  for (const c of postOrder(roots)) c.children.sort(cmp);
  roots.sort(cmp);
}

/** Every container under `roots`, each after all of its descendants. */
function postOrder(roots: Container[]): Container[] {
  const out: Container[] = [];
  const stack: [Container, boolean][] = roots.map((c) => [c, false]);
  while (stack.length > 0) {
    const [c, expanded] = stack.pop()!;
    if (expanded) out.push(c);
    else {
      stack.push([c, true]);
      for (const child of c.children) stack.push([child, false]);
    }
  }
  return out;
}

function toNode(root: Container): ThreadNode {
  const node: ThreadNode = { number: root.msg?.number ?? null, children: [] };
  const stack: [Container, ThreadNode][] = [[root, node]];
  while (stack.length > 0) {
    const [c, n] = stack.pop()!;
    for (const child of c.children) {
      const childNode: ThreadNode = { number: child.msg?.number ?? null, children: [] };
      n.children.push(childNode);
      stack.push([child, childNode]);
    }
  }
  return node;
}
