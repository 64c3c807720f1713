// "Did you mean": the one place that says how close a typo is to a name the CLI knows (options, commands, stacks).

/** The closest name within a typo's reach: at most 2 edits, and fewer than a third of the word (`-x` suggests nothing). */
export function nearest(word: string, names: string[]): string | undefined {
  const reach = Math.min(2, Math.floor(word.length / 3));
  let best: { name: string; distance: number } | undefined;
  for (const name of names) {
    const distance = editDistance(word, name);
    if (distance <= reach && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/**
 * Edit distance with adjacent transpositions (optimal string alignment): insertions, deletions, substitutions and a
 * swap of two neighbours each count one, so `lcoal` is one typo from `local`, as a person sees it.
 */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
