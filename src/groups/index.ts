import { validateGroups, type AnyGroup } from "../runtime/group.js";
import { balance } from "./balance.js";
import { flagger } from "./flagger.js";
import { threshold } from "./threshold.js";
import { users } from "./users.js";

/**
 * Every processor group of Depositaja. Topic specs, `processor` flags, `inspect` and
 * the API's views are derived from this list; a new group is one file and one line here.
 */
export const GROUPS: readonly AnyGroup[] = [balance, threshold, flagger, users];
validateGroups(GROUPS);

export { balance, flagger, threshold, users };
