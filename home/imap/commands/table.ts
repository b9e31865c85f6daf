/**
 * The command table: which states allow each command (RFC 9051 §3, §6),
 * checked once before dispatch, and its handler.
 */
import type { Command } from "../ast.ts";
import type { Completion, Session, SessionState } from "../session.ts";
import { capability } from "./capability.ts";
import { noop } from "./noop.ts";
import { logout } from "./logout.ts";
import { starttls } from "./starttls.ts";
import { login } from "./login.ts";
import { authenticate } from "./authenticate.ts";
import { enable } from "./enable.ts";
import { id } from "./id.ts";
import { select } from "./select.ts";
import { list, lsub } from "./list.ts";
import { status } from "./status.ts";
import { fetch } from "./fetch.ts";
import { store } from "./store.ts";
import { append } from "./append.ts";
import { idle } from "./idle.ts";
import { close } from "./close.ts";
import { expunge } from "./expunge.ts";
import { namespace } from "./namespace.ts";
import { subscribe } from "./subscribe.ts";
import { search } from "./search.ts";
import { sort } from "./sort.ts";
import { thread } from "./thread.ts";
import { copy } from "./copy.ts";
import { create } from "./create.ts";
import { deleteMailbox } from "./delete.ts";
import { rename } from "./rename.ts";

/** Each handler takes its own command variant; the table pairs them by name. */
type Handler = (
  s: Session,
  tag: string,
  // deno-lint-ignore no-explicit-any
  cmd: any,
) => Promise<Completion | void> | Completion | void;

export interface CommandSpec {
  states: SessionState[];
  handler: Handler;
}

const any: SessionState[] = ["notauth", "auth", "selected"];
const notAuth: SessionState[] = ["notauth"];
const authed: SessionState[] = ["auth", "selected"];
const selected: SessionState[] = ["selected"];

export const commandTable: Record<Command["name"], CommandSpec> = {
  CAPABILITY: { states: any, handler: capability },
  NOOP: { states: any, handler: noop },
  LOGOUT: { states: any, handler: logout },
  ID: { states: any, handler: id },
  STARTTLS: { states: notAuth, handler: starttls },
  LOGIN: { states: notAuth, handler: login },
  AUTHENTICATE: { states: notAuth, handler: authenticate },
  ENABLE: { states: authed, handler: enable },
  SELECT: { states: authed, handler: select },
  EXAMINE: { states: authed, handler: select },
  CREATE: { states: authed, handler: create },
  DELETE: { states: authed, handler: deleteMailbox },
  RENAME: { states: authed, handler: rename },
  SUBSCRIBE: { states: authed, handler: subscribe },
  UNSUBSCRIBE: { states: authed, handler: subscribe },
  LIST: { states: authed, handler: list },
  LSUB: { states: authed, handler: lsub },
  NAMESPACE: { states: authed, handler: namespace },
  STATUS: { states: authed, handler: status },
  APPEND: { states: authed, handler: append },
  IDLE: { states: authed, handler: idle },
  CHECK: { states: selected, handler: noop },
  CLOSE: { states: selected, handler: close },
  UNSELECT: { states: selected, handler: close },
  EXPUNGE: { states: selected, handler: expunge },
  SEARCH: { states: selected, handler: search },
  FETCH: { states: selected, handler: fetch },
  STORE: { states: selected, handler: store },
  COPY: { states: selected, handler: copy },
  MOVE: { states: selected, handler: copy },
  SORT: { states: selected, handler: sort },
  THREAD: { states: selected, handler: thread },
};
