/**
 * @module api/schema/ui
 * `POST /v1/ui`: start the web UI (daemon/ui) if needed and get the URL that
 * opens a session. The URL carries the UI token, so it is only ever handed
 * out over the API's 0600 Unix socket.
 */
import { z } from "zod";

/** Body: the port to listen on (absent: AEGIS_UI_PORT of the daemon, else 8098). */
export const UiOpen = z.object({ port: z.number().int().min(1, "ports must be 1-65535").max(65535, "ports must be 1-65535").optional() }).strict();
export type UiOpen = z.infer<typeof UiOpen>;

/** Reply: where the UI listens and the URL (with its token) that opens it. */
export const UiOpened = z.object({ url: z.string(), port: z.number().int() });
export type UiOpened = z.infer<typeof UiOpened>;
