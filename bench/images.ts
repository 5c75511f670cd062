/**
 * bench/images.ts: what `aegis run --image` costs before the VM boots.
 *
 * A generated ~50 MB, 5-layer image of incompressible data is pushed to a
 * local docker-registry. Measured: ImageStore.pull cold (empty cache:
 * download + verify + unpack + mkfs.ext4 + ownership fixup), warm-blobs
 * (layers cached, rootfs rebuilt) and warm (everything cached: one manifest
 * request). Baseline in the same run: `skopeo copy docker://... oci:DIR`, GNU
 * tar extraction of each layer, and `mkfs.ext4 -d` of the tree, cold (new
 * layout dir) and warm (skopeo reuses the layout's blobs).
 *
 * Prints a table and writes bench/results/images.json.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImageStore } from "../src/daemon/images/store.ts";
import { makeImage, makeLayer, type TestEntry } from "../test/helpers/oci-build.ts";
import { pushImage } from "../test/helpers/oci-push.ts";
import { startRegistry } from "../test/helpers/registry.ts";
import { report, type Row, stats, timeRuns } from "./_lib.ts";

const RUNS = 5;
const LAYERS = 5;
const FILES_PER_LAYER = 20;
const FILE_BYTES = 512 * 1024;

async function sh(argv: string[]): Promise<void> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err}`);
}

/** skopeo copy + tar -x of every layer + mkfs.ext4 -d, as a user would do by hand. */
async function baseline(host: string, layout: string, work: string): Promise<void> {
  await sh(["skopeo", "copy", "--quiet", "--src-tls-verify=false", `docker://${host}/bench/img:v1`, `oci:${layout}:v1`]);
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  const blob = (d: string) => join(layout, "blobs", "sha256", d.slice(7));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0]!.digest), "utf8")) as { layers: { digest: string }[] };
  const tree = join(work, "tree");
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  for (const l of manifest.layers) await sh(["tar", "-xzf", blob(l.digest), "-C", tree, "--numeric-owner"]);
  const out = join(work, "rootfs.ext4");
  rmSync(out, { force: true });
  writeFileSync(out, "");
  truncateSync(out, 96 * 1024 * 1024);
  await sh(["mkfs.ext4", "-q", "-F", "-b", "4096", "-m", "0", "-O", "^has_journal", "-d", tree, out]);
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "aegis-bench-img-"));
  await using reg = await startRegistry();
  try {
    const layers = Array.from({ length: LAYERS }, (_, i) => {
      const entries: TestEntry[] = [{ path: `layer${i}/`, type: "Directory" }];
      for (let f = 0; f < FILES_PER_LAYER; f++) entries.push({ path: `layer${i}/f${f}.bin`, content: randomBytes(FILE_BYTES), mode: 0o644 });
      return makeLayer(entries, "gzip");
    });
    const image = makeImage(layers);
    await pushImage({ base: reg.base, repo: "bench/img" }, image, "v1");
    const ref = `${reg.host}/bench/img:v1`;
    const totalMb = layers.reduce((a, l) => a + l.bytes.byteLength, 0) / 1e6;
    console.error(`image: ${LAYERS} layers, ${totalMb.toFixed(1)} MB compressed; ${RUNS} runs each`);

    let n = 0;
    const cold = stats(await timeRuns(RUNS, () => new ImageStore(join(work, `cold-${n++}`)).pull(ref)));
    const warmStore = new ImageStore(join(work, "warm"));
    await warmStore.pull(ref);
    const warm = stats(await timeRuns(RUNS, () => warmStore.pull(ref), 0));
    const rec = warmStore.get(ref)!;
    const warmBlobs = stats(
      await timeRuns(
        RUNS,
        async () => {
          rmSync(rec.rootfs);
          await warmStore.pull(ref);
        },
        0,
      ),
    );
    let m = 0;
    const baseCold = stats(await timeRuns(RUNS, () => baseline(reg.host, join(work, `layout-${m++}`), work)));
    const baseWarm = stats(await timeRuns(RUNS, () => baseline(reg.host, join(work, "layout-warm"), work)));
    const rows: Row[] = [
      { metric: "pull+unpack+ext4, cold cache (median)", value: cold.median, unit: "ms", baseline: { name: "skopeo copy + tar -x + mkfs.ext4 -d", value: baseCold.median }, better: "lower" },
      { metric: "pull, layers cached, rootfs rebuilt (median)", value: warmBlobs.median, unit: "ms", baseline: { name: "same, skopeo reusing layout blobs", value: baseWarm.median }, better: "lower" },
      { metric: "pull, fully cached (median)", value: warm.median, unit: "ms", baseline: { name: "same, skopeo reusing layout blobs", value: baseWarm.median }, better: "lower" },
      { metric: "cold pull throughput", value: totalMb / (cold.median / 1000), unit: "MB/s", baseline: { name: "baseline", value: totalMb / (baseCold.median / 1000) }, better: "higher" },
    ];
    report("images", rows, { runs: RUNS, image: { layers: LAYERS, compressed_mb: totalMb, rootfs_bytes: statSync(rec.rootfs).size }, cold_ms: cold, warm_blobs_ms: warmBlobs, warm_ms: warm, baseline_cold_ms: baseCold, baseline_warm_ms: baseWarm });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
