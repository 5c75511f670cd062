/**
 * @module daemon/ui/assets/ui
 * Types of the embedded assets (imported `with { type: "text" }`).
 */
declare const text: string;
export default text;
