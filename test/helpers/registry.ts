/**
 * A real registry for tests: Debian's `docker-registry` (distribution 2.8) on
 * a free 127.0.0.1 port with a temp storage dir, optionally behind a small
 * Bun token server (the distribution token spec: RS256 JWTs with an x5c
 * chain that the registry checks against a self-signed cert made with
 * openssl here). Use with `await using`.
 */
import { createSign, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Options of {@link startRegistry}. */
export interface RegistryOptions {
  /** Require bearer tokens from a local token server. */
  tokenAuth?: boolean;
  /** Users accepted by the token server (Basic); repos under `private/` need one. */
  users?: Record<string, string>;
}

/** A running test registry. */
export interface TestRegistry extends AsyncDisposable {
  /** `127.0.0.1:PORT`, as used in image references. */
  host: string;
  /** `http://127.0.0.1:PORT` */
  base: string;
  /** Storage root of the registry (blobs under docker/registry/v2/blobs). */
  storage: string;
  /** A push-capable `Bearer ...` header for `repo` (token auth only). */
  pushAuth(repo: string): string | undefined;
  /** Token requests seen by the token server. */
  tokenRequests: { scope: string | null; user: string | null }[];
  /** Path of a blob's data file inside the registry storage. */
  blobFile(digest: string): string;
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

async function run(argv: string[]): Promise<void> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err}`);
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/** Start a registry (and a token server when asked). */
export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "aegis-reg-"));
  const storage = join(dir, "storage");
  const port = await freePort();
  const tokenRequests: TestRegistry["tokenRequests"] = [];
  let tokenServer: ReturnType<typeof Bun.serve> | undefined;
  let sign: ((repo: string, actions: string[], sub: string) => string) | undefined;
  let authYaml = "";
  if (opts.tokenAuth) {
    await run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "2", "-subj", "/CN=aegis-test-token"]);
    const key = readFileSync(join(dir, "key.pem"), "utf8");
    const certDer = readFileSync(join(dir, "cert.pem"), "utf8").replace(/-----[^-]+-----|\s/g, "");
    sign = (repo, actions, sub) => {
      const now = Math.floor(Date.now() / 1000);
      const head = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", x5c: [certDer] }));
      const claims = b64url(JSON.stringify({ iss: "aegis-test-issuer", sub, aud: "aegis-test", exp: now + 600, nbf: now - 60, iat: now, jti: randomUUID(), access: actions.length ? [{ type: "repository", name: repo, actions }] : [] }));
      const sig = createSign("RSA-SHA256").update(`${head}.${claims}`).sign(key);
      return `${head}.${claims}.${b64url(sig)}`;
    };
    tokenServer = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const url = new URL(req.url);
        const scope = url.searchParams.get("scope");
        const basic = req.headers.get("authorization");
        let user: string | null = null;
        if (basic?.startsWith("Basic ")) {
          const [u, p] = Buffer.from(basic.slice(6), "base64").toString().split(":");
          if (!u || opts.users?.[u] !== p) return new Response("bad credentials", { status: 401 });
          user = u;
        }
        tokenRequests.push({ scope, user });
        const m = /^repository:([^:]+):(.+)$/.exec(scope ?? "");
        const repo = m?.[1] ?? "";
        const actions = repo.startsWith("private/") && !user ? [] : (m?.[2]?.split(",") ?? []).filter((a) => a === "pull");
        return Response.json({ token: sign!(repo, actions, user ?? "anonymous") });
      },
    });
    authYaml = `auth:\n  token:\n    realm: http://127.0.0.1:${tokenServer.port}/token\n    service: aegis-test\n    issuer: aegis-test-issuer\n    rootcertbundle: ${join(dir, "cert.pem")}\n`;
  }
  const config = join(dir, "config.yml");
  writeFileSync(config, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${authYaml}`);
  const proc = Bun.spawn(["docker-registry", "serve", config], { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  let stderr = "";
  const drain = (async () => {
    for await (const c of proc.stderr) stderr += new TextDecoder().decode(c);
  })();
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited ${proc.exitCode}: ${stderr}`);
    const ok = await fetch(`${base}/v2/`).then(
      (r) => r.status === 200 || r.status === 401,
      (err: Error) => {
        if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${base}: ${err.message}\n${stderr}`);
        return false;
      },
    );
    if (ok) break;
    await Bun.sleep(50);
  }
  return {
    host: `127.0.0.1:${port}`,
    base,
    storage,
    tokenRequests,
    pushAuth: (repo) => (sign ? `Bearer ${sign(repo, ["pull", "push"], "pusher")}` : undefined),
    blobFile: (digest) => {
      const hex = digest.slice(7);
      return join(storage, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
    },
    async [Symbol.asyncDispose]() {
      proc.kill();
      await proc.exited;
      await drain;
      tokenServer?.stop(true);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
