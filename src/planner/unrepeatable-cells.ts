/**
 * Cells a restore should not run again: their results would come out different (they draw random
 * numbers, read the clock, make UUIDs), or running them again repeats what they did outside the
 * kernel (they write files, delete them, post to a server, run programs). Rebuilding what such a
 * cell made silently changes a value or repeats an action, so the planner stores their results
 * whenever it can and re-runs them only when nothing else works. ElasticNotebook leaves both to
 * hand-written annotations (reference/elasticnotebook.md §4.3 and §6.1).
 *
 * #### Notes
 * A heuristic on the cell's own code: it sees `np.random.rand(3)`, `datetime.now()` or
 * `f.write(...)` written in the cell, not a call hidden inside a function defined elsewhere. A
 * cell that seeds its generator itself (`np.random.seed(0)`, `default_rng(42)`) is taken as
 * reproducible for random draws. For anything the heuristic misses, `# resume: always-store` and
 * `# resume: never-rerun` say it explicitly.
 */

/** Why a re-run would not repeat a cell faithfully. */
export type Unrepeatable = {
  /** The call as written, without arguments (`random.random`, `f.write`). */
  call: string;
  /** `values`: its results would differ; `effects`: it acts outside the kernel. */
  kind: 'values' | 'effects';
};

/**
 * Random draws: other results on every run unless the cell seeds its generator itself. Matched
 * against code with comments and strings blanked.
 */
const RANDOM_DRAWS: readonly RegExp[] = [
  // random.random(), np.random.rand(), torch.random.…, tf.random.normal(); not random.seed(…)
  /\brandom\s*\.\s*(?!seed\b)\w+\s*\(/,
  // from random import …; from numpy.random import …
  /(?<![.\w])(?:rand|randn|randint|randrange|getrandbits|shuffle|permutation|random_sample)\s*\(/,
  // pandas' df.sample(n) without random_state
  /\.\s*sample\s*\((?![^)]*\brandom_state\b)/,
];

/** Seeding a generator with an explicit value: `random.seed(1)`, `np.random.default_rng(42)`, `torch.manual_seed(0)`. */
const SEEDS = /\b(?:seed|manual_seed|set_seed|default_rng|RandomState|Random|Generator)\s*\(\s*[^)\s]/;

/** Actions outside the kernel: running the cell again does them again. */
const SIDE_EFFECTS: readonly RegExp[] = [
  // f.write(…), handle.writelines(…): writing to a file the cell opened
  /\b\w+\s*\.\s*write(?:lines)?\s*\(/,
  // df.to_csv(…), fig.savefig(…), np.save(…), torch.save(…)
  /\.\s*(?:to_csv|to_parquet|to_excel|to_json|to_pickle|to_sql|to_feather|savefig|save|savez|savetxt|dump)\s*\(/,
  /\bos\s*\.\s*(?:remove|unlink|rename|replace|rmdir|removedirs|mkdir|makedirs|system|kill)\s*\(/,
  /\bshutil\s*\.\s*\w+\s*\(/,
  /\bsubprocess\s*\.\s*\w+\s*\(/,
  /\brequests\s*\.\s*(?:post|put|patch|delete)\s*\(/,
  /\b(?:sendmail|send_message|urlopen)\s*\(/,
  // shell commands as the user typed them (the record keeps the raw cell): `!rm -rf out/`, `%%bash`
  /^[ \t]*![ \t]*[^\s=]+/m,
  /^[ \t]*%%(?:bash|sh|script|system)\b/m,
  /^[ \t]*%(?:system|sx)\b/m,
];

/** Other results on every run, seeded or not: entropy from the OS, the clock, UUIDs. */
const UNSEEDABLE: readonly RegExp[] = [
  /\bdefault_rng\s*\(\s*\)/,
  /\buuid[14]\s*\(/,
  /\burandom\s*\(/,
  /\bsecrets\s*\.\s*\w+/,
  /\btime\s*\.\s*(?:time|time_ns|perf_counter|perf_counter_ns|monotonic|process_time)\s*\(/,
  /\.\s*(?:now|today|utcnow)\s*\(/,
];

/** Every pattern above needs one of these words (or a `!`/`%` line): a cheap first test. */
const CANDIDATE = /random|rand|shuffle|permutation|sample|default_rng|uuid|urandom|secrets|time|now|today|write|to_|save|dump|os\s*\.|shutil|subprocess|requests|send|urlopen|^[ \t]*[!%]/m;

/**
 * @param code a cell's code as recorded.
 * @returns the first call in it that a re-run would not repeat faithfully, or null.
 */
export function unrepeatableCall(code: string): Unrepeatable | null {
  // Most cells mention none of these words: the planner asks about every cell of a long history.
  if (!CANDIDATE.test(code)) return null;
  const plain = blankCommentsAndStrings(code);
  const differing = SEEDS.test(plain) ? UNSEEDABLE : [...UNSEEDABLE, ...RANDOM_DRAWS];
  for (const [kind, sources] of [['values', differing], ['effects', SIDE_EFFECTS]] as const) {
    for (const source of sources) {
      const match = source.exec(plain);
      if (match !== null) return { call: match[0].replace(/\s+/g, '').replace(/^\./, '').replace(/\(\)?$/, ''), kind };
    }
  }
  return null;
}

/**
 * The code with every comment and string literal replaced by spaces, so `"random.random()"` or
 * `# uses time.time()` is not taken for a call. f-string expressions are blanked too (a call
 * inside one is missed; see the module notes).
 */
function blankCommentsAndStrings(code: string): string {
  const out: string[] = [];
  let copied = 0;
  const blank = (from: number, to: number) => {
    out.push(code.slice(copied, from), code.slice(from, to).replace(/[^\n]/g, ' '));
    copied = to;
  };
  let i = 0;
  while (i < code.length) {
    const ch = code[i];
    if (ch === '#') {
      const end = code.indexOf('\n', i);
      const stop = end === -1 ? code.length : end;
      blank(i, stop);
      i = stop;
    } else if (ch === '"' || ch === "'") {
      const quote = code.startsWith(ch.repeat(3), i) ? ch.repeat(3) : ch;
      let j = i + quote.length;
      let stop = code.length;
      while (j < code.length) {
        if (code.startsWith(quote, j)) {
          stop = j + quote.length;
          break;
        }
        // A one-quote string cannot span lines (an unclosed one ends there); a backslash escapes.
        if (quote.length === 1 && code[j] === '\n') {
          stop = j;
          break;
        }
        j += code[j] === '\\' ? 2 : 1;
      }
      blank(i, stop);
      i = stop;
    } else {
      i += 1;
    }
  }
  out.push(code.slice(copied));
  return out.join('');
}
