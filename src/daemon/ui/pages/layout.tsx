/**
 * @module daemon/ui/pages/layout
 * The page frame every UI page shares: navigation, the CSRF value for the
 * client script (ui.js) and the one script and stylesheet, both served by
 * the UI itself (the CSP allows nothing else).
 */
import { raw } from "hono/html";
import type { Child } from "hono/jsx";

/** The navigation entries, in order. */
const NAV = [
  ["/instances", "Instances"],
  ["/tasks", "Tasks"],
  ["/images", "Images"],
  ["/apps", "Apps"],
  ["/kits", "Kits"],
  ["/secrets", "Secrets"],
  ["/status", "Status"],
] as const;

/** A full page. `csrf` goes into a meta tag that ui.js sends back on every action. */
export function Layout(props: { title: string; csrf: string; children: Child }) {
  // The doctype keeps browsers out of quirks mode; JSX cannot express it.
  return (
    <>
      {raw("<!DOCTYPE html>")}
      <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="aegis-csrf" content={props.csrf} />
        <title>{`${props.title} · Aegis`}</title>
        <link rel="stylesheet" href="/assets/ui.css" />
        <script src="/assets/ui.js" defer></script>
      </head>
      <body>
        <nav>
          <strong>Aegis</strong>
          {NAV.map(([href, label]) => (
            <a href={href}>{label}</a>
          ))}
          <span id="live" data-live="connecting">connecting…</span>
        </nav>
        <div id="flash" role="alert"></div>
        <main>
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
      </html>
    </>
  );
}

/** A simple table: header labels and rows of cells (already escaped by JSX). */
export function Table(props: { head: string[]; rows: Child[][]; empty: string }) {
  if (props.rows.length === 0) return <p class="empty">{props.empty}</p>;
  return (
    <table>
      <thead>
        <tr>
          {props.head.map((h) => (
            <th>{h}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {props.rows.map((r) => (
          <tr>
            {r.map((cell) => (
              <td>{cell}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
