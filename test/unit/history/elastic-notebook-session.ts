/**
 * Test fixture: ElasticNotebook's observed session as cell records (notation: agent-cells.ts).
 */
import { session } from './agent-cells.js';

/**
 * Digest §1.7, with our answers where ElasticNotebook's differ:
 * - cell 10 `w = g(3)` reads z (g reads it; ElasticNotebook's AST heuristic missed it), and so
 *   does cell 11;
 * - small ints never link variables (ElasticNotebook linked x and z, both 2);
 * - `print(gen)` modifies gen (a generator's content cannot be compared), as upstream;
 * - `obj.a.append(2)` modifies obj but `alias = obj` does not (the agent compares content);
 *   `alias = obj` merges them into one group instead;
 * - cell 7 creates obj (the digest's table leaves that cell out).
 *
 * The chain behind `dlist` (cells 0-6):
 *
 *   [0] --> x@0 --+---------------------> [2] --> x@2*
 *      \          +--> [1] --> z@1* --/     \--> l1@2 --> [3] --> dlist,l1@3 --> [5] --> dlist,l1@5 --> [6] --> dlist@6*
 *       \--> y@0 ----/                                       \--> gen@3 --> [4] --> gen@4*                   \--> l1@6*
 *
 * and the rest:
 *
 *   [7] --> SimpleNamespace@7*
 *      \--> obj@7 --> [8] --> obj@8 --> [13] --> alias,obj@13*
 *   y@0 --> [9] --> f@9*, y@9*
 *   z@1 --> [10] --> g@10*, w@10*
 *   z@1, g@10 --> [11] --> w2@11
 *   [12] --> w2@12 (del)
 *   [14] --> k@14*
 */
export const elasticNotebookSession = session(
  ['x, y = 1, 2', { created: ['x', 'y'], groups: [['x'], ['y']] }],
  ['z = y\nif False:\n    print(x)', { read: ['x', 'y'], created: ['z'], groups: [['z']] }],
  ['x += 1; l1 = [z, 2, 3]', { read: ['x', 'z'], rebound: ['x'], created: ['l1'], groups: [['l1'], ['x']] }],
  ['gen = (i for i in l1); dlist = [l1]', { read: ['l1'], created: ['dlist', 'gen'], groups: [['dlist', 'l1'], ['gen']] }],
  ['print(gen)', { read: ['gen'], modified: ['gen'], groups: [['gen']] }],
  ['l1.append(4)', { read: ['l1'], modified: ['dlist', 'l1'], groups: [['dlist', 'l1']] }],
  ['dlist[0] = [9]', { read: ['dlist'], modified: ['dlist'], groups: [['dlist']] }],
  [
    'from types import SimpleNamespace\nobj = SimpleNamespace(a=[1])',
    { created: ['SimpleNamespace', 'obj'], groups: [['SimpleNamespace'], ['obj']] },
  ],
  ['obj.a.append(2)', { read: ['obj'], modified: ['obj'], groups: [['obj']] }],
  ['def f():\n    global y\n    y = y + 10\nf()', { read: ['y'], created: ['f'], rebound: ['y'], groups: [['f'], ['y']] }],
  ['def g(v):\n    return v + z\nw = g(3)', { read: ['z'], created: ['g', 'w'], groups: [['g'], ['w']] }],
  ['w2 = g(4)', { read: ['g', 'z'], created: ['w2'], groups: [['w2']] }],
  ['del w2', { deleted: ['w2'] }],
  ['alias = obj', { read: ['obj'], created: ['alias'], groups: [['alias', 'obj']] }],
  ['k = 5; k = k*2', { created: ['k'], groups: [['k']] }],
);
