/**
 * @module daemon/instances/names
 * Instance handles and the namespace of children.
 *
 * Users name instances with a DNS label (`web`, `my-agent`: lowercase letters,
 * digits and `-`, no dots; api/schema/common.ts `ResourceName`). A child that
 * an instance spawns through its MCP server lives in its parent's namespace:
 * its handle is `NAME.PARENT` (`kid.agent`, a grandchild `g.kid.agent`), the
 * way a subdomain sits under its domain. Because a user's name never contains
 * a dot, a guest can never take a name the user will use later (no squatting:
 * `aegis instance start --name kid` is always the user's own `kid`), and two
 * parents' children never collide. The handle still routes: the router's
 * `NAME.localhost` rule takes everything before `.localhost`, so
 * `http://kid.agent.localhost:8099/` (each part a valid hostname label) and
 * the `/kid.agent/` path prefix both reach the child, and `aegis instance list`
 * shows at a glance whose child it is.
 *
 * Inside the parent, the MCP tools also accept the short NAME of its own
 * children (`instance_stop {instance: "kid"}`); see {@link findChildRef}.
 */
import { InvalidRequest } from "../../api/errors.ts";
import type { InstanceRow } from "../registry/instances.ts";

/** Longest handle: a hostname is at most 253 characters, and `.localhost` takes 10 of them. */
export const MAX_HANDLE_LENGTH = 243;

/** The handle of a child named `name` under the parent with handle `parentHandle`. */
export function childHandle(name: string, parentHandle: string): string {
  const handle = `${name}.${parentHandle}`;
  if (handle.length > MAX_HANDLE_LENGTH) {
    throw new InvalidRequest(`child name "${name}" under "${parentHandle}" makes the handle ${handle.length} characters long, over ${MAX_HANDLE_LENGTH}`, "choose a shorter name, or omit it to get a generated one");
  }
  return handle;
}

/** The child of `parent` that `ref` names: its id, its full handle, or its short name. */
export function findChildRef(children: InstanceRow[], parent: InstanceRow, ref: string): InstanceRow | undefined {
  return children.find((c) => c.id === ref || c.handle === ref || c.handle === `${ref}.${parent.handle}`);
}
