/**
 * @module daemon/ui/assets/text-assets
 * Stylesheets are embedded as text (`import css from "./ui.css" with { type: "text" }`).
 */
declare module "*.css" {
  const text: string;
  export default text;
}
