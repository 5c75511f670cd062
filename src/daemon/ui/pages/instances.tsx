/**
 * @module daemon/ui/pages/instances
 * The instances list and one instance's page. Rows and the summary block are
 * also what the event stream sends when an instance changes (daemon/ui/sse),
 * so the server's rendering is the only one: the client swaps the fragment.
 *
 * Exposed URLs link to the router (`http://HANDLE.localhost:8099/`), never to
 * the UI's origin: instance content is hostile and must not run with the
 * UI's cookie.
 */
import type { Instance } from "../../../api/schema/instances.ts";
import { Layout } from "./layout.tsx";

/** What rendering an instance needs besides the instance. */
export interface InstanceContext {
  /** The router's origin, e.g. `http://127.0.0.1:8099`. */
  routerOrigin: string;
  /** Handle of an instance by id (for parent/children). */
  handleOf: (id: string) => string | undefined;
  /** Ids of the instance's children. */
  childrenOf: (id: string) => string[];
  /** Wakes since aegisd started. */
  wakesOf: (id: string) => number;
}

/** The URLs an instance is reachable at: the router's NAME.localhost for the first HTTP port, raw TCP for public ports. */
export function exposedUrls(i: Instance, routerOrigin: string): { href: string | null; label: string }[] {
  const out: { href: string | null; label: string }[] = [];
  let served = false;
  for (const p of i.expose) {
    if (p.public_port !== null) out.push({ href: null, label: `tcp 127.0.0.1:${p.public_port} → ${p.guest_port}` });
    else if (!served) {
      served = true;
      const href = `${routerOrigin.replace("://127.0.0.1", `://${i.handle}.localhost`).replace("://localhost", `://${i.handle}.localhost`)}/`;
      out.push({ href, label: `${href} → ${p.guest_port}` });
    } else out.push({ href: null, label: `guest port ${p.guest_port} (not routed)` });
  }
  return out;
}

/** The buttons that make sense in `state`; delete always (it asks first). */
export function Actions(props: { i: Instance }) {
  const { i } = props;
  const acts: [string, string][] = [];
  if (i.state === "running") acts.push(["pause", "Pause"], ["stop", "Stop"]);
  else if (i.state === "paused") acts.push(["resume", "Resume"], ["stop", "Stop"]);
  else if (i.state === "stopped" || i.state === "failed") acts.push(["start", "Start"]);
  return (
    <span class="actions">
      {acts.map(([a, label]) => (
        <button type="button" data-action={a} data-ref={i.id}>
          {label}
        </button>
      ))}
      <button type="button" class="danger" data-action="delete" data-ref={i.id} data-confirm={`Delete instance ${i.handle}? Its disk and snapshot are removed.`}>
        Delete
      </button>
    </span>
  );
}

function Urls(props: { i: Instance; routerOrigin: string }) {
  const urls = exposedUrls(props.i, props.routerOrigin);
  if (urls.length === 0) return <span class="muted">none</span>;
  return (
    <span>
      {urls.map((u) =>
        u.href ? (
          <a href={u.href} target="_blank" rel="noopener noreferrer">
            {u.label}
          </a>
        ) : (
          <span>{u.label}</span>
        ),
      )}
    </span>
  );
}

function InstanceLink(props: { id: string; ctx: InstanceContext }) {
  return <a href={`/instances/${encodeURIComponent(props.id)}`}>{props.ctx.handleOf(props.id) ?? props.id}</a>;
}

/** One row of the instances table (`data-instance` lets the client replace it). */
export function InstanceRow(props: { i: Instance; ctx: InstanceContext }) {
  const { i, ctx } = props;
  const children = ctx.childrenOf(i.id);
  return (
    <tr data-instance={i.id}>
      <td>
        <a href={`/instances/${encodeURIComponent(i.id)}`}>{i.handle}</a>
      </td>
      <td>
        <span class={`state state-${i.state}`} data-field="state">
          {i.state}
        </span>
        {i.error ? <span class="error"> {i.error}</span> : null}
      </td>
      <td>{i.last_active_at ?? "never"}</td>
      <td data-field="wakes">{String(ctx.wakesOf(i.id))}</td>
      <td>{`${i.memory_mb} MiB`}</td>
      <td>
        <Urls i={i} routerOrigin={ctx.routerOrigin} />
      </td>
      <td>{i.parent_id ? <InstanceLink id={i.parent_id} ctx={ctx} /> : <span class="muted">-</span>}</td>
      <td>{children.length === 0 ? <span class="muted">-</span> : children.map((c) => <InstanceLink id={c} ctx={ctx} />)}</td>
      <td>
        <Actions i={i} />
      </td>
    </tr>
  );
}

