/**
 * @module daemon/ui/pages/tables
 * The read-only pages: tasks, images, apps with their releases, kits, secret
 * names (only `SecretsService.list`, which never decrypts: no value can reach
 * a page) and the daemon's status.
 */
import type { App } from "../../../api/schema/apps.ts";
import type { ImageRecord } from "../../../api/schema/images.ts";
import type { Kit } from "../../../api/schema/kits.ts";
import type { z } from "zod";
import type { SecretInfo } from "../../../api/schema/secrets.ts";
import type { Status } from "../../../api/schema/status.ts";
import type { Task } from "../../../api/schema/tasks.ts";
import type { Check } from "../../../doctor/checks.ts";
import { Layout, Table } from "./layout.tsx";

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** Recent tasks. */
export function TasksPage(props: { tasks: Task[]; csrf: string }) {
  return (
    <Layout title="Tasks" csrf={props.csrf}>
      <Table
        head={["Task", "State", "Command", "Image", "Exit", "Created", "Finished"]}
        rows={props.tasks.map((t) => [t.id, t.state, t.command.join(" "), t.image ?? "-", t.exit_code ?? t.signal ?? t.error ?? "-", t.created_at, t.finished_at ?? "-"])}
        empty="No tasks."
      />
    </Layout>
  );
}

/** Pulled images. */
export function ImagesPage(props: { images: ImageRecord[]; csrf: string }) {
  return (
    <Layout title="Images" csrf={props.csrf}>
      <form id="pull-form">
        <input name="ref" type="text" autocomplete="off" placeholder="alpine:3.21" required />
        <button type="submit">Pull</button>
      </form>
      <pre id="pull-output" class="output"></pre>
      <Table
        head={["Reference", "Digest", "Platform", "Size", "Root fs", "Pulled"]}
        rows={props.images.map((i) => [i.ref, i.digest.slice(0, 19), i.platform, mib(i.size), mib(i.rootfs_size), i.created_at])}
        empty="No images: `aegis image pull REF` pulls one."
      />
    </Layout>
  );
}

/** Apps and their releases. */
export function AppsPage(props: { apps: App[]; csrf: string }) {
  return (
    <Layout title="Apps and releases" csrf={props.csrf}>
      <Table
        head={["App", "Image", "Command", "Expose", "Releases"]}
        rows={props.apps.map((a) => [
          a.name,
          a.image,
          a.command.join(" ") || "-",
          a.expose.join(", ") || "-",
          a.releases.length === 0 ? "-" : a.releases.map((r) => `${r.label ?? r.id} (${r.created_at})`).join(", "),
        ])}
        empty="No apps."
      />
    </Layout>
  );
}

/** Installed kits. */
export function KitsPage(props: { kits: Kit[]; csrf: string }) {
  return (
    <Layout title="Kits" csrf={props.csrf}>
      <Table
        head={["Kit", "Version", "Image", "Status", "Installed", "Description"]}
        rows={props.kits.map((k) => [k.manifest.name, k.manifest.version, k.manifest.image, k.status, k.installed_at, k.manifest.description ?? ""])}
        empty="No kits installed."
      />
    </Layout>
  );
}

/** Secret names per scope (never values). */
export function SecretsPage(props: { scopes: { label: string; secrets: z.infer<typeof SecretInfo>[] }[]; csrf: string }) {
  return (
    <Layout title="Secrets (names only)" csrf={props.csrf}>
      <Table
        head={["Scope", "Name", "Created", "Updated"]}
        rows={props.scopes.flatMap((s) => s.secrets.map((x) => [s.label, x.name, x.created_at, x.updated_at]))}
        empty="No secrets."
      />
    </Layout>
  );
}

/** The daemon's status and the host checks of `aegis doctor`. */
export function StatusPage(props: { status: Status; checks: Check[]; csrf: string }) {
  const s = props.status;
  return (
    <Layout title="Daemon status and doctor" csrf={props.csrf}>
      <Table
        head={["Field", "Value"]}
        rows={[
          ["version", s.version],
          ["pid", String(s.pid)],
          ["home", s.home],
          ["backend", `${s.backend} (${s.backend_reason})`],
          ["acceleration", String(s.accel)],
          ["pause/resume", String(s.capabilities.pause_resume)],
          ["memory snapshots", String(s.capabilities.memory_snapshots)],
          ["router", s.router_url],
          ["kits installed", String(s.kits_installed)],
        ]}
        empty=""
      />
      <h2>Kit daemons</h2>
      <Table
        head={["Daemon", "Kit", "State", "Pid", "Restarts", "Last exit"]}
        rows={s.daemons.map((d) => [d.name, d.kit, d.state, d.pid === null ? "-" : String(d.pid), String(d.restarts), d.last_exit === null ? "-" : String(d.last_exit)])}
        empty="No kit daemons."
      />
      <h2>Doctor</h2>
      <Table head={["Check", "OK", "Detail"]} rows={props.checks.map((c) => [c.name, c.ok ? "yes" : "NO", c.detail])} empty="" />
    </Layout>
  );
}
