/**
 * @module version
 * The version baked in at build time with `--define BUILD_VERSION=...`.
 */
declare const BUILD_VERSION: string;

/** Aegis version string; `0.0.0-dev` when running from source. */
export const VERSION: string = typeof BUILD_VERSION === "string" ? BUILD_VERSION : "0.0.0-dev";
