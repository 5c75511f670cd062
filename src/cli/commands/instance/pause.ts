/** @module cli/commands/instance/pause — `aegis instance pause NAME`. */
import { instanceActionCommand } from "./_action.ts";

export default instanceActionCommand("pause", "Pause a running instance (its memory stays; resumes in milliseconds)");
