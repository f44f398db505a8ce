/**
 * The notebooks `bench/overhead.ts` runs with and without the agent, generated in code.
 *
 * 1. `typical`: ~150 small data-science-like cells (lists, dicts, small numpy arrays, functions,
 *    loops, a 10k-row DataFrame, in-place appends, aliases);
 * 2. `nested-lists`: 200k small lists (plus a 20k-row grid), read and modified over ~30 cells;
 * 3. `many-small-objects`: 100k instances of a `__main__` class and 100k dicts over ~30 cells;
 * 4. `big-arrays`: 4 × 256 MiB numpy arrays (1 GiB), ~30 cells that read them (sums, slices),
 *    a few that modify them in place, and some that touch none of them;
 * 5. `dynamic-code`: ~60 variables, then cells whose reads static analysis cannot see (`exec`,
 *    `eval`, `globals()[…]`), which the agent treats as reading every variable: what that
 *    fallback costs.
 */

/** One notebook: a name, what it is, and its cells in order. */
export type OverheadNotebook = { name: string; description: string; cells: string[] };

function typical(): OverheadNotebook {
  const cells = [
    'import math, random, json\nimport numpy as np\nimport pandas as pd',
    'rng = np.random.default_rng(0)\nlog = []',
    'df = pd.DataFrame({"a": rng.random(10_000), "b": rng.integers(0, 100, 10_000), "g": rng.integers(0, 10, 10_000)})',
  ];
  for (let k = 0; k < 29; k++) {
    cells.push(`xs_${k} = [i * i for i in range(200)]\nconf_${k} = {"k": ${k}, "name": "run${k}", "vals": xs_${k}[:5]}`);
    cells.push(`arr_${k} = rng.random(1000)\nm_${k} = float(arr_${k}.mean())`);
    cells.push(`def f_${k}(v):\n    return v * ${k} + m_${k}\n\nres_${k} = [f_${k}(i) for i in range(100)]`);
    switch (k % 5) {
      case 0:
        cells.push(`log.append(${k})\nxs_${k}.append(-1)`);
        break;
      case 1:
        cells.push(`alias_${k} = xs_${k}\nalias_${k}[0] = 42`);
        break;
      case 2:
        cells.push(`summary_${k} = df.groupby("g")["a"].mean()\nsummary_${k}.head()`);
        break;
      case 3:
        cells.push(`df["c${k}"] = df["a"] * ${k}`);
        break;
      default:
        cells.push(`total = 0\nfor i in range(5000):\n    total += i % 7\ntotal`);
    }
    cells.push(`print(len(xs_${k}), round(m_${k}, 3), json.dumps(conf_${k})[:40])`);
  }
  return {
    name: 'typical',
    description: '~150 small cells: lists, dicts, 1k-element numpy arrays, functions, loops, a 10k-row DataFrame (groupby, new columns), in-place appends, aliases',
    cells,
  };
}

function nestedLists(): OverheadNotebook {
  const cells = [
    'nested = [[i, i + 1, i + 2] for i in range(200_000)]',
    'grid = [[0] * 10 for _ in range(20_000)]',
  ];
  const cycle = (i: number): string => {
    switch (i % 8) {
      case 0:
        return 'n = len(nested)\nn';
      case 1:
        return 's = sum(r[0] for r in nested[:10_000])\ns';
      case 2:
        return `nested[${i}][0] = -${i}`;
      case 3:
        return `nested.append([${i}, 0, 0])`;
      case 4:
        return 'head = nested[:100]';
      case 5:
        return 'total = sum(map(sum, nested))\ntotal';
      case 6:
        return `grid[${i}][${i % 10}] += 1`;
      default:
        return `x = ${i} * 2`;
    }
  };
  for (let i = 0; i < 28; i++) cells.push(cycle(i));
  return {
    name: 'nested-lists',
    description: '200k 3-element lists and a 20k x 10 grid, then 28 cells reading (len, partial and full sums, slices), modifying in place (item assignment, append) and not touching them',
    cells,
  };
}

