/**
 * Variable-by-variable comparison of a kernel before a checkpoint and after its restore (pure).
 *
 * A variable is `equal` when its type and fingerprint match *and* it is bound to the same object as
 * the same other names (a lost `b is a` makes both names differ: they were one list and now are
 * two; atoms such as `True` or `5` are exempt, their identity is the interpreter's business).
 * `uncomparable` means the original value has no fingerprint (a generator, a socket): only an
 * `--after` probe can check it, through the variables the probe computes from it.
 */
import type { Description, RestoreReport } from '../agent/agent-messages.js';

/** How a variable came back. */
export type VariableStatus = 'equal' | 'differs' | 'missing' | 'uncomparable';

/** How the restore produced a variable; `null` when it did not (the restore failed for it). */
export type RestoredBy = 'stored' | 'recomputed' | null;

/** One compared variable. `type` and `detail` are for people (the table), not the JSON contract. */
export type VariableComparison = {
  name: string;
  status: VariableStatus;
  restored_by: RestoredBy;
  /** The original's type (the restored one's for names only the restored kernel has). */
  type: string;
  /** Why it is not `equal`, in a few words; `''` when equal. */
  detail: string;
};

/**
 * Compares two descriptions.
 * @param original the kernel that was checkpointed (after the probe, if any).
 * @param restored the new kernel after the restore (after the same probe).
 * @param report the restore's report: says which variables were stored, recomputed or failed.
 * @returns one entry per name in either kernel: the original's names in their order, then names
 * only the restored kernel has (these `differ`: the restore must not invent state).
 */
export function compareDescriptions(original: Description, restored: Description, report: RestoreReport): VariableComparison[] {
  const restoredByName = new Map(restored.variables.map((v) => [v.name, v]));
  const originalNames = new Set(original.variables.map((v) => v.name));
  const reported = new Map(report.variables.map((v) => [v.name, v]));
  const aliasesBefore = aliasIndex(original);
  const aliasesAfter = aliasIndex(restored);

  const restoredBy = (name: string): RestoredBy => {
    const entry = reported.get(name);
    if (entry === undefined) {
      // Not in the checkpoint: computed again in the new kernel (by the probe, or as a side effect
      // of re-run cells).
      return restoredByName.has(name) ? 'recomputed' : null;
    }
    switch (entry.status) {
      case 'stored':
      case 'imported': // imports count as stored: nothing ran to bring them back
        return 'stored';
      case 'recomputed':
        return 'recomputed';
      case 'failed':
        return null;
    }
  };

  const compared: VariableComparison[] = original.variables.map((before) => {
    const name = before.name;
    const base = { name, restored_by: restoredBy(name), type: before.type };
    const after = restoredByName.get(name);
    if (after === undefined) {
      const failure = reported.get(name)?.error;
      return { ...base, status: 'missing', detail: failure ? `restore failed: ${failure}` : 'not in the restored kernel' };
    }
    if (after.type !== before.type) {
      return { ...base, status: 'differs', detail: `type ${before.type} became ${after.type}` };
    }
    if (before.fingerprint !== null && after.fingerprint !== before.fingerprint) {
      return { ...base, status: 'differs', detail: 'value differs' };
    }
    const was = aliasesBefore.get(name) ?? [];
    const now = aliasesAfter.get(name) ?? [];
    if (!sameNames(was, now)) {
      return { ...base, status: 'differs', detail: `same object as [${was.join(', ')}] before, [${now.join(', ')}] after` };
    }
    if (before.fingerprint === null) {
      return { ...base, status: 'uncomparable', detail: `a ${before.type} has no fingerprint` };
    }
    return { ...base, status: 'equal', detail: '' };
  });

  for (const after of restored.variables) {
    if (originalNames.has(after.name)) continue;
    compared.push({
      name: after.name,
      status: 'differs',
      restored_by: restoredBy(after.name),
      type: after.type,
      detail: 'exists only in the restored kernel',
    });
  }
  return compared;
}

/**
 * Immutable atoms: whether two names hold one such object or two equal ones is an interpreter
 * detail (`True`, small ints and interned strings are shared, other equal values may not be), so
 * their aliasing is not state a restore has to keep.
 */
const ATOM_TYPES = new Set(['bool', 'NoneType', 'int', 'float', 'complex', 'str', 'bytes', 'ellipsis', 'NotImplementedType']);

/** Maps each aliased name to the other names bound to the same object (sorted); atoms left out. */
function aliasIndex(description: Description): Map<string, string[]> {
  const atoms = new Set(description.variables.filter((v) => ATOM_TYPES.has(v.type)).map((v) => v.name));
  const index = new Map<string, string[]>();
  for (const group of description.aliases) {
    const names = group.filter((name) => !atoms.has(name));
    if (names.length < 2) continue;
    for (const name of names) index.set(name, names.filter((other) => other !== name).sort());
  }
  return index;
}

function sameNames(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((name, i) => name === b[i]);
}
