/** @module cli/commands/instance/stop — `aegis instance stop NAME`. */
import { instanceActionCommand } from "./_action.ts";

export default instanceActionCommand("stop", "Stop an instance (its disk and workspace stay; it wakes on demand)");