/** The instances page. */
export function InstancesPage(props: { list: Instance[]; ctx: InstanceContext; csrf: string }) {
  return (
    <Layout title="Instances" csrf={props.csrf}>
      <table id="instances" data-live-list="instances">
        <thead>
          <tr>
            {["Instance", "State", "Last activity", "Wakes¹", "Memory", "Exposed", "Parent", "Children", "Actions"].map((h) => (
              <th>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.list.map((i) => (
            <InstanceRow i={i} ctx={props.ctx} />
          ))}
        </tbody>
      </table>
      {props.list.length === 0 ? <p class="empty">No instances yet: `aegis instance start --name NAME -- CMD` creates one.</p> : null}
      <p class="muted">¹ resumes and boots since aegisd started</p>
    </Layout>
  );
}

/** The summary block of one instance's page (swapped by the client on change). */
export function InstanceSummary(props: { i: Instance; ctx: InstanceContext }) {
  const { i, ctx } = props;
  const field = (k: string, v: unknown) => (
    <>
      <dt>{k}</dt>
      <dd>{v === null || v === undefined || (Array.isArray(v) && v.length === 0) ? "-" : Array.isArray(v) ? v.join(" ") : String(v)}</dd>
    </>
  );
  return (
    <section data-summary={i.id}>
      <p>
        <span class={`state state-${i.state}`} data-field="state">
          {i.state}
        </span>{" "}
        <Actions i={i} />
      </p>
      <dl>
        {field("id", i.id)}
        {field("image", i.image ?? i.kit)}
        {field("command", i.command)}
        {field("memory", `${i.memory_mb} MiB, ${i.vcpus} vCPU`)}
        {field("idle policy", `pause after ${i.pause_after_s}s, stop after ${i.stop_after_s}s`)}
        {field("secrets (names)", i.secrets)}
        {field("env keys", i.env_keys)}
        {field("created", i.created_at)}
        {field("started", i.started_at)}
        {field("last activity", i.last_active_at)}
        {field("wakes (since aegisd started)", ctx.wakesOf(i.id))}
        {field("exit code", i.exit_code)}
        {field("error", i.error)}
        <dt>exposed</dt>
        <dd>
          <Urls i={i} routerOrigin={ctx.routerOrigin} />
          {i.expose.map((p) => (
            <button type="button" data-action="unexpose" data-ref={i.id} data-port={String(p.guest_port)}>
              {`Unexpose ${p.guest_port}`}
            </button>
          ))}
          <form data-expose={i.id}>
            <input name="port" type="number" min="1" max="65535" placeholder="guest port" required />
            <button type="submit">Expose</button>
          </form>
        </dd>
        <dt>parent</dt>
        <dd>{i.parent_id ? <InstanceLink id={i.parent_id} ctx={ctx} /> : "-"}</dd>
        <dt>children</dt>
        <dd>{ctx.childrenOf(i.id).length === 0 ? "-" : ctx.childrenOf(i.id).map((c) => <InstanceLink id={c} ctx={ctx} />)}</dd>
      </dl>
    </section>
  );
}

/** The tether chat with a kit instance's agent (driven by ui.js). */
export function Chat(props: { i: Instance }) {
  const id = encodeURIComponent(props.i.id);
  return (
    <section id="chat" data-chat={`/instances/${id}/chat`}>
      <h2>
        Chat <span id="presence" data-presence="idle"></span>
      </h2>
      <div id="messages"></div>
      <form id="chat-form">
        <input name="text" type="text" autocomplete="off" placeholder={`Message ${props.i.handle}`} required />
        <button type="submit">Send</button>
      </form>
    </section>
  );
}

/** One instance's page: summary, then its output following live. */
export function InstancePage(props: { i: Instance; ctx: InstanceContext; csrf: string }) {
  const { i } = props;
  return (
    <Layout title={`Instance ${i.handle}`} csrf={props.csrf}>
      <InstanceSummary i={i} ctx={props.ctx} />
      {i.kit !== null ? <Chat i={i} /> : null}
      <h2>Run a command</h2>
      <form id="exec-form" data-exec={`/instances/${encodeURIComponent(i.id)}/exec`}>
        <input name="command" type="text" autocomplete="off" placeholder="sh -c command line, e.g. ls -l /" required />
        <button type="submit">Run</button>
      </form>
      <pre id="exec-output" class="output"></pre>
      <h2>Output</h2>
      <pre id="logs" data-logs={`/instances/${encodeURIComponent(i.id)}/logs`}></pre>
    </Layout>
  );
}
