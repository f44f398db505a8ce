/**
 * The session the benchmark saves and restores: about 1 GB in numpy and pandas, as a data
 * scientist's kernel holds it after loading and preparing data.
 *
 * - `big`: a float64 array (~600 MB at scale 1), computed values rather than zeros;
 * - `df`: a DataFrame of five numeric columns (float64 ×2, int64, float32, int32; ~300 MB),
 *   i.e. four pandas blocks, so several out-of-band buffers in one group;
 * - a few small variables (an int, a string, a dict of hyper-parameters, a small array);
 * - three module imports (`np`, `pd`, `json`), which the agent re-imports rather than stores.
 *
 * The cells run as ordinary cells, so the agent records them exactly as it would a user's.
 */
import type { BenchKernel } from './bench-kernel.js';

/** Bytes of `big` and `df` at scale 1 (MB = 10^6 bytes, as in every number the bench prints). */
const BIG_BYTES = 600e6;
const FRAME_BYTES = 300e6;
/** Bytes per DataFrame row: float64 + float64 + int64 + float32 + int32. */
const FRAME_ROW_BYTES = 8 + 8 + 8 + 4 + 4;

/** Every user variable of the notebook, in the order the cells create them. */
export const NOTEBOOK_VARIABLES = ['np', 'pd', 'json', 'big', 'df', 'n_epochs', 'label', 'params', 'small'] as const;
/** The ones the agent stores (modules are re-imported): what the pickle baseline dumps. */
export const STORED_VARIABLES = NOTEBOOK_VARIABLES.filter((name) => !['np', 'pd', 'json'].includes(name));

/** What the notebook is, for the report. */
export type NotebookShape = { scale: number; bigElements: number; frameRows: number; cells: string[] };

/**
 * The notebook's cells at a scale (1 = about 1 GB; smaller scales make quick trial runs).
 * @param scale fraction of the full size, > 0.
 */
export function notebookShape(scale: number): NotebookShape {
  const bigElements = Math.round((BIG_BYTES * scale) / 8);
  const frameRows = Math.round((FRAME_BYTES * scale) / FRAME_ROW_BYTES);
  const cells = [
    'import json\nimport numpy as np\nimport pandas as pd',
    // In place, so the cell never holds two copies of 600 MB.
    `big = np.arange(${bigElements}, dtype=np.float64)\nbig *= 1e-3\nnp.sin(big, out=big)\nbig *= 100.0`,
    [
      `_rows = np.arange(${frameRows})`,
      'df = pd.DataFrame({',
      '    "price": _rows * 0.25,',
      '    "signal": np.cos(_rows * 1e-4),',
      '    "volume": _rows * 3 + 7,',
      '    "bucket": (_rows % 1000).astype(np.float32),',
      '    "id": _rows.astype(np.int32),',
      '})',
      'del _rows',
    ].join('\n'),
    'n_epochs = 12\nlabel = "roundtrip benchmark"\nparams = {"lr": 0.01, "layers": [64, 32, 16], "seed": 7}\nsmall = np.linspace(0.0, 1.0, 1000)',
  ];
  return { scale, bigElements, frameRows, cells };
}

/** Runs the notebook's cells in a kernel, in order. */
export async function runNotebook(kernel: BenchKernel, shape: NotebookShape): Promise<void> {
  for (const cell of shape.cells) await kernel.runCell(cell);
}
