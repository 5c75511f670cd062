import { describe, expect, it } from "bun:test";
import { DEFAULT_IMAGE_LIMITS, formatSize, imageLimitsFromEnv, parseSize } from "../../../src/daemon/images/limits.ts";

describe("image limits", () => {
  it("parses sizes with binary units", () => {
    expect(parseSize("X", "8G")).toBe(8 * 1024 ** 3);
    expect(parseSize("X", "512MiB")).toBe(512 * 1024 ** 2);
    expect(parseSize("X", "1.5g")).toBe(1.5 * 1024 ** 3);
    expect(parseSize("X", "4096")).toBe(4096);
  });
  it("refuses malformed sizes naming the variable", () => {
    expect(() => parseSize("AEGIS_IMAGE_MAX_UNPACKED", "lots")).toThrow("AEGIS_IMAGE_MAX_UNPACKED=lots is not a size");
    expect(() => parseSize("AEGIS_IMAGE_MAX_UNPACKED", "8Q")).toThrow("is not a size");
    expect(() => parseSize("AEGIS_IMAGE_MAX_UNPACKED", "0")).toThrow("must be larger than 0");
  });
  it("takes overrides from the environment and keeps the defaults otherwise", () => {
    expect(imageLimitsFromEnv({})).toEqual(DEFAULT_IMAGE_LIMITS);
    const l = imageLimitsFromEnv({ AEGIS_IMAGE_MAX_COMPRESSED: "1G", AEGIS_IMAGE_MAX_UNPACKED: "2G", AEGIS_IMAGE_MAX_EXPANSION: "0" });
    expect(l).toMatchObject({ maxCompressedBytes: 1024 ** 3, maxUnpackedBytes: 2 * 1024 ** 3, maxExpansion: 0, maxManifestBytes: 4 * 1024 ** 2 });
    expect(() => imageLimitsFromEnv({ AEGIS_IMAGE_MAX_EXPANSION: "-1" })).toThrow("AEGIS_IMAGE_MAX_EXPANSION=-1 is not a ratio");
  });
  it("formats sizes for messages", () => {
    expect(formatSize(4 * 1024 ** 2)).toBe("4 MiB");
    expect(formatSize(1.5 * 1024 ** 3)).toBe("1.5 GiB");
    expect(formatSize(300)).toBe("300 bytes");
  });
});
