/**
 * @module mcp/tools/instances
 * Instance lifecycle tools: start (create and boot), list, info, stop,
 * delete, pause and resume. Instances are long-lived VMs that keep their
 * disk; paused and stopped ones wake on exec, files, tether or a router
 * connection, so a model rarely needs resume.
 */
import { NetworkPolicySchema } from "../../api/schema/common.ts";
import { z } from "zod";
import { ok } from "../result.ts";
import { defineTool } from "../tool.ts";
import { Command, Env, GuestPort, ImageRef, InstanceRef, NewName, SecretNames, User, Workdir } from "./_fields.ts";
import { ensureImage, instanceView, routerUrl } from "./_view.ts";

const instanceStart = defineTool({
  name: "instance_start",
  title: "Start an instance (long-lived VM)",
  description:
    "Create and boot a long-lived Aegis instance: a microVM with its own kernel and disk that keeps running (and keeps its files) until stopped or deleted; it pauses when idle and wakes on exec, file access, tether messages or a router connection. Without a command the image's entrypoint runs; use e.g. [\"sleep\", \"infinity\"] for an idle VM to exec into. A stopped instance of the same name is started again instead. `expose` lists guest ports; the first is served by the Aegis router and its URL is returned. Returns the instance (id, name, state, exposed URLs).",
  input: z
    .object({
      name: NewName.optional(),
      image: ImageRef.optional(),
      kit: z.string().min(1).optional().describe("Installed Agent Kit whose image, command and defaults to use (aegis kit list)"),
      command: Command.optional(),
      env: Env.optional(),
      secrets: SecretNames.optional(),
      expose: z.array(GuestPort).max(16).optional().describe("Guest TCP ports to expose; the first is served by the router (the server must listen on 0.0.0.0)"),
      workdir: Workdir.optional(),
      user: User.optional(),
      memory_mb: z.number().int().min(128).max(65536).optional().describe("Guest memory in MiB (default 512)"),
      vcpus: z.number().int().min(1).max(64).optional().describe("Guest vCPUs (default 1)"),
      pause_after_s: z.number().int().min(0).optional().describe("Seconds idle before pausing (0 = never; daemon default 60)"),
      stop_after_s: z.number().int().min(0).optional().describe("Seconds paused before stopping (0 = never; daemon default 1200)"),
      network: NetworkPolicySchema.optional().describe("Egress policy: mode 'none' for no network, or ordered allow/deny rules (CIDR, DOMAIN, *.DOMAIN with optional :PORT, host:PORT) over the default (public internet only)"),
    })
    .strict(),
  async run(args, { link }) {
    return link.call(async (c) => {
      const { expose, image, ...rest } = args;
      const digest = image === undefined ? undefined : await ensureImage(c, image);
      const inst = await c.createInstance({ ...rest, image: digest, expose: expose?.map(String) });
      return ok(instanceView(inst, await routerUrl(c)));
    });
  },
});

const instanceList = defineTool({
  name: "instance_list",
  title: "List instances",
  description: "List every Aegis instance on this host with its id, name, state (starting, running, paused, stopping, stopped, failed), image and exposed URLs.",
  input: z.object({}).strict(),
  readOnly: true,
  async run(_args, { link }) {
    return link.call(async (c) => {
      const [{ instances }, url] = await Promise.all([c.listInstances(), routerUrl(c)]);
      return ok({ instances: instances.map((i) => instanceView(i, url)) });
    });
  },
});

const instanceInfo = defineTool({
  name: "instance_info",
  title: "Describe an instance",
  description: "Show one instance: state, image, command, working directory, user, secret names and env variable names (never values), exposed ports with URLs, resources, idle policy, exit code and last error.",
  input: z.object({ instance: InstanceRef }).strict(),
  readOnly: true,
  async run({ instance }, { link }) {
    return link.call(async (c) => ok(instanceView(await c.getInstance(instance), await routerUrl(c))));
  },
});

/** pause, resume and stop share a shape: one instance in, the instance out. */
function action(name: "instance_pause" | "instance_resume", verb: "pause" | "resume", title: string, description: string) {
  return defineTool({
    name,
    title,
    description,
    input: z.object({ instance: InstanceRef }).strict(),
    async run({ instance }, { link }) {
      return link.call(async (c) => ok(instanceView(await c.instanceAction(instance, verb), await routerUrl(c))));
    },
  });
}

const instanceStop = defineTool({
  name: "instance_stop",
  title: "Stop an instance",
  description:
    "Power an instance's VM off. Its disk (and workspace) stay; it boots again on the next exec, file access, message or connection, or with instance_resume. With snapshot: true its memory is saved first so it resumes where it was (not for instances with secrets or a workspace).",
  input: z.object({ instance: InstanceRef, snapshot: z.boolean().default(false).describe("Save memory first so the next start resumes the processes") }).strict(),
  async run({ instance, snapshot }, { link }) {
    return link.call(async (c) => ok(instanceView(await c.instanceAction(instance, "stop", { snapshot }), await routerUrl(c))));
  },
});

const instanceDelete = defineTool({
  name: "instance_delete",
  title: "Delete an instance",
  description: "Stop an instance and delete it with its disk, logs and tether history (a named workspace on the host is kept). Cannot be undone.",
  input: z.object({ instance: InstanceRef }).strict(),
  destructive: true,
  async run({ instance }, { link }) {
    return link.call(async (c) => {
      const inst = await c.getInstance(instance);
      await c.deleteInstance(inst.id);
      return ok({ deleted: true, id: inst.id, name: inst.handle });
    });
  },
});

/** The lifecycle tools, in `tools/list` order. */
export const instanceTools = [
  instanceStart,
  instanceList,
  instanceInfo,
  instanceStop,
  instanceDelete,
  action("instance_pause", "pause", "Pause an instance", "Freeze an instance's VM in memory (no CPU used); it resumes in well under a second on the next exec, file access, message or connection, or with instance_resume."),
  action("instance_resume", "resume", "Resume or start an instance", "Resume a paused instance, or boot a stopped one (from its snapshot when it has one). Rarely needed: exec, files, tether and router connections wake instances by themselves."),
];
