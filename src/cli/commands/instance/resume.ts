/** @module cli/commands/instance/resume — `aegis instance resume NAME`. */
import { instanceActionCommand } from "./_action.ts";

export default instanceActionCommand("resume", "Resume a paused instance (or boot a stopped one)");
