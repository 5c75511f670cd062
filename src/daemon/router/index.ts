/**
 * @module daemon/router
 * The router of served instances (DESIGN.md section 8): HTTP and WebSocket on
 * one port routed by Host or path prefix, raw TCP per `--expose`, waking
 * instances on demand. The daemon implements {@link RouterHooks}.
 */
export { Router } from "./router.ts";
export type { HostAddress, RouteTarget, RouterHooks, RouterLog, RouterOptions, ServedInstance } from "./types.ts";
