/**
 * What the user asked of a cell's variables: never re-run the cell, or always store its outputs.
 *
 * Either a comment line in the cell (`# resume: never-rerun`, `# resume: always-store`), which
 * the recorded code carries, or a notebook cell tag of the same name (`never-rerun`,
 * `always-store`), which the planner is given separately: a kernel never sees a cell's tags.
 */

export type CellAnnotations = {
  /** The cell must not run again (it sends e-mail, trains for a day, …): what it made is stored. */
  neverRerun: boolean;
  /** What the cell made is always stored, whatever recomputing it would cost. */
  alwaysStore: boolean;
};

const COMMENT = /^[ \t]*#[ \t]*resume:[ \t]*(never-rerun|always-store)[ \t]*$/gm;

/**
 * The annotations of one cell.
 * @param code the cell's code as recorded.
 * @param tags the notebook cell's tags, when known.
 */
export function cellAnnotations(code: string, tags: readonly string[] = []): CellAnnotations {
  const found = new Set<string>(tags);
  for (const match of code.matchAll(COMMENT)) found.add(match[1] as string);
  return { neverRerun: found.has('never-rerun'), alwaysStore: found.has('always-store') };
}