function manySmallObjects(): OverheadNotebook {
  const cells = [
    [
      'class Point:',
      '    def __init__(self, x, y):',
      '        self.x = x',
      '        self.y = y',
      '',
      '    def norm(self):',
      '        return (self.x ** 2 + self.y ** 2) ** 0.5',
    ].join('\n'),
    'points = [Point(i, i * 2) for i in range(100_000)]',
    'records = [{"id": i, "value": i * 0.5, "tag": "t%d" % (i % 10)} for i in range(100_000)]',
  ];
  const cycle = (i: number): string => {
    switch (i % 7) {
      case 0:
        return 'p_total = sum(p.x for p in points[:5000])\np_total';
      case 1:
        return `points[${i}].x = -1`;
      case 2:
        return `records[${i}]["value"] = 0.0`;
      case 3:
        return 'by_tag = {}\nfor r in records[:20_000]:\n    by_tag[r["tag"]] = by_tag.get(r["tag"], 0) + 1';
      case 4:
        return `points.append(Point(${i}, ${i}))`;
      case 5:
        return 'norms = [p.norm() for p in points[:2000]]';
      default:
        return `y = ${i} + 1`;
    }
  };
  for (let i = 0; i < 28; i++) cells.push(cycle(i));
  return {
    name: 'many-small-objects',
    description: '100k instances of a __main__ class and 100k small dicts, then 28 cells reading, modifying attributes/items in place, appending, and not touching them',
    cells,
  };
}

function bigArrays(): OverheadNotebook {
  const cells = ['import numpy as np'];
  for (let j = 0; j < 4; j++) cells.push(`a${j} = np.random.default_rng(${j}).random(32 * 1024 * 1024)`);
  const cycle = (i: number): string => {
    const j = i % 4;
    switch (i % 8) {
      case 0:
        return `s${j} = float(a${j}.sum())`;
      case 1:
        return `m${j} = float(a${j}[:1_000_000].mean())`;
      case 2:
        return `t${j} = float(a${j}[::1000].sum())`;
      case 3:
        return `a${j}[:1000] += 1.0`;
      case 4:
        return `mx${j} = float(a${j}.max())`;
      case 5:
        return `q = ${i} * 3`;
      case 6:
        return i % 16 === 6 ? `a${j} *= 1.0000001` : `head${j} = a${j}[:10].copy()`;
      default:
        return `v = a${j}[${i * 1000}]`;
    }
  };
  for (let i = 0; i < 30; i++) cells.push(cycle(i));
  return {
    name: 'big-arrays',
    description: '4 float64 arrays of 32Mi elements (256 MiB each, 1 GiB), then 30 cells: full sums/max, slices, single elements, small and full in-place updates, and cells touching no array',
    cells,
  };
}

function dynamicCode(): OverheadNotebook {
  const cells = [
    'import numpy as np\nimport pandas as pd',
    'frame = pd.DataFrame({"a": np.arange(50_000), "b": np.arange(50_000) * 0.5})\nweights = np.ones(1_000_000)',
  ];
  for (let k = 0; k < 20; k++) cells.push(`v_${k} = list(range(${k * 10}))\nd_${k} = {"k": ${k}, "v": v_${k}}\ns_${k} = "name${k}"`);
  const cycle = (i: number): string => {
    switch (i % 5) {
      case 0:
        return `total = eval("sum(v_${i % 20}) + len(d_${i % 20})")`;
      case 1:
        return `exec("w_${i} = [x * 2 for x in v_${i % 20}]")`;
      case 2:
        return `globals()["g_${i}"] = frame["a"].sum()`;
      case 3:
        return `name = vars()["s_${i % 20}"]`;
      default:
        return `plain_${i} = v_${i % 20}[:3]`;
    }
  };
  for (let i = 0; i < 30; i++) cells.push(cycle(i));
  return {
    name: 'dynamic-code',
    description:
      '~60 variables (small lists, dicts, strings, a 50k-row DataFrame, an 8 MB array), then 30 cells, 24 of them using eval, exec, globals() or vars() (reads analysis cannot see: every variable is a candidate) and 6 plain ones',
    cells,
  };
}

/** The notebooks, in the order they run. */
export function overheadNotebooks(): OverheadNotebook[] {
  return [typical(), nestedLists(), manySmallObjects(), bigArrays(), dynamicCode()];
}
