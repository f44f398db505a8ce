/**
 * The code cells of a Jupyter notebook file (nbformat 4), in order.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ResumeError } from '../errors.js';
import { describeSchemaIssues } from '../jupyter/kernel-messages.js';

/** nbformat stores a cell's source as one string or as a list of lines. */
const sourceSchema = z.union([z.string(), z.array(z.string())]);

const notebookSchema = z.looseObject({
  nbformat: z.literal(4),
  cells: z.array(z.looseObject({ cell_type: z.string(), source: sourceSchema })),
});

/**
 * Reads the code cells of a notebook.
 * @param path the `.ipynb` file.
 * @returns each code cell's source, in notebook order; empty cells are left out.
 * Throws RESUME_ERR_VERIFY_NOTEBOOK_INVALID when the file is missing or not an nbformat 4 notebook.
 */
export async function readNotebookCells(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw invalid(path, 'it cannot be read', cause);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw invalid(path, 'it is not JSON', cause);
  }
  const parsed = notebookSchema.safeParse(json);
  if (!parsed.success) throw invalid(path, describeSchemaIssues(parsed.error));
  return parsed.data.cells
    .filter((cell) => cell.cell_type === 'code')
    .map((cell) => (Array.isArray(cell.source) ? cell.source.join('') : cell.source))
    .filter((source) => source.trim() !== '');
}

function invalid(path: string, why: string, cause?: unknown): ResumeError {
  return new ResumeError('RESUME_ERR_VERIFY_NOTEBOOK_INVALID', `${path} is not a notebook verify can run: ${why}.`, {
    status: 400,
    hint: 'Pass a Jupyter notebook saved in nbformat 4 (any notebook saved by JupyterLab 3+ or Notebook 5+).',
    cause,
  });
}
