/**
 * @module api/issues
 * Human sentences for zod validation failures, shared by the daemon (400
 * messages) and the CLI (validating a kit manifest before sending it).
 */
import type { z } from "zod";

/** Render zod issues as `field: problem` sentences joined by "; ". */
export function formatIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.join(".") : "body";
      if (issue.code === "unrecognized_keys") {
        const where = issue.path.length > 0 ? ` in ${path}` : "";
        return `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}${where}`;
      }
      if (issue.code === "invalid_type") return `${path}: expected ${issue.expected}`;
      return `${path}: ${issue.message}`;
    })
    .join("; ");
}
